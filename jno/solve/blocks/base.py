"""The block protocol: what every inference family implements, and nothing more.

A solve is a list of blocks. Each block moves one part of the parameters (its *position*: a
dict ``{member key: pytree}`` over the models and masked groups it owns) and holds a
:class:`~jno.solve.state.BlockState` with a leading population axis (chains, members, or
none). The engine calls, per block and per population element:

``init(key, position, objective, tuned) -> kernel state``
    the family's state at a start, for the kernel arguments ``tuned``;
``step(key, state, objective) -> (state, info)``
    one transition (an MCMC move, an optax update, an ELBO step) of a :class:`BlockState`;
``adapt(key, state, objective, num_steps) -> (state, grad_evals)``
    warm-up tuning of a sampling block whose ``tuner`` is not ``Tuner.NONE`` (window
    adaptation, MCLMC's tuner);
``position(kernel state) -> position``;
``record(state, info) -> (draw, diagnostics)``
    what a recorded step keeps: the draw, and a flat ``{field: scalar}`` dict.

The engine vmaps these over the population (chains or members); a block is written for one
chain. ``info`` is a dict of arrays; its ``num_integration_steps`` (if any) is added to the
solve's gradient-evaluation count.

``objective(position) -> (data_loss, losses)`` is built by the engine for this block: the
weighted data term ``Σ_k w_k L_k`` with every other block held (``w_k`` from the block's
``likelihood_scale``; a substep's constraint mask applied), and the per-constraint losses
``(C,)``. A sampling block turns it into its log-density with :meth:`SamplingBlock.log_posterior`
(``-data_loss + log prior``); an optimisation block minimises it.

The family is declared by the class (``family``, ``population``, ``records``, ``diagnostics``,
``metrics``), never guessed elsewhere. :class:`Block` holds what every block uses (the optax
group and the ensemble included); :class:`SamplingBlock` adds what the families a
configurator's factory selects (``.bayesian``, ``.vi``) share: the
:class:`~jno.family.SamplerFamily` declaration (``claims``, ``validate``, ``tuner``,
``adapts``), the log-posterior and warm-up tuning. A new family is one new module in this
package that subclasses :class:`SamplingBlock` and is decorated with
:func:`~jno.family.register_family` (the package imports every module it contains).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.mcmc.metrics import LowRankInverseMassMatrix

from ...family import Tuner
from ...lower.evaluate import model_key
from ...trace.pointset import default_float
from ..state import BlockState

PyTree = Any
Objective = Callable[[PyTree], tuple[jax.Array, jax.Array]]


class Member:
    """One (model, group) pair of a block: which model and which of its leaves (``mask``:
    a bool pytree over the model's params, ``True``/``False`` for a Parameter, ``None`` for
    every leaf)."""

    def __init__(self, model, mask, key: str):
        self.model = model
        self.mask = mask
        self.key = key

    @property
    def model_key(self) -> str:
        return model_key(self.model)


class Block:
    """Base class of the inference families (see the module docstring).

    Args:
        settings: the configurator's settings (``BayesSettings``, ``VISettings``, ...).
        members: the :class:`Member` s this block moves.
        priors: one ``pytree -> log p`` per member (sampling families), or ``None``.
        num_chains: the population size for ``population == "chains"``.
        refresh: re-initialise kernel states every step because what they condition on
            moves (Gibbs blocks, optax models, mini-batches, redrawn noise, substeps).
    """

    #: a short name used in logs
    family: ClassVar[str] = "block"
    #: ``"chains"``, ``"members"`` or ``None``: the leading axis of the kernel state
    population: ClassVar[str | None] = "chains"
    #: whether recorded steps become ``posterior_samples``
    records: ClassVar[bool] = True
    #: info fields kept as ``posterior_diagnostics``; ``None``: the family has none
    diagnostics: ClassVar[tuple[str, ...] | None] = None
    #: info fields appended to the history as ``"<field>:<label>"`` every step
    metrics: ClassVar[tuple[str, ...]] = ()
    #: whether the block is a variational fit (``.vi``)
    variational: ClassVar[bool] = False
    #: whether the block samples (has a log-density, priors, chains): a :class:`SamplingBlock`
    samples: ClassVar[bool] = False
    #: whether the block must be the only trained block of its solve, on a fixed objective
    #: (tempered SMC runs its whole tempering inside one step)
    alone: ClassVar[bool] = False

    def __init__(
        self, settings, members: list[Member], priors=None, *, num_chains=1, refresh=False
    ):
        self.settings = settings
        self.members = members
        self.priors = priors or []
        self.num_chains = num_chains
        self.refresh = refresh

    # ------------------------------------------------------------------ protocol
    def tuning(self, position) -> dict:
        """Per-chain kernel arguments before adaptation (``{}``: none)."""
        return {}

    def init(self, key, position, objective: Objective, tuned: dict):
        raise NotImplementedError

    def step(self, key, state: BlockState, objective: Objective) -> tuple[BlockState, dict]:
        raise NotImplementedError

    def position(self, kernel_state):
        """The position inside the family's state (a NamedTuple's or a dict's ``position``)."""
        return field_of(kernel_state, "position")

    def record(self, state: BlockState, info) -> tuple[PyTree, dict]:
        return self.position(state.kernel), info

    def posterior(self, key, state: BlockState, recorded):
        """The draws published as ``posterior_samples`` ``{member key: (K, N, ...)}``: the
        kept records (``recorded``, or ``None`` when there are none) unless the family makes
        its own at the end (VI: draws from ``q``; ensembles: the members)."""
        return recorded

    def for_substep(self, uids: set[int]):
        """This block if a substep with models ``uids`` moves it, else ``None``."""
        return self if any(m.model.uid in uids for m in self.members) else None

    # ------------------------------------------------------------------ schedule
    @property
    def label(self) -> str:
        return ", ".join(f"'{m.model.model_name}'" for m in self.members)

    def kept_rows(self, steps: np.ndarray) -> np.ndarray:
        """Which global step indices are recorded as draws (bool, like ``steps``)."""
        return np.zeros(np.shape(steps), bool)

    @property
    def keep(self) -> int:
        return getattr(self.settings, "keep", 0)

    def default_epochs(self, done: int) -> int | None:
        """Steps a bare ``solve()`` runs after ``done`` steps (``None``: no default)."""
        return None

    def describe(self) -> str:
        """The configuration log line of this block."""
        return f"Model {self.label}: {self.family}"


