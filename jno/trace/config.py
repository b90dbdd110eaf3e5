"""Configurator settings recorded on models (`.bayesian`, `.vi`, `.ensemble`).

Validation that needs nothing but the arguments happens here, at configuration time, so a
misuse is a clear error on the line that made it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# The family registry is a bottom module that the solve layer's families fill.
from ..family import SamplerFamily, factory_name, kernel_family

__all__ = ["BayesSettings", "EnsembleSettings", "VISettings", "make_bayes_settings"]


@dataclass
class BayesSettings:
    """What ``model.bayesian(...)`` asked for."""

    factory: Callable
    family: SamplerFamily  # the solve-layer block class that claimed the factory
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
        """Whether this block tunes its kernel during warm-up (the family decides)."""
        return self.family.adapts(self)

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
    chain_axis = num_chains is not None or family.population_draws
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
    family.validate(where, settings)
    return settings


@dataclass
class VISettings:
    """What ``model.vi(...)`` asked for. VI draws are stored as one chain: ``(1, N, *param)``."""

    chain_axis = True
    num_chains = 1

    factory: Callable
    family: SamplerFamily  # the solve-layer block class that claimed the factory
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
