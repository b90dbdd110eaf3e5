"""Models: trainable parameters and wrapped equinox networks, with their configurators.

A model holds its live value (``model.module``) and what the user configured; ``jno.core``
reads the configuration, and after ``solve`` the model holds ``posterior_samples`` and
``posterior_diagnostics``. Configurators return the model so they chain.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy

from ..family import factory_name, kernel_family
from .config import EnsembleSettings, VISettings, make_bayes_settings
from .node import Placeholder
from .pointset import default_float

_model_ids = itertools.count(1)


class Group:
    """One configurator applied to a subset (``mask``) of a model's leaves."""

    def __init__(self, kind: str, settings: Any, mask=None):
        self.kind = kind  # "bayesian" | "vi"
        self.settings = settings
        self.mask = mask


class Model:
    """Base of :class:`Parameter` and :class:`Network`."""

    def __init__(self, module, name: str | None):
        self.uid = next(_model_ids)
        self.module = module
        self.model_name = name or f"{self.kind}{self.uid}"
        self.tx = None
        self.frozen = False
        self.groups: list[Group] = []
        self.initializer = None
        self.ensemble_settings: EnsembleSettings | None = None
        self._pending_mask = None
        self._lora_mask = None
        self.posterior_samples = None
        self.posterior_diagnostics = None

    kind = "model"

    @property
    def where(self) -> str:
        return f"model '{self.model_name}'"

    # ------------------------------------------------------------------ configurators
    def optimizer(self, tx) -> Model:
        """Train this model (or, after ``.mask(M)``, nothing else changes) with an optax
        transformation, e.g. ``optax.adam(1e-3)``."""
        if not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise TypeError(
                f"{self.where}: .optimizer() needs an optax GradientTransformation such as "
                f"optax.adam(1e-3), got {tx!r}"
            )
        if self._pending_mask is not None:
            raise ValueError(
                f"{self.where}: .mask(M).optimizer(...) is not supported; call .optimizer() on "
                "the model (it trains every leaf outside the Bayesian masks)."
            )
        self.tx = tx
        self.frozen = False
        self.ensemble_settings = None
        self.groups = [g for g in self.groups if g.mask is not None]  # pattern B keeps masks
        return self

    def freeze(self) -> Model:
        """Hold this model constant during ``solve`` (replaces any earlier ``.optimizer``,
        ``.bayesian``, ``.vi`` or ``.ensemble``: the last configurator wins)."""
        self.frozen = True
        self.groups = []
        self.ensemble_settings = None
        return self

    def mask(self, mask) -> Model:
        """Restrict the next ``.bayesian`` / ``.vi`` to the leaves where ``mask`` is True.

        ``mask`` is a pytree of booleans with the structure of ``model.module``.
        """
        mask = check_mask(self, mask)
        self._pending_mask = mask
        return self

    def bayesian(
        self,
        kernel_factory: Callable,
        *,
        prior: Callable | None = None,
        warmup: int = 500,
        keep: int = 1000,
        thin: int = 1,
        adapt: bool = True,
        num_chains: int | None = None,
        init_jitter: float = 0.0,
        likelihood_scale: float = 1.0,
        **kernel_kwargs,
    ) -> Model:
        """Sample this model (or its masked subset) with a blackjax MCMC kernel.

        The log-density is ``Σ_k loglik_k(θ) + log prior(θ)`` as in docs/objective.md; ``.mse``
        constraints are tempered by ``likelihood_scale``. ``warmup`` steps adapt (HMC family
        with ``adapt=True``) or are discarded; then every ``thin``-th step is recorded and the
        last ``keep`` records are kept. ``num_chains=K`` runs K vmapped chains and gives
        ``posterior_samples`` the layout ``(K, N, *param)``; leaving it unset runs one chain
        with the layout ``(N, *param)``.
        """
        if any(g.kind == "vi" and g.mask is None for g in self.groups) or (
            self._pending_mask is None and any(g.kind == "vi" for g in self.groups)
        ):
            raise ValueError(
                f"{self.where}: .bayesian() after .vi() on the same model; a model is either "
                "sampled or variationally fitted. Remove one of the two calls."
            )
        settings = make_bayes_settings(
            self.where,
            kernel_factory,
            prior=prior,
            warmup=warmup,
            keep=keep,
            thin=thin,
            adapt=adapt,
            num_chains=num_chains,
            init_jitter=init_jitter,
            likelihood_scale=likelihood_scale,
            kernel_kwargs=kernel_kwargs,
        )
        self._add_group(Group("bayesian", settings))
        return self

    def vi(
        self,
        vi_factory: Callable,
        *,
        optimizer,
        num_samples: int = 8,
        posterior_draws: int = 500,
        prior: Callable | None = None,
        likelihood_scale: float = 1.0,
        init_mu_at_position: bool = True,
        init_log_std: float = -3.0,
        **factory_kwargs,
    ) -> Model:
        """Fit a mean-field Gaussian ``q(θ) = Π N(μ_i, σ_i²)`` by maximising the ELBO."""
        if self._pending_mask is None and any(g.kind == "bayesian" for g in self.groups):
            raise ValueError(
                f"{self.where}: .vi() after .bayesian() on the same model; a model is either "
                "sampled or variationally fitted. Remove one of the two calls."
            )
        if self.initializer is not None and getattr(self.initializer, "requires_logdensity", 0):
            raise ValueError(
                f"{self.where}: .vi() with a log-density initializer: VI starts its own "
                "variational distribution at the position; drop .initialize(...)."
            )
        if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
            raise TypeError(f"{self.where}: .vi(optimizer=...) needs an optax transformation")
        family = kernel_family(vi_factory, self.where)
        if not family.variational:
            raise ValueError(
                f"{self.where}: .vi() supports blackjax.meanfield_vi (a diagonal Gaussian q), got "
                f"{factory_name(vi_factory)!r}; for MCMC kernels use .bayesian()."
            )
        for arg, value in (("num_samples", num_samples), ("posterior_draws", posterior_draws)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{self.where}: {arg} must be a positive integer, got {value!r}")
        if not (isinstance(likelihood_scale, (int, float)) and likelihood_scale > 0):
            raise ValueError(
                f"{self.where}: likelihood_scale must be a positive number, "
                f"got {likelihood_scale!r}"
            )
        if prior is not None and not callable(prior):
            raise TypeError(
                f"{self.where}: prior must be a callable pytree -> log p, got {prior!r}"
            )
        settings = VISettings(
            factory=vi_factory,
            family=family,
            optimizer=optimizer,
            num_samples=num_samples,
            posterior_draws=posterior_draws,
            prior=prior,
            likelihood_scale=float(likelihood_scale),
            init_mu_at_position=bool(init_mu_at_position),
            init_log_std=float(init_log_std),
            factory_kwargs=factory_kwargs,
        )
        self._add_group(Group("vi", settings))
        return self

    def initialize(self, init) -> Model:
        """Set the starting value: a file path (``.npy``/``.eqx``), a pytree, a
        ``(shape, dtype, key) -> array`` callable, or a log-density-aware initializer
        (``requires_logdensity = True``, e.g. ``jno.bayesian.pathfinder()``).

        The last call wins: a value after a log-density initializer drops the initializer (the
        chain starts at the value, nothing runs); an initializer after a value runs from it.
        """
        if getattr(init, "requires_logdensity", False):
            if any(g.kind == "vi" for g in self.groups):
                raise ValueError(
                    f"{self.where}: .initialize(<log-density initializer>) with .vi(): VI "
                    "initialises its own variational distribution; drop one of the two."
                )
            self.initializer = init
            return self
        value = _initial_value(self, init)
        constraint = getattr(self, "constraint", None)
        if constraint is not None and not constraint.contains(value):
            raise ValueError(
                f"{self.where}.initialize(...): the value is outside the support of "
                f"constraint={constraint!r}; give a start inside it"
            )
        self.module = value
        self.initializer = None
        return self

    def ensemble(self, size: int, optimizer=None, prior_weight: float = 1.0, prior=None) -> Model:
        """Train ``size`` independent members (deep ensemble) in one vmapped step."""
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"{self.where}: ensemble size must be a positive integer")
        self.ensemble_settings = EnsembleSettings(size, optimizer, float(prior_weight), prior)
        self.groups, self.frozen = [], False
        return self

    def _add_group(self, group: Group) -> None:
        """Add a ``.bayesian``/``.vi`` group. The last write wins: a group on the same leaves
        as an earlier one (both global, or equal masks) replaces it, and an ensemble setting
        is dropped; partly overlapping masks are an error."""
        group.mask = self._pending_mask if self._pending_mask is not None else self._lora_mask
        self._pending_mask = None
        self.ensemble_settings = None
        self.groups = [g for g in self.groups if g.mask != group.mask]
        if group.mask is None and self.groups:
            raise ValueError(
                f"{self.where}: a global .{group.kind}() on a model that already has "
                f".mask(M).{self.groups[0].kind}() groups; use masks for every group or none."
            )
        if group.mask is not None and any(g.mask is None for g in self.groups):
            raise ValueError(
                f"{self.where}: .mask(M).{group.kind}() on a model with a global "
                f".{self.groups[0].kind}(); use masks for every group or none."
            )
        if group.mask is not None:
            for other in self.groups:
                overlap = jax.tree.leaves(
                    jax.tree.map(lambda a, b: a and b, group.mask, other.mask)
                )
                if any(overlap):
                    raise ValueError(
                        f"{self.where}: masks of two groups overlap; each leaf may belong to "
                        "one group only."
                    )
        self.groups.append(group)
        self.frozen = False

    # ------------------------------------------------------------------ values
    def params(self):
        """The trainable (inexact array) part of the module."""
        return eqx.filter(self.module, eqx.is_inexact_array)


