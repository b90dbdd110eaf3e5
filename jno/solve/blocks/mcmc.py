"""Full-data MCMC: any blackjax kernel whose factory takes ``logdensity_fn`` first (NUTS, HMC,
MALA, custom ``SamplingAlgorithm`` factories).

The kernel is rebuilt from its factory around the current log-density at every step (cheap:
Python closures at trace time). Two families share the step:

* :class:`HMCBlock` runs the kernels blackjax's window adaptation tunes, recognised by
  identity (:data:`WINDOW_ADAPTED`, blackjax's ``hmc_family`` and ``dynamic_hmc``). With
  ``adapt=True`` it runs window adaptation over warm-up, every chain on its own, and keeps the
  adapted ``step_size`` and ``inverse_mass_matrix`` per chain in ``BlockState.tuned``.
* :class:`MCMCBlock` runs every other factory whose first parameter is ``logdensity_fn``
  (MALA, random walks, a user's own kernel) with the arguments given to ``.bayesian``; it has
  no tuner, so ``step_size=`` is required.
"""

from __future__ import annotations

import dataclasses

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.base import get_filter_adapt_info_fn
from blackjax.mcmc.metrics import LowRankInverseMassMatrix
from jax.flatten_util import ravel_pytree

from ...family import Tuner, accepts, factory_signature, register_family
from ...trace.pointset import default_float
from ..state import BlockState
from .base import (
    SamplingBlock,
    field_of,
    inverse_mass_matrix,
    low_rank_dense,
    low_rank_diagonal,
    scalar_info,
)

#: The kernels ``blackjax.window_adaptation`` tunes (``step_size`` and
#: ``inverse_mass_matrix`` on a euclidean metric), by identity: ``blackjax.hmc_family``
#: (hmc, nuts, multinomial_hmc) and ``dynamic_hmc``. Compared with ``is``: blackjax's
#: top-level APIs are unhashable dataclasses.
WINDOW_ADAPTED = (blackjax.nuts, blackjax.hmc, blackjax.dynamic_hmc, blackjax.multinomial_hmc)


#: ``.bayesian`` keywords of the HMC family that go to the window adaptation, not the kernel
#: (``max_rank`` selects ``blackjax.window_adaptation_low_rank``)
ADAPTATION_KEYWORDS = ("is_mass_matrix_diagonal", "target_acceptance_rate", "max_rank")


def low_rank_metric(imm, rank: int) -> LowRankInverseMassMatrix:
    """An inverse mass matrix as blackjax's low-rank form
    ``M⁻¹ = diag(σ) (I + U (Λ - I) Uᵀ) diag(σ)`` with ``U: (D, rank)``, ``Λ: (rank,)``.

    A ``(D,)`` diagonal ``v`` (or the diagonal of a ``(D, D)`` matrix) is ``σ = √v``, ``Λ = 1``
    (``U`` then does not matter; zeros); a :class:`LowRankInverseMassMatrix` (an initializer's)
    keeps its leading ``rank`` directions, padded with ``Λ = 1``.
    """
    if isinstance(imm, LowRankInverseMassMatrix):
        have = imm.lam.shape[-1]
        if have >= rank:
            return LowRankInverseMassMatrix(imm.sigma, imm.U[:, :rank], imm.lam[:rank])
        pad = rank - have
        return LowRankInverseMassMatrix(
            imm.sigma,
            jnp.pad(imm.U, ((0, 0), (0, pad))),
            jnp.pad(imm.lam, (0, pad), constant_values=1.0),
        )
    imm = jnp.asarray(imm)
    diag = jnp.diag(imm) if imm.ndim == 2 else imm
    return LowRankInverseMassMatrix(
        sigma=jnp.sqrt(diag),
        U=jnp.zeros(diag.shape + (rank,), diag.dtype),
        lam=jnp.ones((rank,), diag.dtype),
    )


def _without_adaptation(settings):
    """``settings`` without the window adaptation's keywords (what the kernel takes)."""
    kw = {k: v for k, v in settings.kernel_kwargs.items() if k not in ADAPTATION_KEYWORDS}
    return dataclasses.replace(settings, kernel_kwargs=kw)


