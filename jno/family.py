"""Sampler families: the protocol a configurator's kernel factory is matched against, and the
registry that matches it.

This is a bottom module: it imports nothing of jno. The trace layer's configurators
(``.bayesian(factory)``, ``.vi(factory)``) ask :func:`kernel_family` which family runs a
factory; the solve layer's families (``jno.solve.blocks``) put themselves in the registry with
:func:`register_family` when that package is imported (``import jno`` does it). So neither
layer imports the other for it.

A family declares what it needs instead of being recognised by name elsewhere:

* ``claims(factory)``: whether it runs ``factory``, by the identity of blackjax's objects
  (``factory is blackjax.mclmc``, as ``blackjax.window_adaptation`` takes the members of
  ``blackjax.hmc_family``) or by the factory's signature (first parameter ``logdensity_fn`` or
  ``grad_estimator``, so a user's own ``SamplingAlgorithm`` factory is claimed too);
* ``tuner``: what warm-up tuning it runs (:class:`Tuner`): blackjax's window adaptation, a
  tuner of its own, or none (then the user gives ``step_size=``).
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from typing import Any, Protocol

__all__ = [
    "SamplerFamily",
    "Tuner",
    "accepts",
    "factory_name",
    "factory_signature",
    "first_parameter",
    "kernel_family",
    "register_family",
    "registered_families",
]


class Tuner(enum.Enum):
    """What a family runs during warm-up to choose its kernel's arguments."""

    #: nothing: the kernel's arguments are what ``.bayesian(..., step_size=...)`` gives
    NONE = "none"
    #: ``blackjax.window_adaptation``: ``step_size`` and ``inverse_mass_matrix``, per chain
    WINDOW = "window"
    #: a tuner of the family's own (MCLMC's ``L``, ``step_size`` and preconditioner)
    OWN = "own"


class SamplerFamily(Protocol):
    """What a family registered for ``.bayesian``/``.vi`` declares (the solve layer's sampling
    blocks; the methods are class methods there, asked before any block exists)."""

    #: a short name for logs and checkpoints (``"full"``, ``"sg"``, ``"mclmc"``, ``"vi"``)
    family: str
    #: registration order: families with a higher priority are asked first
    priority: int
    #: the warm-up tuning the family runs when ``adapt=True`` and ``warmup > 0``
    tuner: Tuner
    #: whether the family is a variational fit (``.vi``) rather than a sampler (``.bayesian``)
    variational: bool
    #: whether a run's draws are a population (SMC's particles): the run axis is always kept
    population_draws: bool

    def claims(self, factory: Callable) -> bool:
        """Whether this family runs ``factory``."""
        ...

    def validate(self, where: str, settings: Any) -> None:
        """Configuration-time checks of ``settings``; raise naming ``where`` and the fix."""
        ...

    def adapts(self, settings: Any) -> bool:
        """Whether a block with ``settings`` tunes its kernel in warm-up."""
        ...


_FAMILIES: list[SamplerFamily] = []


def register_family(family):
    """Register a sampler family (a class decorator; returns ``family``)."""
    _FAMILIES.append(family)
    _FAMILIES.sort(key=lambda f: -f.priority)
    return family


def registered_families() -> tuple[SamplerFamily, ...]:
    """The registered families, in the order they are asked."""
    return tuple(_FAMILIES)


def kernel_family(factory: Callable, where: str) -> SamplerFamily:
    """The registered family that claims ``factory`` (the highest priority first)."""
    if not callable(factory):
        raise TypeError(f"{where}: kernel_factory must be callable, got {factory!r}")
    for family in _FAMILIES:
        if family.claims(factory):
            return family
    raise TypeError(
        f"{where}: cannot tell the kernel family of {factory_name(factory)!r}: its first "
        "parameter must be named `logdensity_fn` (full-data MCMC: nuts, hmc, mala, custom "
        "SamplingAlgorithm factories), `grad_estimator` (stochastic-gradient MCMC: sgld, sghmc) "
        "or `logprior_fn` (tempered SMC: adaptive_tempered_smc)."
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
    """A short name for a kernel factory, for messages and logs (``"nuts"`` for
    ``blackjax.nuts``); never used to decide what a factory is."""
    name = getattr(factory, "__name__", None)
    if name in (None, "as_top_level_api"):
        module = getattr(factory, "__module__", "") or ""
        builder = getattr(factory, "build_kernel", None) or getattr(factory, "init", None)
        module = getattr(builder, "__module__", module) or module
        name = module.rsplit(".", 1)[-1] or type(factory).__name__
    return name
