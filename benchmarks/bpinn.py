"""Bayesian PINN samplers on NeuralUQ's two inverse problems and a 2-D one: jno's methods
beside a hand-written blackjax NUTS program on the same model.

Problems (our own seeded data draws: NeuralUQ's ``.mat`` files cannot be fetched here; the
models follow NeuralUQ's ``examples/inverse_poisson_bpinn.py`` and ``examples/inverse_ko.py``):

* ``poisson``: the 1-D nonlinear Poisson inverse problem of the B-PINN paper (Yang, Meng and
  Karniadakis 2021, §4.2) as NeuralUQ runs it: ``0.01 u'' + k tanh(u) = f`` on
  ``[-0.7, 0.7]``, exact ``u = sin³(6x)``, ``k = 0.7``, ``f`` computed exactly from ``u``;
  8 ``u`` sensors (equispaced, ends included) and 32 ``f`` sensors (equispaced), noise
  ``σ = 0.1`` on both (``numpy.random.default_rng(seed)``), likelihood ``gaussian(std=0.1)`` on
  both. Network 1-50-50-1 tanh (2701 weights), ``N(0, 1)`` prior on every weight; ``k`` a
  ``jno.np.parameter`` with NeuralUQ's prior ``N(0.5, 1)`` (``const.Samplable(mean=0.5,
  sigma=1)``), started at 0.5.
* ``ko``: the Kraichnan–Orszag inverse problem of NeuralUQ, with NeuralUQ's residuals
  ``u1' - a u2 u3``, ``u2' - b u1 u3``, ``u3' + (a + b) u1 u2`` on ``t ∈ [0, 10]``,
  ``u(0) = (1, 0.8, 0.5)``, truth ``a = b = 1``, reference by scipy ``solve_ivp`` (DOP853,
  rtol 1e-10). Data: ``u1, u2, u3`` at 21 equispaced times (``t = 0, 0.5, ..., 10``; NeuralUQ
  observes ``u2`` on its first 7 times only, we observe all three), noise ``σ = 0.05``; the
  ODE residual at 101 equispaced collocation times with likelihood ``gaussian(std=0.05)``
  (NeuralUQ's ``f`` likelihood, ``f = 0``). One 1-50-50-3 tanh network (2803 weights),
  ``N(0, 1)`` weights; ``a`` and ``b`` Parameters with NeuralUQ's ``N(0, 2²)`` priors, started
  at 0 (NeuralUQ's trainable start).
* ``diffusion2d``: the Poisson problem in two dimensions, our own: ``0.1 Δu + k tanh(u) = f``
  on ``[-1, 1]²``, exact ``u = sin(πx) sin(πy) + 0.5 sin(πx/2)``, ``k = 0.7``; ``u`` sensors
  on a 6 × 6 grid and ``f`` sensors on an 8 × 8 grid (ends included), ``σ = 0.1`` on both.
  Network 2-20-20-1 tanh (501 weights), ``N(0, 1)`` weights, ``k ~ N(0.5, 1)`` started at
  0.5; the hand-written log-density takes the Laplacian as the trace of ``jax.hessian``.

Methods (``--method``, each one function returning one row):

* ``nuts``: jno NUTS, window adaptation, diagonal mass matrix;
* ``hand_nuts``: the same log-density written by hand in JAX (the network by ``equinox``
  with the same initial weights, ``u''`` by ``jax.grad(jax.grad(.))``, ``du/dt`` by
  ``jax.jacfwd``), ``blackjax.window_adaptation`` + ``blackjax.nuts`` in ``jax.vmap`` over
  the same number of chains, sampled in 100-draw compiled chunks moved to the host (as jno's
  default ``print_rate``);
* ``nuts_dense``: jno NUTS with ``is_mass_matrix_diagonal=False``;
* ``nuts_low_rank``: jno NUTS with a diagonal plus rank-``--max-rank`` metric adapted in
  warm-up (``max_rank=``, ``blackjax.window_adaptation_low_rank``);
* ``map_nuts``: ``net.initialize(jno.bayesian.map_pipeline(...))`` (multi-start Adam + L-BFGS,
  chains started at the distinct modes, Laplace mass matrix) then NUTS; skipped with a note
  when the pipeline cannot be imported;
* ``mams``: ``blackjax.adjusted_mclmc_dynamic``, ``target_num_integration_steps=128``
  (``--mams-steps``): NUTS's trees on both problems fill the depth cap (255 leapfrog steps
  per draw), so these posteriors need long trajectories after diagonal preconditioning
  (blackjax's default of 2 steps would random-walk); 128 McLachlan steps (256 gradients) per
  transition give MAMS the gradient budget per draw of NUTS; ``map_mams``: the same after
  ``map_pipeline`` (the recipe of ``docs/howto/bpinn_converge.md``);
* ``mclmc``: ``blackjax.mclmc``, unadjusted (biased by its step size), ``thin`` draws;
* ``smc``: ``blackjax.adaptive_tempered_smc``, ``K`` independent runs of ``P`` particles;
* ``vi``: mean-field VI, ``.vi(blackjax.meanfield_vi, optimizer=optax.adam(cosine decay))``
  on every model (jno fits one VI block per model, updated in turn);
* ``ensemble``: deep ensemble, ``model.ensemble(size=E)`` (MAP members under the priors).

All NUTS variants (jno and hand-written) use the same ``max_num_doublings`` (``--max-doublings``)
and ``init_jitter``: chain ``k`` starts at ``θ0 + jitter · N(0, I)``.

Columns of the tables (one per problem, one line per method and physical parameter):

* ``wall s``: seconds of ``crux.solve()`` (hand: jit + adaptation + sampling + transfers),
  compilation included; ``steady s``: seconds of ``--steady`` more draws per chain from the
  adapted state with nothing to compile (a second ``crux.solve(n)``; hand: one more chunk),
  taken after the statistics were computed;
* ``grads``: gradient evaluations of the log-density, all chains, warm-up and initializer
  included (``crux.solver.grad_evals`` + the initializer's ``last_num_grad_evals``; MAMS and
  MCLMC: 2 per McLachlan step; VI and ensembles: steps × samples, counted here);
* ``mean``, ``sd``, ``95 %``: over all kept draws; ``cover``: the truth inside the 95 %
  interval;
* ``R-hat``, ``ESS``: ``jno.bayesian.rhat`` / ``jno.bayesian.ess`` (rank-normalised split
  R-hat, bulk ESS) on the ``(K, N)`` draws. VI and ensembles give independent draws: ESS = N,
  R-hat not applicable. SMC: R-hat over the ``K`` runs (particles shuffled within a run),
  ESS not defined for resampled particles;
* ``ESS/s``: ESS / wall s; ``÷hand``: that ratio over ``hand_nuts``'s for the same parameter;
* ``u L2``: relative L2 error of the posterior-mean ``u`` (all components) against the exact
  solution on a 201-point grid.

Timings include compilation: jno's persistent compilation cache is off here unless
``JNO_COMPILATION_CACHE`` names a folder (``--smoke`` keeps it on).

Run (one problem at a time). The runs behind the numbers in the report, 2 shared CPU cores,
float32 (16.5 and 14.2 minutes)::

    python benchmarks/bpinn.py --smoke      # every method, tiny sizes: ~2 min (warm cache), ~4 cold
    python benchmarks/bpinn.py --problem poisson --dense-warmup 30 --dense-keep 20 \
        --dense-chains 2 --json /tmp/bpinn_poisson.json
    python benchmarks/bpinn.py --problem ko --method nuts hand_nuts map_nuts mams smc vi \
        ensemble mclmc --particles 64 --json /tmp/bpinn_ko.json

``nuts_dense`` gets its own small budget (``--dense-*``): at D ≈ 2700 blackjax's dense metric
costs 1.5-3.5 s per chain and transition here (an O(D³) factorisation every transition plus a
D × D product per leapfrog step), so 4 chains × 1000 transitions would take hours.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Callable

# Timings include compilation, so jno's persistent compilation cache (which ``import jno``
# switches on for every JAX program) stays off unless JNO_COMPILATION_CACHE names a folder;
# --smoke, a quick check whose timings mean nothing, uses it.
if "--smoke" not in sys.argv[1:]:
    os.environ.setdefault("JNO_COMPILATION_CACHE", "0")

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from blackjax.adaptation.base import get_filter_adapt_info_fn
from jax.flatten_util import ravel_pytree
from scipy.integrate import solve_ivp

import jno

METHODS = (  # in the order of priority: the default runs them in this order
    "nuts",
    "hand_nuts",
    "map_nuts",
    "nuts_dense",
    "nuts_low_rank",
    "mams",
    "map_mams",
    "smc",
    "vi",
    "ensemble",
    "mclmc",
)
CHUNK = 100  # jno's default print_rate: draws per compiled sampling chunk
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


# ------------------------------------------------------------------------------ priors
@dataclasses.dataclass(frozen=True)
class Normal:
    """Independent ``N(mean, sigma²)`` on every component, normalised, with ``sample`` (SMC
    draws its particles from the prior). ``Normal(0, s)`` is ``jno.bayesian.priors.gaussian(s)``."""

    mean: float = 0.0
    sigma: float = 1.0

    def __call__(self, params) -> jax.Array:
        return sum(
            jnp.sum(-0.5 * ((leaf - self.mean) / self.sigma) ** 2)
            - leaf.size * (math.log(self.sigma) + LOG_SQRT_2PI)
            for leaf in jax.tree.leaves(params)
            if eqx.is_inexact_array(leaf)
        )

    def sample(self, key, like):
        leaves, treedef = jax.tree.flatten(like)
        keys = jax.random.split(key, max(len(leaves), 1))
        return treedef.unflatten(
            [
                self.mean + self.sigma * jax.random.normal(k, leaf.shape, leaf.dtype)
                if eqx.is_inexact_array(leaf)
                else leaf
                for k, leaf in zip(keys, leaves)
            ]
        )


def gaussian_loglik(r: jax.Array, std: float) -> jax.Array:
    """What ``r.gaussian(std=σ)`` contributes: ``-Σ r²/(2σ²) - n log(σ √(2π))``."""
    return -0.5 * jnp.sum((r / std) ** 2) - r.size * (math.log(std) + LOG_SQRT_2PI)


# ------------------------------------------------------------------------------ problems
@dataclasses.dataclass
class Built:
    """A fresh jno problem: the network, the physical Parameters, every model's prior, the
    likelihood constraints and the network on the evaluation grid."""

    net: object
    physical: dict
    priors: dict
    constraints: list
    u_grid: object

    def models(self) -> dict:
        return {"net": self.net, **self.physical}


@dataclasses.dataclass
class Problem:
    """One inverse problem, in jno (``build``) and by hand (``logdensity`` of a position
    ``{"net": weights, name: (1,) array, ...}``, starting at ``position0``, the same weights
    as the jno network's)."""

    name: str
    truth: dict
    build: Callable[[], Built]
    logdensity: Callable
    position0: dict
    u_on_grid: Callable  # hand-written position -> (n_grid, out)
    u_exact: np.ndarray  # (n_grid, out)
    description: str


def _points(x: np.ndarray, name: str | None = None, data: np.ndarray | None = None):
    dom = jno.domain(constructor=jno.domain.points(x))
    var, _ = dom.variable("interior")
    return var if name is None else (var, dom.variable(name, data))


def reaction_logdensity(scalar_u, second_order, lam, sigma, priors, u_sensors, f_sensors):
    """The hand-written log-density of ``lam · L u + k tanh(u) = f`` with Gaussian ``u`` and
    ``f`` sensors: ``scalar_u(weights)`` is the network as a function of one point,
    ``second_order(u)`` the point-wise ``L u`` (``u''`` or the Laplacian), each sensor pair
    ``(points, observations)``."""
    (pu, uo), (pf, fo) = u_sensors, f_sensors

    def logdensity(pos):
        u = scalar_u(pos["net"])
        r_f = lam * jax.vmap(second_order(u))(pf) + pos["k"][0] * jnp.tanh(jax.vmap(u)(pf)) - fo
        r_u = jax.vmap(u)(pu) - uo
        return (
            gaussian_loglik(r_u, sigma)
            + gaussian_loglik(r_f, sigma)
            + priors["net"](pos["net"])
            + priors["k"](pos["k"])
        )

    return logdensity


def poisson_problem(seed: int, dtype) -> Problem:
    """``0.01 u'' + k tanh(u) = f`` on [-0.7, 0.7] (B-PINN §4.2, NeuralUQ), ``k = 0.7``."""
    k_true, lam, sigma = 0.7, 0.01, 0.1

    def u_exact(x):
        return np.sin(6 * x) ** 3

    def f_exact(x):
        s, c = np.sin(6 * x), np.cos(6 * x)
        return lam * (216 * s * c**2 - 108 * s**3) + k_true * np.tanh(u_exact(x))

    rng = np.random.default_rng(seed)
    xu = np.linspace(-0.7, 0.7, 8)[:, None]
    xf = np.linspace(-0.7, 0.7, 32)[:, None]
    u_obs = (u_exact(xu) + sigma * rng.normal(size=xu.shape)).astype(dtype)
    f_obs = (f_exact(xf) + sigma * rng.normal(size=xf.shape)).astype(dtype)
    xg = np.linspace(-0.7, 0.7, 201)[:, None]
    xu, xf, xg = (a.astype(dtype) for a in (xu, xf, xg))
    key = jax.random.PRNGKey(seed)
    priors = {"net": jno.bayesian.priors.gaussian(sigma=1.0), "k": Normal(0.5, 1.0)}

    def build() -> Built:
        xs, yu = _points(xu, "u_obs", u_obs)
        x, yf = _points(xf, "f_obs", f_obs)
        grid = _points(xg)
        net = jno.nn.wrap(jno.nn.mlp(1, 1, hidden_dims=50, num_layers=2, key=key), name="u")
        k = jno.np.parameter((1,), name="k", init=0.5)
        u = net(x)
        pde = lam * jno.diff(u, x, order=2) + k * jno.np.tanh(u) - yf
        data = net(xs) - yu
        constraints = [data.gaussian(std=sigma), pde.gaussian(std=sigma)]
        return Built(net, {"k": k}, priors, constraints, net(grid))

    module = jno.nn.mlp(1, 1, hidden_dims=50, num_layers=2, key=key)
    weights, static = eqx.partition(module, eqx.is_inexact_array)
    XU, XF, XG = (jnp.asarray(a[:, 0]) for a in (xu, xf, xg))
    UO, FO = jnp.asarray(u_obs[:, 0]), jnp.asarray(f_obs[:, 0])

    def scalar_u(w):
        net = eqx.combine(w, static)
        return lambda s: net(jnp.reshape(s, (1,)))[0]

    def u_on_grid(pos):
        return jax.vmap(scalar_u(pos["net"]))(XG)[:, None]

    return Problem(
        name="poisson",
        truth={"k": k_true},
        build=build,
        logdensity=reaction_logdensity(
            scalar_u, lambda u: jax.grad(jax.grad(u)), lam, sigma, priors, (XU, UO), (XF, FO)
        ),
        position0={"net": weights, "k": jnp.full((1,), 0.5, dtype)},
        u_on_grid=u_on_grid,
        u_exact=u_exact(xg.astype(np.float64)),
        description=(
            "0.01 u'' + k tanh(u) = f on [-0.7, 0.7], u = sin³(6x), k = 0.7; 8 u + 32 f sensors, "
            "σ = 0.1; 1-50-50-1 tanh (2701 weights), N(0,1) weights, k ~ N(0.5, 1)"
        ),
    )


def ko_problem(seed: int, dtype) -> Problem:
    """Kraichnan–Orszag (NeuralUQ): ``u1' = a u2 u3``, ``u2' = b u1 u3``,
    ``u3' = -(a + b) u1 u2`` on [0, 10], ``u(0) = (1, 0.8, 0.5)``, ``a = b = 1``."""
    a_true, b_true, sigma = 1.0, 1.0, 0.05

    def rhs(t, u):
        return [a_true * u[1] * u[2], b_true * u[0] * u[2], -(a_true + b_true) * u[0] * u[1]]

    ref = solve_ivp(
        rhs, (0.0, 10.0), [1.0, 0.8, 0.5], method="DOP853", rtol=1e-10, atol=1e-12,
        dense_output=True,
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    t_obs = np.linspace(0.0, 10.0, 21)[:, None]
    t_res = np.linspace(0.0, 10.0, 101)[:, None]
    t_grid = np.linspace(0.0, 10.0, 201)[:, None]
    u_obs = (ref.sol(t_obs[:, 0]).T + sigma * rng.normal(size=(21, 3))).astype(dtype)
    t_obs, t_res, t_grid = (a.astype(dtype) for a in (t_obs, t_res, t_grid))
    key = jax.random.PRNGKey(seed)
    priors = {
        "net": jno.bayesian.priors.gaussian(sigma=1.0),
        "a": jno.bayesian.priors.gaussian(sigma=2.0),
        "b": jno.bayesian.priors.gaussian(sigma=2.0),
    }

    def build() -> Built:
        to, y = _points(t_obs, "u_obs", u_obs)
        t = _points(t_res)
        grid = _points(t_grid)
        net = jno.nn.wrap(jno.nn.mlp(1, 3, hidden_dims=50, num_layers=2, key=key), name="u")
        a = jno.np.parameter((1,), name="a", init=0.0)
        b = jno.np.parameter((1,), name="b", init=0.0)
        u = net(t)
        # one derivative of the 3-vector, then its components (jno.diff(u[0:1], t) etc. is
        # the same program: derivatives of components share the vector's nest of JVPs)
        du = jno.diff(u, t)
        u1, u2, u3 = u[0:1], u[1:2], u[2:3]
        residuals = [
            du[0:1] - a * u2 * u3,
            du[1:2] - b * u1 * u3,
            du[2:3] + (a + b) * u1 * u2,
        ]
        constraints = [(net(to) - y).gaussian(std=sigma)]
        constraints += [r.gaussian(std=sigma) for r in residuals]
        return Built(net, {"a": a, "b": b}, priors, constraints, net(grid))

    module = jno.nn.mlp(1, 3, hidden_dims=50, num_layers=2, key=key)
    weights, static = eqx.partition(module, eqx.is_inexact_array)
    TO, TR, TG = (jnp.asarray(a[:, 0]) for a in (t_obs, t_res, t_grid))
    Y = jnp.asarray(u_obs)

    def vector_u(w):
        net = eqx.combine(w, static)
        return lambda s: net(jnp.reshape(s, (1,)))

    def logdensity(pos):
        u = vector_u(pos["net"])
        a, b = pos["a"][0], pos["b"][0]
        v = jax.vmap(u)(TR)  # (101, 3)
        dv = jax.vmap(jax.jacfwd(u))(TR)  # (101, 3)
        r = jnp.stack(
            [
                dv[:, 0] - a * v[:, 1] * v[:, 2],
                dv[:, 1] - b * v[:, 0] * v[:, 2],
                dv[:, 2] + (a + b) * v[:, 0] * v[:, 1],
            ]
        )
        return (
            gaussian_loglik(jax.vmap(u)(TO) - Y, sigma)
            + gaussian_loglik(r, sigma)
            + priors["net"](pos["net"])
            + priors["a"](pos["a"])
            + priors["b"](pos["b"])
        )

    def u_on_grid(pos):
        return jax.vmap(vector_u(pos["net"]))(TG)

    zero = jnp.zeros((1,), dtype)
    return Problem(
        name="ko",
        truth={"a": a_true, "b": b_true},
        build=build,
        logdensity=logdensity,
        position0={"net": weights, "a": zero, "b": zero},
        u_on_grid=u_on_grid,
        u_exact=ref.sol(t_grid[:, 0].astype(np.float64)).T,
        description=(
            "Kraichnan–Orszag on [0, 10], a = b = 1; u1, u2, u3 at 21 times, σ = 0.05; ODE "
            "residual at 101 times, gaussian(std=0.05); 1-50-50-3 tanh (2803 weights), N(0,1) "
            "weights, a, b ~ N(0, 2²)"
        ),
    )


def _plane_points(p: np.ndarray, name: str | None = None, data: np.ndarray | None = None):
    dom = jno.domain(constructor=jno.domain.points(p))
    x, y, _ = dom.variable("interior")
    return (x, y) if name is None else (x, y, dom.variable(name, data))


def _plane_grid(n: int) -> np.ndarray:
    """``n × n`` equispaced points of ``[-1, 1]²``, ``(n², 2)``."""
    g = np.linspace(-1.0, 1.0, n)
    return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


def diffusion2d_problem(seed: int, dtype) -> Problem:
    """``0.1 Δu + k tanh(u) = f`` on ``[-1, 1]²`` (the Poisson problem in two dimensions),
    ``u = sin(πx) sin(πy) + 0.5 sin(πx/2)``, ``k = 0.7``. Two Laplacian eigenfunctions of
    different eigenvalues: with one alone ``Δu ∝ u ≈ tanh u`` and ``k`` is barely identified
    (``u = sin(πx) sin(πy)`` put every sampler's interval at ``k ≈ 0.4 ± 0.1``)."""
    k_true, lam, sigma = 0.7, 0.1, 0.1

    def u_exact(p):
        x, y = p[:, :1], p[:, 1:]
        return np.sin(np.pi * x) * np.sin(np.pi * y) + 0.5 * np.sin(np.pi * x / 2)

    def f_exact(p):
        x, y = p[:, :1], p[:, 1:]
        lap = -2 * np.pi**2 * np.sin(np.pi * x) * np.sin(np.pi * y) - 0.5 * (np.pi / 2) ** 2 * (
            np.sin(np.pi * x / 2)
        )
        return lam * lap + k_true * np.tanh(u_exact(p))

    rng = np.random.default_rng(seed)
    pu, pf, pg = _plane_grid(6), _plane_grid(8), _plane_grid(41)
    u_obs = (u_exact(pu) + sigma * rng.normal(size=(len(pu), 1))).astype(dtype)
    f_obs = (f_exact(pf) + sigma * rng.normal(size=(len(pf), 1))).astype(dtype)
    exact_on_grid = u_exact(pg)
    pu, pf, pg = (a.astype(dtype) for a in (pu, pf, pg))
    key = jax.random.PRNGKey(seed)
    priors = {"net": jno.bayesian.priors.gaussian(sigma=1.0), "k": Normal(0.5, 1.0)}

    def build() -> Built:
        xs, ys, yu = _plane_points(pu, "u_obs", u_obs)
        x, y, yf = _plane_points(pf, "f_obs", f_obs)
        gx, gy = _plane_points(pg)
        net = jno.nn.wrap(jno.nn.mlp(2, 1, hidden_dims=20, num_layers=2, key=key), name="u")
        k = jno.np.parameter((1,), name="k", init=0.5)
        u = net(jno.np.concat([x, y], axis=-1))
        pde = lam * jno.np.laplacian(u, [x, y]) + k * jno.np.tanh(u) - yf
        data = net(jno.np.concat([xs, ys], axis=-1)) - yu
        constraints = [data.gaussian(std=sigma), pde.gaussian(std=sigma)]
        return Built(net, {"k": k}, priors, constraints, net(jno.np.concat([gx, gy], axis=-1)))

    module = jno.nn.mlp(2, 1, hidden_dims=20, num_layers=2, key=key)
    weights, static = eqx.partition(module, eqx.is_inexact_array)
    PU, PF, PG = (jnp.asarray(a) for a in (pu, pf, pg))
    UO, FO = jnp.asarray(u_obs[:, 0]), jnp.asarray(f_obs[:, 0])

    def scalar_u(w):
        net = eqx.combine(w, static)
        return lambda z: net(z)[0]

    def u_on_grid(pos):
        return jax.vmap(scalar_u(pos["net"]))(PG)[:, None]

    return Problem(
        name="diffusion2d",
        truth={"k": k_true},
        build=build,
        logdensity=reaction_logdensity(
            scalar_u, lambda u: lambda z: jnp.trace(jax.hessian(u)(z)), lam, sigma, priors,
            (PU, UO), (PF, FO),
        ),
        position0={"net": weights, "k": jnp.full((1,), 0.5, dtype)},
        u_on_grid=u_on_grid,
        u_exact=exact_on_grid,
        description=(
            "0.1 Δu + k tanh(u) = f on [-1, 1]², u = sin(πx) sin(πy) + 0.5 sin(πx/2), k = 0.7; "
            "6×6 u + 8×8 f "
            "sensors, σ = 0.1; 2-20-20-1 tanh (501 weights), N(0,1) weights, k ~ N(0.5, 1)"
        ),
    )


PROBLEMS = {"poisson": poisson_problem, "ko": ko_problem, "diffusion2d": diffusion2d_problem}


# ------------------------------------------------------------------------------ statistics
def summarise(
    method: str,
    problem: Problem,
    draws: dict,
    u_mean: np.ndarray,
    wall: float,
    grads: float,
    *,
    kind: str = "mcmc",
    steady: float | None = None,
    note: str = "",
) -> dict:
    """One result row. ``draws[name]``: ``(K, N)`` draws of a physical parameter; ``kind``:
    ``"mcmc"`` (R-hat and ESS of the chains), ``"iid"`` (ESS = N, no R-hat) or ``"smc"``
    (R-hat over runs of shuffled particles, no ESS)."""
    params = {}
    rng = np.random.default_rng(0)
    for name, x in draws.items():
        x = np.asarray(x, np.float64)
        lo, hi = np.quantile(x, [0.025, 0.975])
        if kind == "mcmc":
            rhat = float(jno.bayesian.rhat(x[..., None])[0])
            ess = float(jno.bayesian.ess(x[..., None])[0])
        elif kind == "smc":
            shuffled = rng.permuted(x, axis=1)
            rhat = float(jno.bayesian.rhat(shuffled[..., None])[0]) if x.shape[0] > 1 else math.nan
            ess = math.nan
        else:
            rhat, ess = math.nan, float(x.size)
        truth = problem.truth[name]
        params[name] = {
            "truth": truth,
            "mean": float(x.mean()),
            "sd": float(x.std()),
            "q025": float(lo),
            "q975": float(hi),
            "covers": bool(lo <= truth <= hi),
            "rhat": rhat,
            "ess": ess,
            "ess_per_s": ess / wall,
            "finite": bool(np.all(np.isfinite(x))),
            # per chain (run): first and second half, to see a chain that moves late
            "chain_means": [[float(h.mean()) for h in np.array_split(c, 2)] for c in x],
        }
    err = np.linalg.norm(u_mean - problem.u_exact) / np.linalg.norm(problem.u_exact)
    return {
        "method": method,
        "problem": problem.name,
        "wall_s": wall,
        "steady_s": steady,
        "grad_evals": int(grads),
        "draws_shape": list(np.shape(next(iter(draws.values())))),
        "params": params,
        "u_rel_l2": float(err),
        "note": note,
    }


def physical_draws(built: Built) -> dict:
    """``(K, N)`` draws of every physical parameter."""
    return {
        name: np.asarray(m.posterior_samples).reshape(*np.shape(m.posterior_samples)[:2])
        for name, m in built.physical.items()
    }


def u_posterior_mean(crux, built: Built) -> np.ndarray:
    u = np.asarray(crux.eval([built.u_grid], samples="chain"), np.float64)  # (K, N, n, out)
    return u.reshape(-1, *u.shape[-2:]).mean(axis=0)


def nuts_note(built: Built, grads: float, draws: int) -> str:
    diag = built.net.posterior_diagnostics
    div = int(np.sum(diag["is_divergent"])) if "is_divergent" in diag else 0
    acc = float(np.mean(diag["acceptance_rate"])) if "acceptance_rate" in diag else math.nan
    return f"{div} divergent, accept {acc:.2f}, {grads / draws:.0f} grads/draw"


# ------------------------------------------------------------------------------ jno runs
def jno_sample(
    problem: Problem,
    args,
    factory,
    *,
    initializer=None,
    grads_per_step: int = 1,
    **kwargs,
):
    """Build, ``.bayesian(factory, ...)`` every model with its prior, solve; return the pieces
    and the solve's wall time (the initializer, when given, runs inside the solve)."""
    built = problem.build()
    if initializer is not None:
        built.net.initialize(initializer)  # one initializer for the jointly sampled block
    settings = {
        "warmup": args.warmup,
        "keep": args.keep,
        "num_chains": args.chains,
        "init_jitter": args.jitter,
        **kwargs,
    }
    for name, model in built.models().items():
        model.bayesian(factory, prior=built.priors[name], **settings)
    crux = jno.core(built.constraints, seed=args.seed)
    t0 = time.perf_counter()
    crux.solve(progress=False)
    wall = time.perf_counter() - t0
    grads = grads_per_step * crux.solver.grad_evals
    if initializer is not None:
        grads += initializer.last_num_grad_evals or 0
    return built, crux, wall, grads


def steady_jno(crux, built: Built, draws: int) -> float | None:
    """Seconds of ``draws`` more draws per chain from the adapted state (after the stats)."""
    if draws <= 0:
        return None
    t0 = time.perf_counter()
    crux.solve(draws, progress=False)
    jax.block_until_ready(built.net.posterior_samples)
    return time.perf_counter() - t0


def mcmc_row(method, problem, args, built, crux, wall, grads, note="") -> dict:
    draws = physical_draws(built)
    total = args.chains * (args.warmup + args.keep)
    row = summarise(
        method,
        problem,
        draws,
        u_posterior_mean(crux, built),
        wall,
        grads,
        note=note or nuts_note(built, grads, total),
    )
    row["steady_s"] = steady_jno(crux, built, args.steady)
    return row


def run_nuts(problem: Problem, args) -> dict:
    built, crux, wall, grads = jno_sample(
        problem, args, blackjax.nuts, max_num_doublings=args.max_doublings
    )
    return mcmc_row("nuts", problem, args, built, crux, wall, grads)


def run_nuts_dense(problem: Problem, args) -> dict:
    """NUTS with a dense ``(D, D)`` inverse mass matrix. blackjax factorises the matrix
    (Cholesky and a triangular solve, ``O(D³)``) every time the kernel is built, i.e. every
    transition, so ``--dense-warmup/--dense-keep/--dense-chains`` can give it a smaller
    budget than the other methods."""
    args = argparse.Namespace(**vars(args))
    args.warmup = args.dense_warmup or args.warmup
    args.keep = args.dense_keep or args.keep
    args.chains = args.dense_chains or args.chains
    args.steady = min(args.steady, args.keep)
    built, crux, wall, grads = jno_sample(
        problem,
        args,
        blackjax.nuts,
        max_num_doublings=args.max_doublings,
        is_mass_matrix_diagonal=False,
    )
    row = mcmc_row("nuts_dense", problem, args, built, crux, wall, grads)
    row["note"] += (
        f"; {args.chains} chains × ({args.warmup} warm-up + {args.keep}) draws, "
        f"steady s for {args.steady} draws"
    )
    return row


def run_nuts_low_rank(problem: Problem, args) -> dict:
    """NUTS with ``M⁻¹ = diag(σ)(I + U(Λ - I)Uᵀ)diag(σ)``, ``U: (D, --max-rank)``, adapted
    from the warm-up draws and their gradients: ``O(D k)`` a leapfrog."""
    built, crux, wall, grads = jno_sample(
        problem,
        args,
        blackjax.nuts,
        max_num_doublings=args.max_doublings,
        max_rank=args.max_rank,
    )
    row = mcmc_row("nuts_low_rank", problem, args, built, crux, wall, grads)
    row["note"] += f"; rank {args.max_rank}"
    return row


def run_map_nuts(problem: Problem, args) -> dict | None:
    try:
        from jno.bayesian.initializers import map_pipeline
    except ImportError as err:
        print(f"map_nuts: skipped, jno.bayesian.map_pipeline cannot be imported ({err})")
        return None
    pipeline = map_pipeline(
        num_starts=args.map_starts,
        adam_steps=args.map_adam,
        adam_lr=1e-3,
        lbfgs_steps=args.map_lbfgs,
    )
    built, crux, wall, grads = jno_sample(
        problem,
        args,
        blackjax.nuts,
        initializer=pipeline,
        max_num_doublings=args.max_doublings,
    )
    modes = pipeline.modes
    note = (
        f"{0 if modes is None else len(modes)} mode(s), chains/mode "
        f"{[] if pipeline.chains_per_mode is None else pipeline.chains_per_mode.tolist()}, "
        f"pipeline {pipeline.timings.get('total', math.nan):.1f} s / "
        f"{pipeline.last_num_grad_evals} grads; "
    )
    total = args.chains * (args.warmup + args.keep)
    note += nuts_note(built, grads - (pipeline.last_num_grad_evals or 0), total)
    return mcmc_row("map_nuts", problem, args, built, crux, wall, grads, note)


def run_mams(problem: Problem, args, pipeline=None, method: str = "mams") -> dict:
    built, crux, wall, grads = jno_sample(
        problem,
        args,
        blackjax.adjusted_mclmc_dynamic,
        initializer=pipeline,
        grads_per_step=2,
        target_num_integration_steps=args.mams_steps,
        step_size=args.mams_step_size,
    )
    total = args.chains * (args.warmup + args.keep)
    note = nuts_note(built, grads, total)
    if pipeline is not None:
        note = (
            f"{len(pipeline.modes)} mode(s), chains/mode {pipeline.chains_per_mode.tolist()}, "
            f"pipeline {pipeline.timings.get('total', math.nan):.1f} s; " + note
        )
    return mcmc_row(method, problem, args, built, crux, wall, grads, note)


def run_map_mams(problem: Problem, args) -> dict:
    """``map_pipeline`` (multi-start MAP, chains at the best modes), then MAMS."""
    from jno.bayesian.initializers import map_pipeline

    pipeline = map_pipeline(
        num_starts=args.map_starts, adam_steps=args.map_adam, lbfgs_steps=args.map_lbfgs
    )
    return run_mams(problem, args, pipeline, "map_mams")


def run_mclmc(problem: Problem, args) -> dict:
    built, crux, wall, grads = jno_sample(
        problem, args, blackjax.mclmc, grads_per_step=2, thin=args.mclmc_thin
    )
    steps = args.warmup + args.keep * args.mclmc_thin
    diag = built.net.posterior_diagnostics
    energy = np.asarray(diag.get("energy_change", np.nan))
    note = (
        f"unadjusted; thin {args.mclmc_thin}, {steps} steps/chain; "
        f"energy change var/dim {np.nanvar(energy) / problem_dim(problem):.2g}"
    )
    row = mcmc_row("mclmc", problem, args, built, crux, wall, grads, note)
    return row


def problem_dim(problem: Problem) -> int:
    return ravel_pytree(problem.position0)[0].shape[0]


def run_smc(problem: Problem, args) -> dict:
    built = problem.build()
    for name, model in built.models().items():
        model.bayesian(
            blackjax.adaptive_tempered_smc,
            prior=built.priors[name],
            num_particles=args.particles,
            num_chains=args.smc_runs,
            max_tempering_steps=args.smc_max_tempering,
        )
    crux = jno.core(built.constraints, seed=args.seed)
    t0 = time.perf_counter()
    crux.solve(progress=False)
    wall = time.perf_counter() - t0
    history = crux.history
    steps = _history_values(history, "tempering_steps")
    log_z, se = crux.evidence()
    note = (
        f"P={args.particles} × {args.smc_runs} runs, tempering steps {steps}, "
        f"log Z {log_z:.1f} ± {se:.1f}"
    )
    return summarise(
        "smc",
        problem,
        physical_draws(built),
        u_posterior_mean(crux, built),
        wall,
        crux.solver.grad_evals,
        kind="smc",
        note=note,
    )


def _history_values(history, prefix: str) -> list:
    """Last recorded values of the history metrics whose name starts with ``prefix``."""
    return [
        np.asarray(values)[-1].tolist()
        for name, (_, values) in history.metrics.items()
        if name.startswith(prefix)
    ]


def run_vi(problem: Problem, args) -> dict:
    built = problem.build()
    schedule = optax.cosine_decay_schedule(args.vi_lr, args.vi_steps, alpha=0.01)
    for name, model in built.models().items():
        model.vi(
            blackjax.meanfield_vi,
            optimizer=optax.adam(schedule),
            prior=built.priors[name],
            num_samples=args.vi_samples,
            posterior_draws=args.chains * args.keep,
            init_log_std=args.vi_init_log_std,
        )
    crux = jno.core(built.constraints, seed=args.seed)
    t0 = time.perf_counter()
    crux.solve(args.vi_steps, progress=False)
    wall = time.perf_counter() - t0
    elbo = getattr(crux.history, "elbo", {}) or {}
    last = {k: float(np.asarray(v)[-1]) for k, v in elbo.items()}
    grads = args.vi_steps * args.vi_samples * len(built.models())
    note = f"{args.vi_steps} steps, one VI block per model, final ELBO {last}"
    return summarise(
        "vi",
        problem,
        physical_draws(built),
        u_posterior_mean(crux, built),
        wall,
        grads,
        kind="iid",
        note=note,
    )


def run_ensemble(problem: Problem, args) -> dict:
    built = problem.build()
    schedule = optax.cosine_decay_schedule(args.ens_lr, args.ens_steps, alpha=0.01)
    for name, model in built.models().items():
        model.ensemble(size=args.ens_size, optimizer=optax.adam(schedule), prior=built.priors[name])
    crux = jno.core(built.constraints, seed=args.seed)
    t0 = time.perf_counter()
    crux.solve(args.ens_steps, progress=False)
    wall = time.perf_counter() - t0
    loss = float(np.asarray(crux.history.total_loss)[-1])
    note = f"{args.ens_size} members × {args.ens_steps} Adam steps, final mean loss {loss:.4g}"
    return summarise(
        "ensemble",
        problem,
        physical_draws(built),
        u_posterior_mean(crux, built),
        wall,
        args.ens_steps * args.ens_size,
        kind="iid",
        note=note,
    )


# ------------------------------------------------------------------------------ hand-written
def run_hand_nuts(problem: Problem, args) -> dict:
    """blackjax only: window adaptation and NUTS on ``problem.logdensity``, vmapped over the
    chains, sampled in ``CHUNK``-draw compiled scans whose draws go to the host."""
    logdensity = problem.logdensity
    flat0, unravel = ravel_pytree(problem.position0)
    k_start, k_warm, k_draw = jax.random.split(jax.random.PRNGKey(args.seed + 1), 3)
    noise = jax.random.normal(k_start, (args.chains, flat0.size), flat0.dtype)
    starts = jax.vmap(unravel)(flat0 + args.jitter * noise)
    chunk = min(CHUNK, args.keep)

    @jax.jit
    def warm_up(keys, positions):
        def one(key, position):
            wa = blackjax.window_adaptation(
                blackjax.nuts,
                logdensity,
                initial_step_size=1.0,
                max_num_doublings=args.max_doublings,
                adaptation_info_fn=get_filter_adapt_info_fn(info_keys={"num_integration_steps"}),
            )
            (state, params), info = wa.run(key, position, num_steps=args.warmup)
            tuned = {k: params[k] for k in ("step_size", "inverse_mass_matrix")}
            return state, tuned, jnp.sum(info.info.num_integration_steps)

        return jax.vmap(one)(keys, positions)

    @jax.jit
    def sample(keys, states, params):
        def one(ks, state, prm):
            kernel = blackjax.nuts(logdensity, max_num_doublings=args.max_doublings, **prm)

            def body(st, k):
                st, info = kernel.step(k, st)
                rec = (
                    {name: v for name, v in st.position.items() if name != "net"},
                    problem.u_on_grid(st.position),
                    info.num_integration_steps,
                    info.is_divergent,
                    info.acceptance_rate,
                )
                return st, rec

            return jax.lax.scan(body, state, ks)

        return jax.vmap(one)(keys, states, params)

    def chunk_keys(i):
        return jax.random.split(jax.random.fold_in(k_draw, i), args.chains * chunk).reshape(
            args.chains, chunk, -1
        )

    t0 = time.perf_counter()
    states, params, warm_grads = warm_up(jax.random.split(k_warm, args.chains), starts)
    records = []
    for i in range(math.ceil(args.keep / chunk)):
        states, rec = sample(chunk_keys(i), states, params)
        records.append(jax.tree.map(np.asarray, rec))
    wall = time.perf_counter() - t0
    rec = jax.tree.map(lambda *a: np.concatenate(a, axis=1)[:, : args.keep], *records)
    phys, u, steps, divergent, accept = rec
    grads = int(np.sum(warm_grads)) + int(np.sum(steps))
    steady = None
    if args.steady > 0:
        t1 = time.perf_counter()
        states, extra = sample(chunk_keys(10**6), states, params)
        jax.block_until_ready(extra)
        steady = (time.perf_counter() - t1) * args.steady / chunk
    draws = {name: v[..., 0] for name, v in phys.items()}
    u_mean = np.asarray(u, np.float64).reshape(-1, *u.shape[-2:]).mean(axis=0)
    total = args.chains * (args.warmup + args.keep)
    note = (
        f"{int(divergent.sum())} divergent, accept {float(accept.mean()):.2f}, "
        f"{grads / total:.0f} grads/draw, step sizes {np.round(np.asarray(params['step_size']), 4)}"
    )
    return summarise("hand_nuts", problem, draws, u_mean, wall, grads, steady=steady, note=note)


RUNNERS = {
    "nuts": run_nuts,
    "hand_nuts": run_hand_nuts,
    "nuts_dense": run_nuts_dense,
    "nuts_low_rank": run_nuts_low_rank,
    "map_nuts": run_map_nuts,
    "mams": run_mams,
    "map_mams": run_map_mams,
    "mclmc": run_mclmc,
    "smc": run_smc,
    "vi": run_vi,
    "ensemble": run_ensemble,
}


# ------------------------------------------------------------------------------ output
def _fmt(x, spec: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return format(x, spec)


def table(rows: list[dict]) -> str:
    """One Markdown table: a line per method and physical parameter."""
    hand = next((r for r in rows if r["method"] == "hand_nuts"), None)
    lines = [
        "| method | param | mean | sd | 95 % | cover | R-hat | ESS | ESS/s | ÷hand | wall s | "
        "steady s | grads | u L2 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for i, (name, p) in enumerate(r["params"].items()):
            ratio = math.nan
            if hand is not None and hand["params"][name]["ess_per_s"] > 0:
                ratio = p["ess_per_s"] / hand["params"][name]["ess_per_s"]
            first = i == 0
            lines.append(
                f"| {r['method'] if first else ''} | {name} (truth {p['truth']:g}) | "
                f"{p['mean']:.4f} | {p['sd']:.4f} | [{p['q025']:.3f}, {p['q975']:.3f}] | "
                f"{'yes' if p['covers'] else 'NO'} | {_fmt(p['rhat'], '.3f')} | "
                f"{_fmt(p['ess'], '.0f')} | {_fmt(p['ess_per_s'], '.2f')} | {_fmt(ratio, '.2f')} | "
                f"{_fmt(r['wall_s'] if first else None, '.1f')} | "
                f"{_fmt(r['steady_s'] if first else None, '.1f')} | "
                f"{_fmt(r['grad_evals'] if first else None, '.3g')} | "
                f"{_fmt(r['u_rel_l2'] if first else None, '.3g')} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problem", choices=(*PROBLEMS, "both"), default="both",
                        help="both: poisson and ko (NeuralUQ's two)")
    parser.add_argument("--method", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--keep", type=int, default=500)
    parser.add_argument("--jitter", type=float, default=0.1, help="init_jitter of the chains")
    parser.add_argument("--max-doublings", type=int, default=8, help="NUTS tree depth cap")
    parser.add_argument("--steady", type=int, default=100, help="extra draws timed; 0: off")
    parser.add_argument("--max-rank", type=int, default=10, help="nuts_low_rank's rank")
    parser.add_argument("--dense-warmup", type=int, default=0, help="nuts_dense; 0: --warmup")
    parser.add_argument("--dense-keep", type=int, default=0, help="nuts_dense; 0: --keep")
    parser.add_argument("--dense-chains", type=int, default=0, help="nuts_dense; 0: --chains")
    parser.add_argument("--mams-steps", type=float, default=128.0)
    parser.add_argument("--mams-step-size", type=float, default=1e-3)
    parser.add_argument("--mclmc-thin", type=int, default=10)
    parser.add_argument("--particles", type=int, default=256)
    parser.add_argument("--smc-runs", type=int, default=4)
    parser.add_argument("--smc-max-tempering", type=int, default=1000)
    parser.add_argument("--vi-steps", type=int, default=20000)
    parser.add_argument("--vi-samples", type=int, default=8)
    parser.add_argument("--vi-lr", type=float, default=1e-3)
    parser.add_argument("--vi-init-log-std", type=float, default=math.log(0.01))
    parser.add_argument("--ens-size", type=int, default=8)
    parser.add_argument("--ens-steps", type=int, default=20000)
    parser.add_argument("--ens-lr", type=float, default=1e-3)
    parser.add_argument("--map-starts", type=int, default=8)
    parser.add_argument("--map-adam", type=int, default=2000)
    parser.add_argument("--map-lbfgs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a quick check")
    parser.add_argument("--float64", action="store_true")
    parser.add_argument("--json", default=None, help="write the rows to this file")
    parser.add_argument("--quiet", action="store_true", help="jno's INFO log off")
    args = parser.parse_args(argv)
    if args.smoke:
        args.warmup, args.keep, args.chains, args.steady = 20, 20, 2, 20
        args.particles, args.smc_runs, args.vi_steps, args.ens_steps = 16, 2, 50, 50
        args.map_starts = 2
        args.max_doublings, args.mclmc_thin = min(args.max_doublings, 4), 2
        args.dense_warmup, args.dense_keep, args.dense_chains = 6, 6, 2
        args.mams_steps, args.map_adam, args.map_lbfgs = 8.0, 100, 100
        args.smc_max_tempering = 10
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    logging.getLogger("jno").setLevel(logging.WARNING if args.quiet else logging.INFO)
    dtype = np.float64 if args.float64 else np.float32
    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs; jax {jax.__version__} "
        f"({jax.default_backend()}), blackjax {blackjax.__version__}; "
        f"{'float64' if args.float64 else 'float32'}; load average "
        f"{tuple(round(x, 2) for x in os.getloadavg())}"
    )
    print(f"settings: {json.dumps(vars(args))}")
    names = ("poisson", "ko") if args.problem == "both" else (args.problem,)
    all_rows = []
    for name in names:
        problem = PROBLEMS[name](args.seed, dtype)
        print(f"\n## {name}: {problem.description} (D = {problem_dim(problem)})")
        rows = []
        for method in args.method:
            print(f"\n--- {name} / {method}", flush=True)
            t0 = time.perf_counter()
            try:
                row = RUNNERS[method](problem, args)
            except Exception as err:  # a failing method is a result, not the end of the run
                print(f"{method}: FAILED after {time.perf_counter() - t0:.1f} s: "
                      f"{type(err).__name__}: {err}")  # fmt: skip
                continue
            if row is None:
                continue
            rows.append(row)
            params = ", ".join(
                f"{k} {p['mean']:.4f} ± {p['sd']:.4f} R-hat {_fmt(p['rhat'], '.3f')} "
                f"ESS {_fmt(p['ess'], '.0f')}"
                for k, p in row["params"].items()
            )
            print(
                f"{method}: {row['wall_s']:.1f} s, {row['grad_evals']} grads, {params}, "
                f"u L2 {row['u_rel_l2']:.3g}; {row['note']} "
                f"(method total {time.perf_counter() - t0:.1f} s)",
                flush=True,
            )
            for k, p in row["params"].items():
                halves = "; ".join(f"{a:.3f}, {b:.3f}" for a, b in p["chain_means"])
                print(f"  {k} per chain (first half, second half): {halves}")
        print(f"\n### {name}\n\n{table(rows)}\n")
        for r in rows:
            print(f"* {r['method']}: {r['note']}")
        all_rows += rows
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(all_rows, fh, indent=1)
    return all_rows


if __name__ == "__main__":
    main()