def one_of(factory, kernels) -> bool:
    """Whether ``factory`` is one of ``kernels`` (by identity)."""
    return any(factory is k for k in kernels)


def check_kernel_kwargs(where: str, settings, extra: tuple[str, ...] = ()) -> None:
    """Every keyword given to ``.bayesian`` must be one the factory (or the step) accepts."""
    for name in settings.kernel_kwargs:
        if name not in extra and not accepts(settings.factory, name):
            params = [p.name for p in factory_signature(settings.factory)[1:]]
            raise TypeError(
                f"{where}: .bayesian({settings.name}, {name}=...): the kernel does not accept "
                f"`{name}`; it takes {', '.join(params + list(extra)) or 'no keywords'}."
            )


class SampledBlock(SamplingBlock):
    """What every MCMC family shares: the ``warmup/keep/thin`` schedule and its defaults."""

    def kept_rows(self, steps: np.ndarray) -> np.ndarray:
        s = self.settings
        steps = np.asarray(steps)
        return (steps >= s.warmup) & ((steps - s.warmup + 1) % s.thin == 0)

    def default_epochs(self, done: int) -> int:
        s = self.settings
        full = s.warmup + s.keep * s.thin
        return full - done if done < full else s.keep * s.thin

    def describe(self) -> str:
        s = self.settings
        return (
            f"Model {self.label}: Bayesian sampling via '{s.name}' (kind={self.family}, "
            f"warmup={s.warmup}, keep={s.keep}, thin={s.thin}, chains={s.num_chains}, "
            f"adapt={s.adapts}, likelihood_scale={s.likelihood_scale:g}, "
            f"diagnostics={self.schema(s)})"
        )


@register_family
class MCMCBlock(SampledBlock):
    """Full-data MCMC with a blackjax ``SamplingAlgorithm`` factory and no tuner: the kernel
    runs with the arguments given to ``.bayesian``."""

    family = "full"
    diagnostics = ("is_divergent", "acceptance_rate", "energy", "num_integration_steps")

    @classmethod
    def claims(cls, factory) -> bool:
        params = factory_signature(factory)
        if params and params[0].name == "logdensity_fn":
            return True
        return [p.name for p in params] == ["args", "kwargs"] and hasattr(factory, "build_kernel")

    @classmethod
    def validate(cls, where: str, settings) -> None:
        check_kernel_kwargs(where, settings)
        if "step_size" not in settings.kernel_kwargs and not cls.adapts(settings):
            raise ValueError(
                f"{where}: .bayesian({settings.name}, ...) needs step_size=. Only HMC-family "
                "kernels (nuts, hmc) with adapt=True and warmup > 0 choose one by window "
                "adaptation; pass e.g. step_size=1e-3."
            )

    @classmethod
    def schema(cls, settings) -> str:
        if settings.factory is blackjax.mala:
            return "acceptance_rate"
        return "fields of the kernel's info"

    def kernel(self, logdensity, tuned: dict):
        return self.settings.factory(logdensity, **{**self.settings.kernel_kwargs, **tuned})

    def init(self, key, position, objective, tuned):
        return self.kernel(self.log_posterior(objective), tuned).init(position)

    def step(self, key, state: BlockState, objective):
        kernel = self.kernel(self.log_posterior(objective), state.tuned)
        kstate = kernel.init(self.position(state.kernel)) if self.refresh else state.kernel
        new, info = kernel.step(key, kstate)
        out = scalar_info(info, self.diagnostics)
        logdensity = field_of(new, "logdensity")
        if logdensity is not None:
            out["nonfinite"] = ~jnp.isfinite(logdensity)
        return BlockState(new, state.tuned), out


