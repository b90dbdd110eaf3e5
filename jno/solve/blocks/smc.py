r"""Adaptive tempered sequential Monte Carlo: ``.bayesian(blackjax.adaptive_tempered_smc,
num_particles=P)``, with the log evidence.

Tempered SMC moves ``P`` particles from the prior to the posterior through the bridge

.. math:: \pi_\lambda(\theta) \propto p(\theta)\, L(\theta)^{\lambda},\qquad
          0 = \lambda_0 < \lambda_1 < \dots < \lambda_T = 1,

reweighting by ``L^{λ_{t+1} - λ_t}``, resampling, and moving every particle by
``num_mcmc_steps`` MCMC steps that leave ``π_{λ_t}`` invariant. blackjax's adaptive kernel
chooses each ``λ_{t+1}`` so that the weights keep an effective sample size of
``target_ess · P``. Because every particle starts from the prior and the reweighting sees the
whole likelihood, the particles find *every* mode the prior puts mass on and weigh them by
their posterior mass: the case where MCMC chains stay in the mode they started in.

The product of the mean incremental weights is an unbiased estimate of the evidence:

.. math:: \hat Z = \prod_{t=0}^{T-1} \frac1P \sum_i w_t^{(i)},\qquad
          w_t^{(i)} = L(\theta_t^{(i)})^{\lambda_{t+1}-\lambda_t},

with ``L`` the normalised likelihood jno's objective defines (``exp(-Σ_k w_k L_k)``, every
constant included) and ``p`` the normalised prior, so ``log Ẑ`` estimates
``log p(data) = log ∫ L(θ) p(θ) dθ`` (:meth:`jno.crux.Crux.evidence`).

How it runs in a solve. One solve step runs the whole tempering (a ``lax.while_loop`` until
``λ = 1`` or ``max_tempering_steps``); ``num_chains=K`` runs ``K`` independent SMCs (vmapped),
whose spread gives the evidence's standard error. The final particles, resampled once by
their last weights, are the ``posterior_samples`` ``(K, P, *param)``. The history records
run 0's ``log_evidence:<label>``, ``tempering_steps:<label>`` and ``acceptance_rate:<label>``
(every run's evidence is in the state, read by ``crux.evidence()``).

The MCMC moves. By default an HMC kernel (``blackjax.hmc``, ``num_integration_steps=10``)
whose inverse mass matrix is re-estimated at every tempering step as the particles' weighted
covariance (dense up to :data:`DENSE_LIMIT` numbers, its diagonal beyond). Its step size
starts at ``step_size`` (default ``0.5·D^{-1/4}``) and is scaled after each tempering step by
``exp(acceptance - target_acceptance_rate)`` (default target 0.65), at most
:data:`MAX_STEP_SIZE`: the particles' spread sets the scale, the acceptance the length. Every
particle moves with its own step size, drawn in ``[step/2, step]``, so no trajectory length
is shared by all of them. Any other ``mcmc_step_fn``/``mcmc_init_fn``/``mcmc_parameters``
(blackjax's ``build_kernel()``/``init`` pairs, e.g. ``blackjax.rmh``) is used as given.

This module is the whole family: it registers itself, and the solve layer knows it only
through the block protocol (and :attr:`~.base.Block.alone`: it must be the only trained model
of its solve, whose objective cannot move under it).
"""

from __future__ import annotations

from typing import NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.smc.resampling import systematic
from jax.flatten_util import ravel_pytree

from ...family import factory_signature, register_family
from ...trace.pointset import default_float
from ..state import BlockState
from .base import SamplingBlock

