"""Multi-start MAP pipeline: Adam + L-BFGS from several starts, distinct modes, curvature."""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import optax
import scipy.sparse.linalg as ssl
from blackjax.mcmc.metrics import LowRankInverseMassMatrix
from jax.flatten_util import ravel_pytree

from ._base import (
    BayesianInitializer,
    GradCounter,
    LogDensityFn,
    PyTree,
    check_num_chains,
    is_traced,
    unravel_starts,
)
from ._laplace import hessian_diagonal, minimize

logger = logging.getLogger("jno")
_result = functools.partial(dataclasses.field, init=False, repr=False, compare=False)


def dense_hessian(
    objective: Callable[[jax.Array], jax.Array], x: jax.Array, batch_size: int
) -> jax.Array:
    """``∇²f(x)`` as a symmetric ``(D, D)`` array, ``batch_size`` Hessian-vector products
    (forward-over-reverse, as :func:`hessian_diagonal`) at a time: peak extra memory is
    ``O(batch_size · D)`` beyond the result, unlike ``jax.hessian``'s ``D`` at once."""
    _, hvp = jax.linearize(jax.grad(objective), x)
    columns = jax.lax.map(hvp, jnp.eye(x.shape[0], dtype=x.dtype), batch_size=batch_size)
    return 0.5 * (columns + columns.T)


def low_rank_curvature(
    objective: Callable[[jax.Array], jax.Array], x: jax.Array, diag: np.ndarray, rank: int
) -> LowRankInverseMassMatrix:
    r"""A diagonal plus rank-``rank`` inverse of ``H = ∇²f(x)`` from Hessian-vector products.

    With ``σ = diag(H)^{-1/2}`` (``diag``: the exact diagonal) the whitened Hessian
    ``H̃ = diag(σ) H diag(σ)`` has a unit diagonal; Lanczos (``scipy.sparse.linalg.eigsh``,
    about ``rank`` times a few dozen products) finds its ``rank`` extreme eigenpairs
    ``H̃ u_j = μ_j u_j``, half from each end of the spectrum (the longest and the shortest
    directions of the Laplace approximation), and

    ``M⁻¹ = diag(σ) (I + U (Λ - I) Uᵀ) diag(σ)``, ``Λ = diag(1/μ_j)``,

    inverts ``H`` on the directions ``w_j = diag(σ) u_j`` (``M⁻¹ H w_j = w_j``) and keeps the
    conditional variances ``1/diag(H)`` on the rest. blackjax's
    kernels take it as it is (``O(D·rank)`` a leapfrog). Eigenpairs Lanczos did not converge
    are left out; with none, ``Λ = 1`` (the diagonal alone).
    """
    sigma = 1.0 / np.sqrt(np.asarray(diag, np.float64))
    dim = sigma.shape[0]
    rank = min(rank, dim - 1)
    s = jnp.asarray(sigma, x.dtype)
    _, hvp = jax.linearize(jax.grad(objective), x)
    whitened = jax.jit(lambda v: s * hvp(s * v))

    def matvec(v: np.ndarray) -> np.ndarray:
        return np.asarray(whitened(jnp.asarray(np.ravel(v), x.dtype)), np.float64)

    op = ssl.LinearOperator((dim, dim), matvec=matvec, dtype=np.float64)
    which = "BE" if rank >= 2 else "SA"
    start = np.ones(dim) / np.sqrt(dim)  # a fixed Lanczos start: the same result every call
    try:
        mu, vecs = ssl.eigsh(op, k=rank, which=which, tol=1e-4, maxiter=50 * dim, v0=start)
    except ssl.ArpackNoConvergence as err:
        mu, vecs = err.eigenvalues, err.eigenvectors
        logger.warning(
            "map_pipeline: Lanczos found %d of %d eigenpairs of the whitened Hessian; the "
            "low-rank mass matrix uses those.", len(mu), rank,
        )  # fmt: skip
    keep = mu > 0
    u = np.zeros((dim, rank))
    lam = np.ones(rank)
    u[:, : keep.sum()] = vecs[:, keep]
    lam[: keep.sum()] = 1.0 / mu[keep]
    dtype = x.dtype
    return LowRankInverseMassMatrix(
        jnp.asarray(sigma, dtype), jnp.asarray(u, dtype), jnp.asarray(lam, dtype)
    )


