"""Configurator settings recorded on models (`.bayesian`, `.vi`, `.ensemble`).

Validation that needs nothing but the arguments happens here, at configuration time, so a
misuse is a clear error on the line that made it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HMC_FAMILY_NAMES = ("nuts", "hmc", "dynamic_hmc", "multinomial_hmc")


def kernel_family(factory: Callable, where: str) -> str:
    """``"full"`` (first parameter ``logdensity_fn``) or ``"sg"`` (``grad_estimator``).

    blackjax's top-level kernels hide their signature behind ``*args``; their ``build_kernel``
    and ``init`` reveal the family instead.
    """
    if not callable(factory):
        raise TypeError(f"{where}: kernel_factory must be callable, got {factory!r}")
    name = factory_name(factory)
    if name in ("sgld", "sghmc", "sgnht", "csgld"):
        return "sg"
    try:
        params = list(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        params = []
    if params and params[0] == "logdensity_fn":
        return "full"
    if params and params[0] == "grad_estimator":
        return "sg"
    if params[:2] == ["args", "kwargs"] and hasattr(factory, "build_kernel"):
        return "full"
    raise TypeError(
        f"{where}: cannot tell the kernel family of {name!r}: its first parameter must be named "
        "`logdensity_fn` (full-data MCMC: nuts, hmc, mala, custom SamplingAlgorithm factories) or "
        "`grad_estimator` (stochastic-gradient MCMC: sgld, sghmc)."
    )


def factory_name(factory: Callable) -> str:
    """A short name for a kernel factory (``"nuts"`` for ``blackjax.nuts``)."""
    name = getattr(factory, "__name__", None)
    if name in (None, "as_top_level_api"):
        module = getattr(factory, "__module__", "") or ""
        builder = getattr(factory, "build_kernel", None) or getattr(factory, "init", None)
        module = getattr(builder, "__module__", module) or module
        name = module.rsplit(".", 1)[-1] or type(factory).__name__
    return name


def is_hmc_family(factory: Callable) -> bool:
    return factory_name(factory) in HMC_FAMILY_NAMES


@dataclass
class BayesSettings:
    """What ``model.bayesian(...)`` asked for."""

    factory: Callable
    family: str
    prior: Callable | None
    warmup: int
    keep: int
    thin: int
    adapt: bool
    num_chains: int
    chain_axis: bool  # False: the seed's single-chain layout (N, *param) without a chain axis
    init_jitter: float
    likelihood_scale: float
    kernel_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return factory_name(self.factory)

    @property
    def adapts(self) -> bool:
        """Whether blackjax window adaptation runs for this kernel."""
        return self.adapt and is_hmc_family(self.factory) and self.warmup > 0

    def block_key(self) -> tuple:
        """Models with equal keys are sampled jointly as one position by one kernel."""
        kw = tuple(sorted((k, _hashable(v)) for k, v in self.kernel_kwargs.items()))
        return (
            id(self.factory),
            kw,
            self.warmup,
            self.keep,
            self.thin,
            self.adapt,
            self.num_chains,
            self.likelihood_scale,
        )


def _hashable(v):
    try:
        hash(v)
        return v
    except TypeError:
        return ("id", id(v))


def make_bayes_settings(
    where: str,
    factory,
    *,
    prior,
    warmup,
    keep,
    thin,
    adapt,
    num_chains,
    init_jitter,
    likelihood_scale,
    kernel_kwargs,
) -> BayesSettings:
    """Validate the arguments of ``.bayesian(...)``; every error names ``where`` and the fix."""
    family = kernel_family(factory, where)
    for arg, value, lo in (("warmup", warmup, 0), ("keep", keep, 1), ("thin", thin, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            raise ValueError(f"{where}: {arg} must be an integer >= {lo}, got {value!r}")
    chain_axis = num_chains is not None
    num_chains = 1 if num_chains is None else num_chains
    if not isinstance(num_chains, int) or num_chains < 1:
        raise ValueError(f"{where}: num_chains must be a positive integer, got {num_chains!r}")
    if not (isinstance(init_jitter, (int, float)) and init_jitter >= 0):
        raise ValueError(f"{where}: init_jitter must be a number >= 0, got {init_jitter!r}")
    if not (isinstance(likelihood_scale, (int, float)) and likelihood_scale > 0):
        raise ValueError(
            f"{where}: likelihood_scale must be a positive number, got {likelihood_scale!r}"
        )
    if prior is not None and not callable(prior):
        raise TypeError(f"{where}: prior must be a callable pytree -> log p, got {prior!r}")
    settings = BayesSettings(
        factory=factory,
        family=family,
        prior=prior,
        warmup=warmup,
        keep=keep,
        thin=thin,
        adapt=bool(adapt),
        num_chains=num_chains,
        chain_axis=chain_axis,
        init_jitter=float(init_jitter),
        likelihood_scale=float(likelihood_scale),
        kernel_kwargs=dict(kernel_kwargs),
    )
    if "step_size" not in kernel_kwargs and not settings.adapts:
        raise ValueError(
            f"{where}: .bayesian({settings.name}, ...) needs step_size=. Only HMC-family kernels "
            "(nuts, hmc) with adapt=True and warmup > 0 choose one by window adaptation; pass e.g. "
            "step_size=1e-3."
        )
    return settings


@dataclass
class VISettings:
    """What ``model.vi(...)`` asked for. VI draws are stored as one chain: ``(1, N, *param)``."""

    chain_axis = True
    num_chains = 1

    factory: Callable
    optimizer: Any
    num_samples: int
    posterior_draws: int
    prior: Callable | None
    likelihood_scale: float
    init_mu_at_position: bool
    init_log_std: float
    factory_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return factory_name(self.factory)

    @property
    def keep(self) -> int:
        return self.posterior_draws


@dataclass
class EnsembleSettings:
    """What ``model.ensemble(...)`` asked for."""

    size: int
    optimizer: Any
    prior_weight: float
    prior: Callable | None