class SamplingBlock(Block):
    """A family a configurator's factory selects (``.bayesian``, ``.vi``): it implements
    :class:`~jno.family.SamplerFamily` (decorate the class with
    :func:`~jno.family.register_family`), samples a log-posterior, and may tune its kernel in
    warm-up as its ``tuner`` says."""

    samples = True
    #: registration order: families with a higher priority are asked first
    priority: ClassVar[int] = 0
    #: the warm-up tuning the family runs (``adapt``) when ``adapt=True`` and ``warmup > 0``
    tuner: ClassVar[Tuner] = Tuner.NONE
    #: whether the kernel takes a dense ``(D, D)`` inverse mass matrix (else only a diagonal:
    #: an initializer's dense matrix is reduced to its diagonal)
    dense_metric: ClassVar[bool] = True
    #: whether every run's draws are a population (SMC's particles): ``posterior_samples``
    #: then keep the run axis even without ``num_chains=``
    population_draws: ClassVar[bool] = False

    # ------------------------------------------------------------------ family declaration
    @classmethod
    def claims(cls, factory) -> bool:
        """Whether this family runs ``factory``."""
        return False

    @classmethod
    def validate(cls, where: str, settings) -> None:
        """Configuration-time checks of ``settings``; raise naming ``where`` and the fix."""

    @classmethod
    def adapts(cls, settings) -> bool:
        """Whether the block tunes its kernel in warm-up (then ``adapt`` is called): it has a
        tuner, and ``settings`` ask for adaptation over a warm-up."""
        return (
            cls.tuner is not Tuner.NONE
            and bool(getattr(settings, "adapt", False))
            and getattr(settings, "warmup", 0) > 0
        )

    @classmethod
    def schema(cls, settings) -> str:
        """The diagnostics this family records, for the configuration log line."""
        return ", ".join(cls.diagnostics) if cls.diagnostics else "none"

    def metric_argument(self, value):
        """An initializer's ``inverse_mass_matrix`` as this family's kernel takes it: a
        ``(D, D)`` matrix or a low-rank one (:class:`LowRankInverseMassMatrix`) reduced to its
        diagonal unless :attr:`dense_metric`."""
        if isinstance(value, LowRankInverseMassMatrix):
            return value if self.dense_metric else low_rank_diagonal(value)
        value = jnp.asarray(value, default_float())
        return jnp.diag(value) if value.ndim == 2 and not self.dense_metric else value

    # ------------------------------------------------------------------ sampling
    def adapt(self, key, state: BlockState, objective: Objective, num_steps: int):
        """Warm-up tuning of one chain: ``(state, grad_evals)`` (families with a tuner)."""
        raise NotImplementedError(f"{type(self).__name__} does not adapt")

    def step_cached(self, kernel, key, state: BlockState, logdensity) -> tuple[BlockState, dict]:
        """``kernel.step`` from a kernel state that caches its log-density and gradient
        (MCLMC, MAMS): recomputed first when :attr:`refresh` (what the log-density conditions
        on moved); the info's :attr:`diagnostics` fields and ``nonfinite`` returned."""
        kstate = state.kernel
        if self.refresh:
            value, grad = jax.value_and_grad(logdensity)(kstate.position)
            kstate = kstate._replace(logdensity=value, logdensity_grad=grad)
        new, info = kernel.step(key, kstate)
        out = scalar_info(info, self.diagnostics)
        out["nonfinite"] = ~jnp.isfinite(new.logdensity)
        return BlockState(new, state.tuned), out

    def log_posterior(self, objective: Objective) -> Callable[[PyTree], jax.Array]:
        """``θ -> -data_loss(θ) + Σ_m log prior_m(θ_m)``."""

        def logdensity(position):
            data, _ = objective(position)
            lp = sum(prior(position[m.key]) for prior, m in zip(self.priors, self.members))
            return -data + lp

        return logdensity