#: ``.bayesian`` keywords this family takes besides the factory's own
OWN_KEYWORDS = (
    "num_particles",
    "step_size",
    "num_integration_steps",
    "target_acceptance_rate",
    "max_tempering_steps",
)
#: the factory's keywords the family fills in (defaults below) and the user may override
FACTORY_KEYWORDS = (
    "mcmc_step_fn",
    "mcmc_init_fn",
    "mcmc_parameters",
    "resampling_fn",
    "target_ess",
    "num_mcmc_steps",
    "root_solver",
)
#: positions of up to this many numbers get a dense inverse mass matrix in the default moves
DENSE_LIMIT = 200
#: the default HMC moves' largest step size: in the metric of the particles' covariance a
#: Gaussian posterior has unit scales, and leapfrog diverges at a step of 2
MAX_STEP_SIZE = 1.0
DEFAULTS = {
    "num_particles": 1000,
    "num_integration_steps": 10,
    "target_acceptance_rate": 0.65,
    "max_tempering_steps": 1000,
    "target_ess": 0.5,
    "num_mcmc_steps": 10,
}


class SMCRun(NamedTuple):
    """One SMC run's state (per chain).

    Attributes:
        smc: blackjax's ``TemperedSMCState`` (particles ``(P, ...)``, weights ``(P,)``, λ).
        log_evidence: ``log Ẑ`` accumulated over the tempering steps so far.
        tempering_steps: the number of tempering steps taken.
        step_size: the default HMC move's current step size.
        acceptance_rate: the mean acceptance of the last tempering step's MCMC moves.
    """

    smc: object
    log_evidence: jax.Array
    tempering_steps: jax.Array
    step_size: jax.Array
    acceptance_rate: jax.Array