@dataclasses.dataclass
class MapPipeline(BayesianInitializer):
    r"""Chain starts in the distinct modes found by a multi-start MAP search, and the
    curvature at the best mode as mass matrix.

    With ``f(θ) = -log p(θ)`` on the raveled position ``θ ∈ R^D`` and ``K`` chains:

    1. ``S = num_starts`` starts: ``θ₀`` (the current position) and ``θ₀ + start_scale·z_s``,
       ``z_s ~ N(0, I_D)``, ``s = 1..S-1``. ``start_scale`` is an absolute sd in the raveled
       coordinates. The default 0.1 keeps a network's weights at their scale: a Glorot/LeCun
       initialisation draws weights of size ``1/√fan_in`` (0.1-0.3 for widths 16-64), which a
       perturbation of 0.1 changes by an order-one fraction, while unit noise would grow the
       pre-activations by ``≈√fan_in`` and saturate tanh units. Give a larger value to spread
       physical parameters over their plausible range.
    2. Each start: ``adam_steps`` steps of ``optax.adam(adam_lr)`` (robust far from a mode),
       then ``optax.lbfgs()`` by :func:`minimize` (at most ``lbfgs_steps`` updates, ``gtol``,
       ``ftol``). The ``S`` starts are vmapped; each stage is one jitted program.
    3. Modes: the finite optima sorted by ``f``; an optimum joins a kept mode when their
       distance in the metric of the best mode's curvature ``H₁``,
       ``√((θ_a - θ_b)ᵀ H₁ (θ_a - θ_b))`` (posterior sds), is below ``merge_tol``. Optima of
       one basin differ by the optimiser's tolerance (≪ 1 sd); two bumps closer than about
       one sd are one mode for a sampler. A mode whose damped Hessian is not positive
       definite (a saddle or maximum the search stopped on) is dropped, with a warning.
    4. Curvature at every distinct mode ``m``: ``H_m = ∇²f(θ_m) + δI`` (``δ = damping``),
       dense (:func:`dense_hessian`, Cholesky ``H_m = L_m L_mᵀ``) when ``D ≤ dense_limit``,
       else its exact diagonal (:func:`hessian_diagonal`), and at the mass matrix's mode
       (6) ``max_rank`` extreme eigenpairs of the whitened Hessian
       (:func:`low_rank_curvature`).
    5. Chains: mode ``m`` gets ``n_m`` chains. ``allocation="evidence"`` (default) makes
       ``n_m`` proportional to the Laplace evidence ``w_m ∝ exp(-f(θ_m)) det(H_m)^{-1/2}``
       (the diagonal's product when not dense), rounded by largest remainder, so that a mode
       of negligible mass gets no chain; ``"round_robin"`` deals chain ``k`` to mode
       ``k mod M`` in order of ``f``. A chain's start is
       ``θ_m + start_noise · L_m⁻ᵀ ζ`` (dense) or ``θ_m + start_noise · diag(H_m)^{-1/2} ζ``,
       ``ζ ~ N(0, I_D)``: a draw from the mode's Laplace approximation. ``K == 1``: ``θ₁``.
    6. ``inverse_mass_matrix`` is ``H_c⁻¹`` of the mode ``c`` with the most chains (ties: the
       lowest ``f``; ``c = 1``, the MAP, unless the evidence puts more mass elsewhere):
       ``(D, D)`` when dense (``diag(H_c⁻¹)``, ``(D,)``, with ``dense_imm=False``), else the
       diagonal plus low rank :class:`~blackjax.mcmc.metrics.LowRankInverseMassMatrix` of
       :func:`low_rank_curvature` (``1 / diag(H_c)``, ``(D,)``, with ``max_rank=0``). One
       matrix serves every chain (the solver broadcasts it), also those started at other
       modes.

    With ``adapt=True`` the solver's window adaptation re-estimates the mass matrix from this
    start: from the dense matrix's diagonal for the default diagonal adaptation, from the
    whole matrix with ``is_mass_matrix_diagonal=False``. With ``adapt=False`` (and a
    ``step_size``, about ``0.5-1`` in the Laplace metric) the chains use it as it is (a low-rank
    one too: blackjax's HMC family takes it). MCLMC and MAMS, whose integrators take a
    diagonal, get its diagonal.

    After a call: :attr:`last_num_grad_evals` (Adam + L-BFGS gradients, as computed: the
    vmapped loops evaluate finished starts until the slowest is done; the ``M · D``
    Hessian-vector products of step 4 are not included), :attr:`timings` (seconds per
    stage, compilation included), :attr:`modes` (``(M,)`` ``f`` of the distinct modes,
    ascending), :attr:`mode_weights` and :attr:`chains_per_mode` (``(M,)``),
    :attr:`mode_positions` (the modes ``θ_m``, leaves with a leading ``(M,)`` axis). Stages are
    logged on the ``"jno"`` logger at INFO. Must be called eagerly (modes are chosen on the
    host); ``solve()`` does.

    Args:
        num_starts: ``S ≥ 1``.
        start_scale: sd of the start perturbations (see 1).
        adam_steps: Adam steps per start (0 skips Adam).
        adam_lr: Adam learning rate.
        lbfgs_steps: maximum L-BFGS updates per start (0 skips L-BFGS).
        gtol: gradient-norm tolerance of L-BFGS.
        ftol: relative objective-change tolerance of L-BFGS; ``None`` means ``10·eps``.
        merge_tol: merge distance in sds of the best mode (see 3).
        allocation: ``"evidence"`` or ``"round_robin"`` (see 5).
        start_noise: scale of the chains' draws around their modes (1 = the Laplace sd).
        dense_limit: largest ``D`` with a dense Hessian.
        dense_imm: return the dense ``H_c⁻¹`` (when the Hessian is dense).
        max_rank: eigenpairs of the low-rank correction above ``dense_limit`` (0: the
            diagonal alone).
        damping: ``δ ≥ 0`` added to the Hessian diagonal.
        hvp_batch_size: Hessian-vector products per vectorised chunk.

    Raises:
        ValueError: for a bad argument (named); if every start diverged; if the damped
            Hessian at the best optimum is not positive definite (increase ``damping`` or
            add a prior).
    """

    num_starts: int = 8
    start_scale: float = 0.1
    adam_steps: int = 2000
    adam_lr: float = 1e-3
    lbfgs_steps: int = 2000
    gtol: float = 1e-6
    ftol: float | None = None
    merge_tol: float = 1.0
    allocation: Literal["evidence", "round_robin"] = "evidence"
    start_noise: float = 1.0
    dense_limit: int = 2000
    dense_imm: bool = True
    max_rank: int = 10
    damping: float = 0.0
    hvp_batch_size: int = 64
    timings: dict[str, float] = _result(default_factory=dict)
    modes: np.ndarray | None = _result(default=None)
    mode_weights: np.ndarray | None = _result(default=None)
    chains_per_mode: np.ndarray | None = _result(default=None)
    mode_positions: PyTree = _result(default=None)

    def __post_init__(self) -> None:
        for name, low in (("num_starts", 1), ("lbfgs_steps", 0), ("adam_steps", 0),
                          ("dense_limit", 0), ("hvp_batch_size", 1), ("max_rank", 0)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"map_pipeline: {name} must be an integer >= {low}, got {value!r}")
        for name in ("start_scale", "gtol", "merge_tol", "start_noise", "damping", "ftol"):
            value = getattr(self, name)
            if not (value is None and name == "ftol") and not float(value) >= 0:
                raise ValueError(f"map_pipeline: {name} must be >= 0, got {value!r}")
        if not self.adam_lr > 0:
            raise ValueError(f"map_pipeline: adam_lr must be > 0, got {self.adam_lr!r}")
        if self.allocation not in ("evidence", "round_robin"):
            raise ValueError(
                f"map_pipeline: allocation must be 'evidence' or 'round_robin', "
                f"got {self.allocation!r}"
            )

    def __call__(
        self,
        rng_key: jax.Array,
        logdensity_fn: LogDensityFn,
        position: PyTree,
        num_chains: int,
    ) -> tuple[PyTree, dict[str, jax.Array]]:
        """See :meth:`BayesianInitializer.__call__`."""
        num_chains = check_num_chains(num_chains)
        if is_traced(position) or is_traced(rng_key):
            raise ValueError("map_pipeline chooses modes on the host: call it outside jit/vmap")
        flat0, unravel = ravel_pytree(position)
        dim, dtype = flat0.shape[0], flat0.dtype
        dense = dim <= self.dense_limit
        ftol = 10 * float(jnp.finfo(dtype).eps) if self.ftol is None else self.ftol
        counters = {"adam": GradCounter(), "lbfgs": GradCounter()}

        def objective(logd: LogDensityFn) -> Callable[[jax.Array], jax.Array]:
            return lambda x: -logd(unravel(x))

        f = objective(logdensity_fn)
        f_adam, f_lbfgs = (objective(c.wrap(logdensity_fn)) for c in counters.values())
        start_key, noise_key = jax.random.split(rng_key)
        z = jax.random.normal(start_key, (self.num_starts - 1, dim), dtype)
        x0 = jnp.concatenate([flat0[None], flat0 + self.start_scale * z])

        @jax.jit
        def adam(xs: jax.Array) -> jax.Array:
            opt = optax.adam(self.adam_lr)

            def step(_: jax.Array, carry: tuple) -> tuple:
                x, state = carry
                updates, state = opt.update(jax.grad(f_adam)(x), state, x)
                return optax.apply_updates(x, updates), state

            run = lambda x: jax.lax.fori_loop(0, self.adam_steps, step, (x, opt.init(x)))[0]
            return jax.vmap(run)(xs)

        @jax.jit
        def lbfgs(xs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
            def run(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
                x, ok = minimize(f_lbfgs, x, optax.lbfgs(), self.lbfgs_steps, self.gtol, ftol)
                return x, f(x), ok

            return jax.vmap(run)(xs)

        @jax.jit
        def curvature(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
            """``(H or diag(H), L or diag(H)^{1/2}, log det H)``, damped; NaN if not PD."""
            if dense:
                hess = dense_hessian(f, x, self.hvp_batch_size)
                hess = hess + self.damping * jnp.eye(dim, dtype=dtype)
                factor = jnp.linalg.cholesky(hess)  # NaN (or a 0 pivot) when not PD
                factor = jnp.where(jnp.all(jnp.diag(factor) > 0), factor, jnp.nan)
                return hess, factor, 2 * jnp.sum(jnp.log(jnp.diag(factor)))
            diag = hessian_diagonal(f, x, self.hvp_batch_size) + self.damping
            root = jnp.where(diag > 0, jnp.sqrt(diag), jnp.nan)
            return diag, root, 2 * jnp.sum(jnp.log(root))

        tic = time.perf_counter()
        xs = adam(x0).block_until_ready() if self.adam_steps else x0
        self.timings = {"adam": time.perf_counter() - tic}
        if self.lbfgs_steps:
            xs, fs, converged = (np.asarray(a) for a in lbfgs(xs))
        else:  # curvature at the (Adam) points as they are
            xs, fs, converged = np.asarray(xs), np.asarray(jax.vmap(f)(xs)), np.ones(len(xs), bool)
        self.timings["lbfgs"] = time.perf_counter() - tic - self.timings["adam"]
        grads = {k: c.total(xs) for k, c in counters.items()}
        self.last_num_grad_evals = grads["adam"] + grads["lbfgs"]

        finite = np.isfinite(fs) & np.all(np.isfinite(xs), axis=1)
        if not finite.any():
            raise ValueError(
                "map_pipeline: every start diverged (non-finite -log density); lower "
                "`adam_lr` or `start_scale`, add a prior, or check the log-density."
            )
        order = [int(i) for i in np.argsort(np.where(finite, fs, np.inf))[: finite.sum()]]
        tic = time.perf_counter()
        curv = [tuple(np.asarray(a) for a in curvature(jnp.asarray(xs[order[0]])))]
        if not np.all(np.isfinite(curv[0][1])):
            h = curv[0][0]
            finite = np.all(np.isfinite(h))
            low = float(np.min(np.linalg.eigvalsh(h) if dense else h)) if finite else np.nan
            raise ValueError(
                f"map_pipeline: the damped Hessian of -log density at the best optimum (-log p "
                f"{fs[order[0]]:.6g}) is not positive definite: smallest "
                f"{'eigenvalue' if dense else 'diagonal entry'} {low:.3g} with damping="
                f"{self.damping:g}; increase `damping` above {max(self.damping - low, 0):.3g}, "
                "add a prior, or optimise in float64 (a float32 L-BFGS stops short of the mode "
                "of an ill-conditioned posterior)."
            )
        metric = curv[0][0]

        def distance(a: np.ndarray, b: np.ndarray) -> float:
            d = (a - b).astype(np.float64)
            return float(np.sqrt(abs(d @ metric @ d if dense else d @ (metric * d))))

        kept, num_hessians = [order[0]], 1
        for i in order[1:]:
            if min(distance(xs[i], xs[j]) for j in kept) < self.merge_tol:
                continue
            c = tuple(np.asarray(a) for a in curvature(jnp.asarray(xs[i])))
            num_hessians += 1
            if np.all(np.isfinite(c[1])):
                kept.append(i)
                curv.append(c)
            else:
                logger.warning(
                    "map_pipeline: dropped an optimum with -log p %.6g: its Hessian is not "
                    "positive definite (a saddle point or a flat direction).",
                    fs[i],
                )
        self.timings["curvature"] = time.perf_counter() - tic

        log_w = np.array([-fs[i] - 0.5 * c[2] for i, c in zip(kept, curv)], np.float64)
        weights = np.exp(log_w - log_w.max())
        weights /= weights.sum()
        num_modes = len(kept)
        if self.allocation == "round_robin":
            counts = np.bincount(np.arange(num_chains) % num_modes, minlength=num_modes)
        else:
            share = num_chains * weights
            counts = np.floor(share).astype(int)
            extra = np.argsort(-(share - counts), kind="stable")[: num_chains - counts.sum()]
            counts[extra] += 1
        if num_chains == 1:  # the single chain starts at the best mode
            counts = np.eye(num_modes, dtype=int)[0]
        self.modes, self.mode_weights, self.chains_per_mode = fs[kept], weights, counts
        self.mode_positions = jax.vmap(unravel)(jnp.asarray(xs[kept]))

        precisions, factors, _ = (np.stack(a) for a in zip(*curv))
        main = int(np.argmax(counts))  # the mode with the most chains; ties: the lowest f
        if dense:
            cov = np.asarray(
                jsl.cho_solve((jnp.asarray(factors[main]), True), jnp.eye(dim, dtype=dtype))
            )
            imm = cov if self.dense_imm else np.diag(cov)
        elif self.max_rank:
            tic = time.perf_counter()
            imm = low_rank_curvature(f, jnp.asarray(xs[kept[main]]), precisions[main],
                                     self.max_rank)  # fmt: skip
            self.timings["low_rank"] = time.perf_counter() - tic
        else:
            imm = 1.0 / precisions[main]
        if num_chains == 1:
            flat_starts = jnp.asarray(xs[kept[0]])
        else:
            assignment = jnp.asarray(np.repeat(np.arange(num_modes), counts))
            noise = jax.random.normal(noise_key, (num_chains, dim), dtype)
            chol = jnp.asarray(factors)[assignment]
            if dense:  # L⁻ᵀ ζ has covariance (L Lᵀ)⁻¹ = H⁻¹
                dev = jax.vmap(lambda c, v: jsl.solve_triangular(c.T, v, lower=False))(chol, noise)
            else:
                dev = noise / chol
            flat_starts = jnp.asarray(xs[kept])[assignment] + self.start_noise * dev
        self.timings["total"] = sum(self.timings.values())
        logger.info(
            "map_pipeline: %d starts, D=%d -> %d distinct mode(s), -log p %s, chains per mode "
            "%s, mass matrix of mode %d; adam %.2f s (%s grads), L-BFGS %.2f s (%s grads, "
            "%d/%d converged), %s curvature %.2f s (%d Hessian-vector products)",
            self.num_starts, dim, num_modes, np.array2string(self.modes, precision=6),
            counts.tolist(), main, self.timings["adam"], grads["adam"], self.timings["lbfgs"],
            grads["lbfgs"], int(converged.sum()), self.num_starts,
            "dense" if dense else "diagonal", self.timings["curvature"], num_hessians * dim,
        )  # fmt: skip
        if not converged[kept[0]]:
            logger.warning(
                "map_pipeline: L-BFGS at the best mode used all lbfgs_steps=%d without "
                "meeting gtol=%g or ftol=%g; the mode may be inexact.",
                self.lbfgs_steps, self.gtol, ftol,
            )  # fmt: skip
        if not isinstance(imm, LowRankInverseMassMatrix):
            imm = jnp.asarray(imm, dtype)
        return unravel_starts(flat_starts, unravel, num_chains), {"inverse_mass_matrix": imm}


map_pipeline = MapPipeline
