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
import optax

from ..lower.evaluate import model_key
from ..lower.program import Program
from ..trace.config import BayesSettings
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
    settings: BayesSettings
    members: list[Member] = field(default_factory=list)

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
    optax_models, frozen, blocks_by_key = [], [], {}
    for m in program.models:
        if m.ensemble_settings is not None:
            raise NotImplementedError(
                f"{m.where}: .ensemble() inside crux.solve is not available yet; use "
                "jno.inference.EnsembleMAP for ensembles."
            )
        for g in m.groups:
            if g.kind == "vi":
                raise NotImplementedError(
                    f"{m.where}: .vi() is not available yet in this release; use .bayesian()."
                )
            member = Member(m, g, mask_on_params(m, g.mask))
            block = blocks_by_key.setdefault(g.settings.block_key(), Block(g.settings))
            block.members.append(member)
        if m.frozen:
            frozen.append(m)
        elif not m.groups or (m.tx is not None and all(g.mask is not None for g in m.groups)):
            optax_models.append(m)
    blocks = list(blocks_by_key.values())
    chains = {b.settings.num_chains for b in blocks}
    if len(chains) > 1:
        detail = ", ".join(f"{b.label}: num_chains={b.settings.num_chains}" for b in blocks)
        raise ValueError(
            f"crux.solve: all Bayesian models of one solve must share num_chains ({detail}); "
            "set the same num_chains on each."
        )
    axis = {b.settings.chain_axis for b in blocks}
    txs = {model_key(m): (m.tx if m.tx is not None else DEFAULT_OPTIMIZER) for m in optax_models}
    return SolvePlan(
        optax_models=optax_models,
        frozen=frozen,
        blocks=blocks,
        num_chains=chains.pop() if chains else 1,
        chain_axis=(True in axis),
        txs=txs,
    )