@register_family
class HMCBlock(MCMCBlock):
    """The HMC family (:data:`WINDOW_ADAPTED`): ``step_size`` and ``inverse_mass_matrix`` are
    per-chain kernel arguments, chosen by blackjax's window adaptation in warm-up.

    Three keywords of ``.bayesian`` go to the window adaptation, not to the kernel:

    * ``is_mass_matrix_diagonal=False`` adapts a dense ``(D, D)`` inverse mass matrix (the
      covariance of the warm-up draws, for posteriors whose parameters are correlated);
    * ``max_rank=k`` adapts a diagonal plus rank-``k`` inverse mass matrix with
      ``blackjax.window_adaptation_low_rank`` (nutpie's Fisher-divergence estimate from the
      warm-up draws and their gradients, started from the gradient at the chain's start):
      ``M⁻¹ = diag(σ)(I + U(Λ - I)Uᵀ)diag(σ)``, ``O(D k)`` a leapfrog, for thousands of
      parameters with a few strongly correlated directions (networks) where a dense matrix's
      ``O(D³)`` factorisation and ``O(D²)`` estimate are out of reach. The adapted metric is
      a :class:`~blackjax.mcmc.metrics.LowRankInverseMassMatrix`. An initializer's diagonal
      becomes its ``σ²`` (``Λ = 1``) and its low-rank matrix keeps its leading ``k``
      directions; the kernel runs with them when ``adapt=False`` (warm-up starts from the
      gradient at the start instead, as nutpie does);
    * ``target_acceptance_rate`` (default 0.8) the acceptance the step size is tuned to.
    """

    priority = 1  # asked before MCMCBlock, which claims these factories too
    tuner = Tuner.WINDOW

    @classmethod
    def claims(cls, factory) -> bool:
        return one_of(factory, WINDOW_ADAPTED)

    @classmethod
    def validate(cls, where: str, settings) -> None:
        check_kernel_kwargs(where, settings, ADAPTATION_KEYWORDS)
        super().validate(where, _without_adaptation(settings))
        rate = settings.kernel_kwargs.get("target_acceptance_rate", 0.8)
        if not (isinstance(rate, (int, float)) and 0.0 < rate < 1.0):
            raise ValueError(
                f"{where}: .bayesian({settings.name}, target_acceptance_rate={rate!r}): give a "
                "number between 0 and 1 (blackjax's default is 0.8; 0.9-0.95 for hard geometry)"
            )
        dense = settings.kernel_kwargs.get("is_mass_matrix_diagonal", True)
        if not isinstance(dense, bool):
            raise TypeError(
                f"{where}: .bayesian({settings.name}, is_mass_matrix_diagonal={dense!r}): give "
                "True (a diagonal inverse mass matrix) or False (a dense one)"
            )
        rank = settings.kernel_kwargs.get("max_rank")
        if rank is None:
            return
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
            raise TypeError(
                f"{where}: .bayesian({settings.name}, max_rank={rank!r}): give a positive "
                "integer, the number of correlated directions the low-rank metric learns "
                "(e.g. 10)"
            )
        if dense is False:
            raise ValueError(
                f"{where}: .bayesian({settings.name}, max_rank={rank}, "
                "is_mass_matrix_diagonal=False): choose one metric: a dense matrix "
                "(is_mass_matrix_diagonal=False) or a diagonal plus low rank (max_rank=)"
            )
        if "inverse_mass_matrix" in settings.kernel_kwargs:
            imm = np.asarray(settings.kernel_kwargs["inverse_mass_matrix"])
            if imm.ndim == 2:
                raise ValueError(
                    f"{where}: .bayesian({settings.name}, max_rank={rank}, "
                    "inverse_mass_matrix=<(D, D) matrix>): a low-rank metric starts from a "
                    "diagonal; give a (D,) array or a scalar"
                )

    @classmethod
    def schema(cls, settings) -> str:
        return "is_divergent, acceptance_rate, energy"

    @property
    def dense(self) -> bool:
        """Whether warm-up adapts a dense inverse mass matrix."""
        return self.settings.kernel_kwargs.get("is_mass_matrix_diagonal", True) is False

    @property
    def max_rank(self) -> int | None:
        """The rank of the low-rank metric's correction (``None``: no low-rank metric)."""
        return self.settings.kernel_kwargs.get("max_rank")

    def rank_for(self, dim: int) -> int:
        """The low-rank correction's rank for a position of ``dim`` numbers."""
        return min(self.max_rank, dim)

    def metric_argument(self, value):
        if self.max_rank is not None:
            low_rank = isinstance(value, LowRankInverseMassMatrix)
            dim = (value.sigma if low_rank else jnp.asarray(value)).shape[0]
            return low_rank_metric(value, self.rank_for(dim))
        if self.dense and isinstance(value, LowRankInverseMassMatrix):
            return low_rank_dense(value)
        return super().metric_argument(value)

    def kernel(self, logdensity, tuned: dict):
        kw = _without_adaptation(self.settings).kernel_kwargs
        return self.settings.factory(logdensity, **{**kw, **tuned})

    def tuning(self, position) -> dict:
        s = self.settings
        dim = ravel_pytree(position)[0].shape[0]
        imm = inverse_mass_matrix(
            s.kernel_kwargs.get("inverse_mass_matrix"), dim, f"model(s) {self.label}"
        )
        if self.max_rank is not None:
            imm = low_rank_metric(imm, self.rank_for(dim))
        elif self.dense and imm.ndim == 1:
            imm = jnp.diag(imm)
        return {
            "step_size": jnp.asarray(s.kernel_kwargs.get("step_size", 1.0), default_float()),
            "inverse_mass_matrix": imm,
        }

    def adapt(self, key, state: BlockState, objective, num_steps: int):
        """blackjax window adaptation for ``num_steps`` steps from the chain's position:
        ``blackjax.window_adaptation`` from the chain's matrix, or with ``max_rank``
        ``blackjax.window_adaptation_low_rank``, after which the chain continues from
        blackjax's re-centred state ``μ* = x̄ + σ² ⊙ ᾱ`` (the mean of the last window's
        draws, moved by their mean score)."""
        s = self.settings
        kw = {
            k: v
            for k, v in s.kernel_kwargs.items()
            if k not in ("step_size", "inverse_mass_matrix")
        }
        position = self.position(state.kernel)
        common = dict(
            initial_step_size=state.tuned["step_size"],
            # the low-rank adaptation reads its last mu_star from the info; the other keeps none
            adaptation_info_fn=get_filter_adapt_info_fn(
                info_keys={"num_integration_steps"}, adapt_state_keys={"mu_star"}
            ),
        )
        if self.max_rank is None:
            wa = blackjax.window_adaptation(
                s.factory,
                self.log_posterior(objective),
                initial_inverse_mass_matrix=self.initial_matrix(state.tuned),
                **common,
                **kw,
            )
        else:
            kw.pop("is_mass_matrix_diagonal", None)
            kw["max_rank"] = self.rank_for(ravel_pytree(position)[0].shape[0])
            wa = blackjax.window_adaptation_low_rank(
                s.factory,
                self.log_posterior(objective),
                gradient_based_init=True,
                **common,
                **kw,
            )
        (kstate, params), info = wa.run(key, position, num_steps=num_steps)
        tuned = jax.tree.map(
            lambda a: jnp.asarray(a, default_float()),
            {k: params[k] for k in ("step_size", "inverse_mass_matrix")},
        )
        steps = getattr(info.info, "num_integration_steps", None)
        grads = jnp.sum(steps) if steps is not None else jnp.asarray(num_steps)
        return BlockState(kstate, tuned), grads

    def initial_matrix(self, tuned: dict):
        """The chain's matrix as ``blackjax.window_adaptation`` starts from it: dense or
        diagonal as the block adapts (an initializer's may be either, or low-rank)."""
        initial = tuned["inverse_mass_matrix"]
        if isinstance(initial, LowRankInverseMassMatrix):
            initial = low_rank_diagonal(initial)
        if self.dense and initial.ndim == 1:
            return jnp.diag(initial)
        if not self.dense and initial.ndim == 2:
            return jnp.diag(initial)
        return initial