def strong_types(tree):
    """``tree`` with every weakly typed leaf made strongly typed (same dtype and values).

    Kernel and optimizer states start from ``init`` functions that build scalars such as
    ``jnp.asarray(0)`` (weakly typed: optax's line-search info); after one compiled step they
    are strongly typed, and a jitted chunk traced for the first would be traced and compiled
    again for the second (measured: a second compile of the Raissi L-BFGS chunk, ~4 s)."""

    def strong(leaf):
        if isinstance(leaf, jax.Array | int | float) and jax.typeof(leaf).weak_type:
            return jnp.asarray(leaf, jnp.result_type(leaf))
        return leaf

    return jax.tree.map(strong, tree)


def field_of(kernel_state, name: str, default=None):
    """``kernel_state.name`` or ``kernel_state[name]`` (custom kernels may keep dicts)."""
    if isinstance(kernel_state, dict):
        return kernel_state.get(name, default)
    return getattr(kernel_state, name, default)


def jitter_tree(key, tree, scale: float):
    """``tree + scale · N(0, 1)`` leaf by leaf (identity when ``scale == 0``)."""
    if scale == 0:
        return tree
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, max(len(leaves), 1))
    return jax.tree.unflatten(
        treedef,
        [
            leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
            for leaf, k in zip(leaves, keys)
        ],
    )