@register_family
class TemperedSMCBlock(SamplingBlock):
    """``blackjax.adaptive_tempered_smc`` (a factory whose first parameter is ``logprior_fn``
    and which chooses its own temperatures, ``target_ess``) as a block."""

    family = "smc"
    priority = 10
    records = False
    alone = True
    population_draws = True
    diagnostics = None
    metrics = ("log_evidence", "tempering_steps", "acceptance_rate")

    @classmethod
    def claims(cls, factory) -> bool:
        params = factory_signature(factory)
        return bool(params) and params[0].name == "logprior_fn"

    @classmethod
    def validate(cls, where: str, settings) -> None:
        names = {p.name for p in factory_signature(settings.factory)}
        if "target_ess" not in names:
            raise TypeError(
                f"{where}: .bayesian({settings.name}, ...): jno runs tempered SMC with an "
                "adaptive schedule; use blackjax.adaptive_tempered_smc (the temperatures are "
                "chosen to keep target_ess)."
            )
        kw = settings.kernel_kwargs
        unknown = sorted(set(kw) - set(OWN_KEYWORDS) - set(FACTORY_KEYWORDS))
        if unknown:
            raise TypeError(
                f"{where}: .bayesian({settings.name}, {unknown[0]}=...): not a keyword of "
                f"tempered SMC; it takes {', '.join(OWN_KEYWORDS + FACTORY_KEYWORDS)}."
            )
        moves = [k for k in ("mcmc_step_fn", "mcmc_init_fn", "mcmc_parameters") if k in kw]
        if moves and len(moves) < 3:
            raise ValueError(
                f"{where}: .bayesian({settings.name}, {moves[0]}=...): give mcmc_step_fn, "
                "mcmc_init_fn and mcmc_parameters together (e.g. blackjax.rmh.build_kernel(), "
                "blackjax.rmh.init, {...}), or none of them for the tuned HMC moves."
            )
        p = kw.get("num_particles", DEFAULTS["num_particles"])
        if isinstance(p, bool) or not isinstance(p, int) or p < 2:
            raise ValueError(
                f"{where}: .bayesian({settings.name}, num_particles={p!r}): give an integer "
                ">= 2 (hundreds to thousands: the particles are the posterior draws)"
            )
        for name in ("target_ess", "target_acceptance_rate"):
            value = kw.get(name, DEFAULTS[name])
            if not (isinstance(value, (int, float)) and 0.0 < value < 1.0):
                raise ValueError(
                    f"{where}: .bayesian({settings.name}, {name}={value!r}): give a number "
                    f"between 0 and 1 (default {DEFAULTS[name]})"
                )
        if settings.prior is not None and not hasattr(settings.prior, "sample"):
            raise TypeError(
                f"{where}: .bayesian({settings.name}, prior=...): SMC starts its particles "
                "from the prior, so the prior needs a sample(key, like) method; use one of "
                "jno.bayesian.priors (gaussian, laplace, student_t, layerwise_gaussian)."
            )

    @classmethod
    def schema(cls, settings) -> str:
        return "none (history: log_evidence, tempering_steps, acceptance_rate)"

    # ------------------------------------------------------------------ settings
    def _get(self, name: str):
        return self.settings.kernel_kwargs.get(name, DEFAULTS.get(name))

    @property
    def num_particles(self) -> int:
        return self._get("num_particles")

    @property
    def keep(self) -> int:
        return self.num_particles

    def default_epochs(self, done: int) -> int:
        """One step runs the whole tempering; a finished run has nothing left to do."""
        return 1 if done == 0 else 0

    def describe(self) -> str:
        s = self.settings
        return (
            f"Model {self.label}: Bayesian sampling via '{s.name}' (kind=smc, "
            f"num_particles={self.num_particles}, runs={s.num_chains}, "
            f"target_ess={self._get('target_ess')}, num_mcmc_steps={self._get('num_mcmc_steps')}"
            f", likelihood_scale={s.likelihood_scale:g}, diagnostics={self.schema(s)})"
        )

    # ------------------------------------------------------------------ protocol
    def _logprior(self, position):
        return sum(prior(position[m.key]) for prior, m in zip(self.priors, self.members))

    def init(self, key, position, objective, tuned):
        """``P`` particles drawn from the prior (a constrained Parameter's prior restricted
        to its support, in the unconstrained coordinates the kernel moves)."""
        keys = jax.random.split(key, self.num_particles)

        def draw(k):
            return {
                m.key: prior.sample(jax.random.fold_in(k, i), position[m.key])
                for i, (prior, m) in enumerate(zip(self.priors, self.members))
            }

        particles = jax.vmap(draw)(keys)
        dim = ravel_pytree(position)[0].shape[0]
        step = self.settings.kernel_kwargs.get("step_size", 0.5 * dim**-0.25)
        zero = jnp.zeros((), default_float())
        return SMCRun(
            blackjax.smc.tempered.init(particles),
            log_evidence=zero,
            tempering_steps=jnp.zeros((), jnp.int32),
            step_size=jnp.asarray(step, default_float()),
            acceptance_rate=zero,
        )

    def _algorithm(self, key, objective, particles, weights, step_size):
        """blackjax's adaptive tempered SMC around this step's log-likelihood, with the
        default HMC moves tuned to ``particles``."""
        kw = {k: v for k, v in self.settings.kernel_kwargs.items() if k not in OWN_KEYWORDS}
        if "mcmc_step_fn" not in kw:
            n = self.num_particles
            kw["mcmc_step_fn"] = blackjax.hmc.build_kernel()
            kw["mcmc_init_fn"] = blackjax.hmc.init
            kw["mcmc_parameters"] = {
                # a step size per particle in [step/2, step]: no trajectory length is shared,
                # so no direction is near a period of the dynamics for every particle
                "step_size": step_size * jax.random.uniform(key, (n,), minval=0.5, maxval=1.0),
                "inverse_mass_matrix": particle_covariance(particles, weights)[None],
                "num_integration_steps": jnp.asarray([self._get("num_integration_steps")]),
            }
        kw.setdefault("resampling_fn", systematic)
        kw.setdefault("target_ess", self._get("target_ess"))
        kw.setdefault("num_mcmc_steps", self._get("num_mcmc_steps"))
        return self.settings.factory(self._logprior, lambda position: -objective(position)[0], **kw)

    def step(self, key, state: BlockState, objective):
        """The whole tempering from the run's particles to ``λ = 1``."""
        target = self._get("target_acceptance_rate")
        default_moves = "mcmc_step_fn" not in self.settings.kernel_kwargs

        def running(carry):
            run, _ = carry
            return (run.smc.tempering_param < 1.0) & (
                run.tempering_steps < self._get("max_tempering_steps")
            )

        def tempering_step(carry):
            run, k = carry
            k, sub = jax.random.split(k)
            k, jitter = jax.random.split(k)
            algorithm = self._algorithm(
                jitter, objective, run.smc.particles, run.smc.weights, run.step_size
            )
            new, info = algorithm.step(sub, run.smc)
            accept = jnp.mean(_acceptance(info.update_info))
            step_size = run.step_size
            if default_moves:  # leapfrog is unstable past 2 in the particles' own metric
                step_size = jnp.minimum(step_size * jnp.exp(accept - target), MAX_STEP_SIZE)
            run = SMCRun(
                new,
                run.log_evidence + info.log_likelihood_increment,
                run.tempering_steps + 1,
                step_size,
                accept,
            )
            return run, k

        run, _ = jax.lax.while_loop(running, tempering_step, (state.kernel, key))
        moves = self._get("num_mcmc_steps") * self.num_particles
        if default_moves:
            moves = moves * self._get("num_integration_steps")
        info = {
            "log_evidence": run.log_evidence,
            "tempering_steps": run.tempering_steps,
            "acceptance_rate": run.acceptance_rate,
            "num_integration_steps": (run.tempering_steps - state.kernel.tempering_steps) * moves,
            "nonfinite": ~jnp.all(jnp.isfinite(run.log_evidence)),
        }
        return BlockState(run, state.tuned), info

    def position(self, kernel_state):
        """Every run's first particle (a posterior draw once the run is done); the engine
        asks with the runs stacked, ``(K, P, ...) -> (K, ...)``."""
        return jax.tree.map(lambda a: a[:, 0], kernel_state.smc.particles)

    def posterior(self, key, state: BlockState, recorded):
        """Every run's particles resampled once by their final weights: ``(K, P, ...)``."""
        runs = state.kernel.smc
        num_runs = np.shape(runs.weights)[0]

        def resample(k, particles, weights):
            idx = systematic(k, weights, self.num_particles)
            return jax.tree.map(lambda a: a[idx], particles)

        keys = jax.random.split(key, num_runs)
        return jax.vmap(resample)(keys, runs.particles, runs.weights)


