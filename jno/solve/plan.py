"""Group the models of a solve by configurator and validate the combination.

* optax models: ``.optimizer(tx)`` or no configurator (``optax.adam(1e-3)``), trained on the
  total loss; with masked Bayesian groups on the same model (pattern B) only the leaves
  outside the masks are trained.
* Bayesian blocks: groups with equal settings (:meth:`BayesSettings.block_key`) are one
  position pytree sampled by one kernel; blocks are updated in turn (Gibbs).
* frozen models are constants.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import equinox as eqx
import jax
import numpy as np
import optax

from ..lower.evaluate import model_key
from ..lower.program import Program
from ..trace.config import BayesSettings, VISettings
from ..trace.model import Group, Model, Parameter

log = logging.getLogger("jno")

DEFAULT_OPTIMIZER = optax.adam(1e-3)


@dataclass
class Member:
    """One (model, group) pair of a Bayesian block."""

    model: Model
    group: Group
    mask_params: object  # bool pytree over the model's params structure, or None (everything)

    @property
    def key(self) -> str:
        return f"{model_key(self.model)}.{self.model.groups.index(self.group)}"


@dataclass
class Block:
    """Models sampled jointly by one kernel (``kind="mcmc"``) or one mean-field VI fit."""

    settings: BayesSettings | VISettings
    members: list[Member] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "vi" if isinstance(self.settings, VISettings) else "mcmc"

    @property
    def initializer(self):
        """The first log-density initializer set on a member model, if any."""
        for mem in self.members:
            init = mem.model.initializer
            if init is not None and getattr(init, "requires_logdensity", False):
                return init
        return None

    @property
    def label(self) -> str:
        return ", ".join(f"'{m.model.model_name}'" for m in self.members)


@dataclass
class SolvePlan:
    optax_models: list[Model]
    frozen: list[Model]
    blocks: list[Block]
    num_chains: int
    chain_axis: bool
    txs: dict
    ensembles: list = field(default_factory=list)


def mask_on_params(model: Model, mask):
    """The leaf-level mask restricted to the model's inexact-array leaves (params structure)."""
    if mask is None:
        return None
    if isinstance(model, Parameter):
        return bool(mask)
    leaves, treedef = jax.tree.flatten(model.module)
    flags = jax.tree.leaves(mask)
    kept = [f if eqx.is_inexact_array(leaf) else None for leaf, f in zip(leaves, flags)]
    return jax.tree.unflatten(treedef, kept)


def make_plan(program: Program) -> SolvePlan:
    """Group ``program``'s models and validate the combination (errors name the model)."""
    optax_models, frozen, blocks_by_key = [], [], {}
    for m in program.models:
        if m.ensemble_settings is not None:
            continue
        for g in m.groups:
            member = Member(m, g, mask_on_params(m, g.mask))
            if g.kind == "vi" or g.mask is not None:
                key = ("own", id(g))  # VI fits and masked groups are blocks of their own
            else:
                key = g.settings.block_key()
            block = blocks_by_key.setdefault(key, Block(g.settings))
            block.members.append(member)
        if m.frozen:
            frozen.append(m)
        elif not m.groups or (m.tx is not None and all(g.mask is not None for g in m.groups)):
            optax_models.append(m)
    blocks = list(blocks_by_key.values())
    mcmc = [b for b in blocks if b.kind == "mcmc"]
    chains = {b.settings.num_chains for b in mcmc}
    if len(chains) > 1:
        detail = ", ".join(f"{b.label}: num_chains={b.settings.num_chains}" for b in mcmc)
        raise ValueError(
            f"crux.solve: all Bayesian models of one solve must share num_chains ({detail}); "
            "set the same num_chains on each."
        )
    num_chains = chains.pop() if chains else 1
    vi = [b for b in blocks if b.kind == "vi"]
    if vi and num_chains > 1:
        raise ValueError(
            f"crux.solve: VI model(s) {', '.join(b.label for b in vi)} cannot share a solve with "
            f"{num_chains} MCMC chains; use num_chains=1 for the MCMC models."
        )
    _check_spliced_draws(blocks)
    ensembles = [m for m in program.models if m.ensemble_settings is not None]
    if ensembles:
        sizes = {m.ensemble_settings.size for m in ensembles}
        if blocks or len(sizes) > 1:
            raise ValueError(
                "crux.solve: .ensemble() models must share one size and cannot be combined with "
                ".bayesian()/.vi() models in one solve."
            )
    txs = {model_key(m): (m.tx if m.tx is not None else DEFAULT_OPTIMIZER) for m in optax_models}
    for m in ensembles:
        txs[model_key(m)] = m.ensemble_settings.optimizer or DEFAULT_OPTIMIZER
    return SolvePlan(
        optax_models=optax_models,
        frozen=frozen,
        blocks=blocks,
        num_chains=num_chains,
        chain_axis=any(b.settings.chain_axis for b in mcmc) or bool(vi),
        txs=txs,
        ensembles=ensembles,
    )


