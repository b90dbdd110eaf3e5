"""Configurator settings recorded on models (`.bayesian`, `.vi`, `.ensemble`).

Validation that needs nothing but the arguments happens here, at configuration time, so a
misuse is a clear error on the line that made it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_FAMILIES: list = []


def register_family(family):
    """Register a sampler family (a class of ``jno.solve.blocks``) for ``.bayesian(...)``.

    A family declares ``name``, ``priority`` (higher is asked first), ``claims(factory) ->
    bool``, ``validate(where, settings)`` (configuration-time errors) and ``adapts(settings)``.
    The trace layer imports nothing of the solve layer: families register themselves when
    ``jno.solve.blocks`` is imported (``import jno`` does it).
    """
    _FAMILIES.append(family)
    _FAMILIES.sort(key=lambda f: -f.priority)
    return family


def kernel_family(factory: Callable, where: str):
    """The registered family that claims ``factory`` (the seed's first-parameter rule:
    ``logdensity_fn`` is full-data MCMC, ``grad_estimator`` is SG-MCMC)."""
    if not callable(factory):
        raise TypeError(f"{where}: kernel_factory must be callable, got {factory!r}")
    for family in _FAMILIES:
        if family.claims(factory):
            return family
    raise TypeError(
        f"{where}: cannot tell the kernel family of {factory_name(factory)!r}: its first "
        "parameter must be named `logdensity_fn` (full-data MCMC: nuts, hmc, mala, custom "
        "SamplingAlgorithm factories) or `grad_estimator` (stochastic-gradient MCMC: sgld, sghmc)."
    )


def factory_signature(factory: Callable) -> list[inspect.Parameter]:
    """The parameters of a kernel factory, looking through blackjax's generated top-level
    APIs (whose ``__call__`` is ``*args, **kwargs``) to the function they wrap."""
    target = getattr(factory, "differentiable", factory)
    try:
        return list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return []


def first_parameter(factory: Callable) -> str | None:
    params = factory_signature(factory)
    return params[0].name if params else None


def accepts(factory: Callable, name: str) -> bool:
    """Whether ``factory`` takes keyword ``name`` (True when its signature is unknown)."""
    params = factory_signature(factory)
    if not params:
        return True
    return any(p.name == name for p in params) or any(p.kind == p.VAR_KEYWORD for p in params)


def factory_name(factory: Callable) -> str:
    """A short name for a kernel factory (``"nuts"`` for ``blackjax.nuts``)."""
    name = getattr(factory, "__name__", None)
    if name in (None, "as_top_level_api"):
        module = getattr(factory, "__module__", "") or ""
        builder = getattr(factory, "build_kernel", None) or getattr(factory, "init", None)
        module = getattr(builder, "__module__", module) or module
        name = module.rsplit(".", 1)[-1] or type(factory).__name__
    return name


@dataclass
class BayesSettings:
    """What ``model.bayesian(...)`` asked for."""

    factory: Callable
    family: Any  # the solve-layer block class that claimed the factory
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
    family.validate(where, settings)
    return settings


@dataclass
class VISettings:
    """What ``model.vi(...)`` asked for. VI draws are stored as one chain: ``(1, N, *param)``."""

    chain_axis = True
    num_chains = 1

    factory: Callable
    family: Any  # the solve-layer block class that claimed the factory
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