class Parameter(Model, Placeholder):
    """A trainable array used directly in expressions (``a * jno.np.sin(x)``)."""

    op = "parameter"
    kind = "param"
    is_leaf = True

    def __init__(self, value, name: str | None = None, constraint=None):
        value = jnp.asarray(value, dtype=default_float())
        Model.__init__(self, value, name)
        Placeholder.__init__(self, (), None, value.shape, value.dtype)
        #: a :class:`jno.constraints.Constraint` or ``None``: the solver moves ``u``, every
        #: expression reads ``constraint.forward(u)`` (``module`` holds the constrained value)
        self.constraint = constraint

    @property
    def reads_model(self) -> Parameter:
        return self

    @property
    def name_stem(self) -> str:
        return self.kind

    def lower_global(self, ev):
        value = ev.params_of(self)
        return value if self.constraint is None else self.constraint.forward(value)

    def sympy_form(self, args):
        return sympy.Symbol(self.model_name, real=True)


def check_mask(model: Model, mask):
    """Validate a leaf-level boolean mask and return it as a pytree of Python bools."""
    if jax.tree.structure(mask) != jax.tree.structure(model.module):
        raise ValueError(
            f"{model.where}: the mask's structure does not match the module. Build it with "
            "jax.tree_util.tree_map(lambda _: False, net.module) and eqx.tree_at(...)."
        )

    def to_bool(leaf):
        arr = np.asarray(leaf)
        if arr.dtype != np.bool_:
            raise TypeError(f"{model.where}: mask leaves must be booleans, got {arr.dtype}")
        if arr.size and bool(arr.any()) != bool(arr.all()):
            raise ValueError(
                f"{model.where}: element-wise masks inside one leaf are not supported; mask "
                "whole leaves (e.g. a layer's weight and bias)."
            )
        return bool(arr.all()) if arr.size else False

    flags = jax.tree.map(to_bool, mask)
    if not any(jax.tree.leaves(flags)):
        raise ValueError(f"{model.where}: the mask selects no leaf")
    return flags


def _initial_value(model: Model, init):
    if isinstance(init, str):
        if init.endswith(".npy"):
            return jnp.asarray(np.load(init))
        return eqx.tree_deserialise_leaves(init, model.module)
    if callable(init) and not isinstance(init, (eqx.Module, jax.Array, np.ndarray)):
        key = jax.random.PRNGKey(model.uid)
        leaves, treedef = jax.tree.flatten(model.module)
        keys = jax.random.split(key, max(len(leaves), 1))
        new = [
            init(leaf.shape, leaf.dtype, k) if eqx.is_inexact_array(leaf) else leaf
            for leaf, k in zip(leaves, keys)
        ]
        return jax.tree.unflatten(treedef, new)
    old = jax.tree.structure(model.module)
    if isinstance(model, Parameter):
        value = jnp.asarray(init, dtype=default_float())
        if value.shape != model.shape:
            raise ValueError(
                f"{model.where}: .initialize() value of shape {value.shape} for a parameter of "
                f"shape {model.shape}"
            )
        return value
    if jax.tree.structure(init) != old:
        raise ValueError(f"{model.where}: .initialize() pytree does not match the module")
    return init