def positive_variances(imm, fallback) -> jax.Array:
    """``imm`` with every entry that is not finite and positive replaced by ``fallback``'s.

    blackjax's MCLMC and MAMS tuners estimate the diagonal preconditioner as
    ``E[x²] - E[x]²`` from streaming averages; in float32 that cancels to zero or below for a
    coordinate that barely moved during tuning (a chain started at a sharp MAP), and one such
    entry makes every later transition NaN (measured: a MAP-started MAMS on a 2702-weight
    B-PINN, entries down to -9.6e-7, every transition divergent).
    """
    imm = jnp.asarray(imm)
    fallback = jnp.broadcast_to(jnp.asarray(fallback, imm.dtype), imm.shape)
    return jnp.where(jnp.isfinite(imm) & (imm > 0), imm, fallback)


def low_rank_diagonal(m: LowRankInverseMassMatrix) -> jax.Array:
    """The diagonal of ``diag(σ)(I + U(Λ - I)Uᵀ)diag(σ)``: ``σ_i² (1 + Σ_j (λ_j - 1) U_ij²)``,
    ``(D,)``."""
    return m.sigma**2 * (1.0 + (m.U**2) @ (m.lam - 1.0))


def low_rank_dense(m: LowRankInverseMassMatrix) -> jax.Array:
    """``diag(σ)(I + U(Λ - I)Uᵀ)diag(σ)`` as a ``(D, D)`` array."""
    core = jnp.eye(m.sigma.shape[0], dtype=m.sigma.dtype) + (m.U * (m.lam - 1.0)) @ m.U.T
    return m.sigma[:, None] * core * m.sigma[None, :]


def inverse_mass_matrix(value, dim: int, where: str) -> jax.Array:
    """The inverse mass matrix a kernel gets for a position of ``dim`` numbers.

    ``None`` is the identity's diagonal ``ones(dim)``; a scalar ``c`` is ``c·ones(dim)``; a
    ``(dim,)`` array is a diagonal and a ``(dim, dim)`` array a dense matrix, as blackjax
    takes them. Any other shape is a ``ValueError`` naming the model(s) ``where``.
    """
    if value is None:
        return jnp.ones((dim,), default_float())
    imm = jnp.asarray(value, default_float())
    if imm.ndim == 0:
        return jnp.full((dim,), imm)
    if imm.shape in ((dim,), (dim, dim)):
        return imm
    raise ValueError(
        f"{where}: inverse_mass_matrix has shape {imm.shape}, but the sampled position has "
        f"{dim} numbers; give a scalar, a ({dim},) diagonal or a ({dim}, {dim}) matrix."
    )


def take_masked(params, mask):
    """The masked subset of ``params`` (``None`` elsewhere); everything when ``mask is None``."""
    if mask is None:
        return params
    if isinstance(mask, bool):
        return params if mask else None
    return jax.tree.map(lambda m, p: p if m else None, mask, params, is_leaf=_is_none)


def drop_masked(params, mask):
    """``params`` with the masked leaves removed (``None``)."""
    if mask is None:
        return None
    if isinstance(mask, bool):
        return None if mask else params
    return jax.tree.map(lambda m, p: None if m else p, mask, params, is_leaf=_is_none)


def _is_none(x) -> bool:
    return x is None


def trainable(params):
    """The inexact-array leaves of ``params`` (what optax and samplers move)."""
    return eqx.filter(params, eqx.is_inexact_array)


def scalar_info(info, fields: tuple[str, ...] | None) -> dict:
    """``{field: array}`` of a kernel's info: the listed fields the info has, or (when none of
    them is there, e.g. a custom kernel) every scalar field."""
    if info is None:
        return {}
    values = (
        info._asdict() if hasattr(info, "_asdict") else (info if isinstance(info, dict) else {})
    )
    known = {k: values[k] for k in (fields or ()) if k in values}
    if not known:
        known = {k: v for k, v in values.items() if hasattr(v, "shape") and jnp.ndim(v) == 0}
    return {k: jnp.asarray(v) for k, v in known.items()}