def _check_spliced_draws(blocks) -> None:
    """Pattern E: a model's VI and MCMC groups are spliced draw by draw."""
    for b in blocks:
        if b.kind != "vi":
            continue
        for mem in b.members:
            for other in blocks:
                if other.kind == "mcmc" and any(o.model is mem.model for o in other.members):
                    if other.settings.keep != b.settings.posterior_draws:
                        raise ValueError(
                            f"{mem.model.where}: the VI group's posterior_draws="
                            f"{b.settings.posterior_draws} must equal the MCMC group's keep="
                            f"{other.settings.keep} so their draws can be spliced."
                        )


def resolve_substeps(program: Program, plan: SolvePlan, substeps):
    """``substeps`` as ``[(constraint mask (C,), {model uid})]``.

    Each substep is ``(constraints, models)`` or ``{"constraints": ..., "models": ...}``;
    constraints are given as the constraint expressions, their names or indices. In substep
    ``s`` only its models move, on its constraints only; everything else is held fixed.
    """
    if substeps is None:
        return None
    out, seen = [], {}
    for s, spec in enumerate(substeps):
        if isinstance(spec, dict):
            cons, models = spec.get("constraints"), spec.get("models")
        else:
            cons, models = spec
        mask = np.zeros(len(program.constraints), dtype=np.float32)
        for c in cons:
            mask[_constraint_index(program, c, s)] = 1.0
        uids = set()
        for m in models:
            if not isinstance(m, Model):
                raise TypeError(f"substeps[{s}]: models must be jno models, got {m!r}")
            if m.uid in seen:
                raise ValueError(f"substeps: {m.where} appears in substeps {seen[m.uid]} and {s}")
            seen[m.uid] = s
            uids.add(m.uid)
        out.append((mask, uids))
    for b in plan.blocks:
        s_of = {seen.get(mem.model.uid) for mem in b.members}
        if len(s_of) > 1:
            raise ValueError(f"substeps: models {b.label} are sampled jointly; list them together")
        if b.kind == "mcmc" and b.settings.adapts:
            raise ValueError(
                f"substeps: Bayesian model(s) {b.label} use adapt=True; window adaptation runs on "
                "the full loss but the kernel sees only its substep's constraints. Set "
                "adapt=False and pick step_size by hand."
            )
        if b.initializer is not None:
            raise ValueError(
                f"substeps: model(s) {b.label} have a log-density initializer, which runs on the "
                "full loss while substep kernels see only their constraints; drop one of the two."
            )
    return out


def _constraint_index(program: Program, c, s: int) -> int:
    if isinstance(c, int) and 0 <= c < len(program.constraints):
        return c
    if isinstance(c, str) and c in program.names:
        return program.names.index(c)
    for i, node in enumerate(program.constraints):
        if node is c:
            return i
    raise ValueError(
        f"substeps[{s}]: {c!r} is not one of the crux's constraints ({program.names}); pass "
        "the constraint objects given to jno.core, their names or their indices."
    )