def particle_covariance(particles, weights) -> jax.Array:
    """The weighted covariance of the raveled particles ``(P, D)``: dense ``(D, D)`` up to
    :data:`DENSE_LIMIT` numbers (a little jitter on the diagonal keeps it positive
    definite when particles coincide after resampling), its diagonal ``(D,)`` beyond."""
    flat = jax.vmap(lambda p: ravel_pytree(p)[0])(particles)
    mean = weights @ flat
    centred = flat - mean
    if flat.shape[1] > DENSE_LIMIT:
        return jnp.maximum(weights @ centred**2, jnp.finfo(flat.dtype).tiny)
    cov = (centred * weights[:, None]).T @ centred
    jitter = 1e-6 * jnp.mean(jnp.diag(cov)) + jnp.finfo(flat.dtype).tiny
    return cov + jitter * jnp.eye(flat.shape[1], dtype=flat.dtype)


def _acceptance(update_info) -> jax.Array:
    """The acceptance rates in an MCMC move's info (``1`` when it reports none)."""
    rate = getattr(update_info, "acceptance_rate", None)
    return jnp.ones(()) if rate is None else rate


def log_evidence(values) -> tuple[float, float]:
    r"""``(log Ẑ, standard error)`` from ``K`` independent runs' ``log Ẑ_k``.

    ``Ẑ = (1/K) Σ_k Ẑ_k`` (unbiased, as each ``Ẑ_k`` is), and by the delta method
    ``se(log Ẑ) = sd(Ẑ_k / Ẑ) / sqrt(K)``; ``nan`` for one run.
    """
    v = np.asarray(values, np.float64).ravel()
    k = v.size
    top = np.max(v)
    log_z = top + np.log(np.mean(np.exp(v - top)))
    if k < 2:
        return float(log_z), float("nan")
    ratio = np.exp(v - log_z)
    return float(log_z), float(np.std(ratio, ddof=1) / np.sqrt(k))
