"""Group the models of a solve into blocks and validate the combination.

* Sampling blocks (``.bayesian``, ``.vi``): groups with equal settings
  (:meth:`~jno.trace.config.BayesSettings.block_key`) are one position sampled by one kernel;
  VI fits and masked groups are blocks of their own. The family class comes from the
  settings (it claimed the factory at configuration time). Blocks are updated in turn (Gibbs).
* The optax group: models with ``.optimizer(tx)`` or no configurator (``optax.adam(1e-3)``);
  with masked groups on the same model (pattern B) it owns the leaves outside the masks.
* The deep ensemble: ``.ensemble(...)`` models, one block of E members.
* Frozen models, and leaves no block owns, stay in ``SolveState.point``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..lower.evaluate import model_key
from ..lower.program import Program
from ..trace.model import Model, Parameter
from ..trace.prior import default_prior
from .blocks import Block, EnsembleBlock, Member, OptaxBlock
from .blocks.base import take_masked

log = logging.getLogger("jno")

DEFAULT_OPTIMIZER = optax.adam(1e-3)


@dataclass
class SolvePlan:
    """The blocks of a solve, in update order, and what they share.

    Attributes:
        blocks: sampling blocks (Gibbs order), then the optax group, then the ensemble.
        frozen: models held constant.
        num_chains: K of the sampling blocks (1 without any).
        population: the leading axis every population block shares (K chains or E members).
        chain_axis: whether ``posterior_samples`` keep the chain axis.
    """

    blocks: list[Block]
    frozen: list[Model]
    num_chains: int
    population: int
    chain_axis: bool

    @property
    def sampling(self) -> list[Block]:
        return [b for b in self.blocks if b.samples]

    @property
    def optax(self) -> OptaxBlock | None:
        return next((b for b in self.blocks if isinstance(b, OptaxBlock)), None)

    @property
    def optax_models(self) -> list[Model]:
        return [m.model for m in self.optax.members] if self.optax else []

    @property
    def ensemble(self) -> EnsembleBlock | None:
        return next((b for b in self.blocks if isinstance(b, EnsembleBlock)), None)

    def for_step(self, *, refresh: bool, static_objective: bool) -> SolvePlan:
        """A copy whose blocks know the step they run in (this plan is not changed: it
        serves every engine of the crux). ``refresh``: sampling blocks re-initialise their
        kernel state each step, because what they condition on moves (other blocks,
        subsampled points, redrawn noise, substeps); ``static_objective``: the optax group's
        objective is the same function at every step, so L-BFGS may reuse its line search."""
        blocks = []
        for blk in self.blocks:
            if blk.alone and (refresh or len(self.blocks) > 1):
                raise ValueError(
                    f"crux.solve: model(s) {blk.label} sampled by {blk.family} must be the "
                    "only trained models of their solve, on all points with fixed noise: "
                    "freeze the other models (.freeze()) and drop batch_size/substeps/"
                    "redrawn noise."
                )
            blk = copy.copy(blk)
            if blk.samples:
                blk.refresh = refresh
            if isinstance(blk, OptaxBlock):
                blk.static_objective = static_objective
            blocks.append(blk)
        return dataclasses.replace(self, blocks=blocks)


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


def outside_masks(model: Model, masks: list):
    """The leaves of ``model`` outside every mask in ``masks`` (pattern B's optax part)."""
    if isinstance(model, Parameter):
        return not any(masks)
    return jax.tree.map(lambda *flags: not any(flags), *masks)


def check_prior(prior, position, where: str) -> None:
    """Raise a clear error unless ``prior(position)`` is a scalar (checked abstractly)."""
    try:
        out = jax.eval_shape(prior, position)
    except Exception as err:
        raise ValueError(f"{where}: the prior raised on the model's parameters: {err}") from None
    if not hasattr(out, "shape") or out.shape != ():
        raise ValueError(
            f"{where}: the prior must return a scalar log-density, got "
            f"{getattr(out, 'shape', type(out).__name__)}; sum over the leaves, e.g. "
            "lambda p: -0.5 * sum(jnp.sum(l**2) for l in jax.tree.leaves(p))."
        )


def unconstrained_prior(prior, model, jacobian: bool):
    """``prior`` (written on a model's constrained values) as a function of what the solver
    moves: ``u -> log p(T(u)) + log |T'(u)|`` for a constrained Parameter
    (:mod:`jno.constraints`; the Jacobian makes the draws of ``T(u)`` follow the constrained
    posterior), without the Jacobian for an optimiser (``jacobian=False``: the mode of the
    constrained density); ``prior`` itself for every other model."""
    constraint = getattr(model, "constraint", None)
    if constraint is None:
        return prior
    return ConstrainedPrior(prior, constraint, jacobian)


@dataclass(frozen=True)
class ConstrainedPrior:
    """A prior on ``θ = T(u)`` as a density of ``u`` (see :func:`unconstrained_prior`)."""

    prior: object
    constraint: object
    jacobian: bool

    def __call__(self, u):
        value = self.prior(self.constraint.forward(u))
        return value + self.constraint.log_abs_det_jacobian(u) if self.jacobian else value

    def sample(self, key, like, tries: int = 64):
        """``u = T⁻¹(θ)`` for ``θ`` drawn from the prior restricted to the support: every
        element takes the first of ``tries`` independent prior draws inside it (the
        built-in priors are independent per element). ``ValueError`` when the prior has no
        ``sample`` method."""
        if not hasattr(self.prior, "sample"):
            raise ValueError(
                f"the prior {self.prior!r} of a constrained parameter cannot be drawn from "
                "(no sample(key, like) method); use one of jno.bayesian.priors"
            )
        lo, hi = self.constraint.lower, self.constraint.upper
        draws = jax.vmap(lambda k: self.prior.sample(k, like))(jax.random.split(key, tries))

        def first_inside(d):
            inside = (d > lo) & (d < hi)
            pick = jnp.argmax(inside, axis=0)
            return jnp.take_along_axis(d, pick[None], axis=0)[0]

        return jax.tree.map(lambda d: self.constraint.inverse(first_inside(d)), draws)


def make_plan(program: Program) -> SolvePlan:
    """Group ``program``'s models into blocks and validate the combination (errors name the
    model and the fix)."""
    params = program.initial_params()
    grouped: dict = {}
    optax_members, txs, frozen, ensembles = [], {}, [], []
    for m in program.models:
        mk = model_key(m)
        if m.ensemble_settings is not None:
            ensembles.append(m)
            continue
        for i, g in enumerate(m.groups):
            mask = mask_on_params(m, g.mask)
            prior = default_prior() if g.settings.prior is None else g.settings.prior
            prior = unconstrained_prior(prior, m, jacobian=True)
            check_prior(prior, take_masked(params[mk], mask), m.where)
            own = g.settings.family.variational or g.mask is not None
            key = ("own", id(g)) if own else g.settings.block_key()
            _, members, priors = grouped.setdefault(key, (g.settings, [], []))
            members.append(Member(m, mask, f"{mk}.{i}"))
            priors.append(prior)
        if m.frozen:
            frozen.append(m)
        elif not m.groups or (m.tx is not None and all(g.mask is not None for g in m.groups)):
            masks = [mask_on_params(m, g.mask) for g in m.groups]
            optax_members.append(Member(m, outside_masks(m, masks) if masks else None, mk))
            txs[mk] = m.tx if m.tx is not None else DEFAULT_OPTIMIZER
    blocks: list[Block] = []
    for settings, members, priors in grouped.values():
        blocks.append(settings.family(settings, members, priors, num_chains=settings.num_chains))
    num_chains = _check_sampling(blocks)
    if optax_members:
        blocks.append(OptaxBlock(optax_members, txs))
    population = num_chains
    if ensembles:
        sizes = {m.ensemble_settings.size for m in ensembles}
        if any(b.samples for b in blocks) or len(sizes) > 1:
            raise ValueError(
                "crux.solve: .ensemble() models must share one size and cannot be combined with "
                ".bayesian()/.vi() models in one solve."
            )
        terms, ens_txs = [], {}
        for m in ensembles:
            s = m.ensemble_settings
            prior = default_prior() if s.prior is None else s.prior
            prior = unconstrained_prior(prior, m, jacobian=False)
            check_prior(prior, params[model_key(m)], m.where)
            terms.append((prior, s.prior_weight))
            ens_txs[model_key(m)] = s.optimizer or DEFAULT_OPTIMIZER
        members = [Member(m, None, model_key(m)) for m in ensembles]
        blocks.append(EnsembleBlock(members, ens_txs, terms))
        population = sizes.pop()
    sampling = [b for b in blocks if b.samples]
    return SolvePlan(
        blocks=blocks,
        frozen=frozen,
        num_chains=num_chains,
        population=population,
        chain_axis=any(b.settings.chain_axis for b in sampling),
    )


def _check_sampling(blocks: list[Block]) -> int:
    """One ``num_chains`` for all MCMC blocks; VI only with one chain; spliced draws align."""
    mcmc = [b for b in blocks if not b.variational]
    chains = {b.settings.num_chains for b in mcmc}
    if len(chains) > 1:
        detail = ", ".join(f"{b.label}: num_chains={b.settings.num_chains}" for b in mcmc)
        raise ValueError(
            f"crux.solve: all Bayesian models of one solve must share num_chains ({detail}); "
            "set the same num_chains on each."
        )
    num_chains = chains.pop() if chains else 1
    vi = [b for b in blocks if b.variational]
    if vi and num_chains > 1:
        raise ValueError(
            f"crux.solve: VI model(s) {', '.join(b.label for b in vi)} cannot share a solve with "
            f"{num_chains} MCMC chains; use num_chains=1 for the MCMC models."
        )
    for b in vi:  # pattern E: a model's VI and MCMC groups are spliced draw by draw
        for mem in b.members:
            for other in mcmc:
                if any(o.model is mem.model for o in other.members):
                    if other.settings.keep != b.settings.posterior_draws:
                        raise ValueError(
                            f"{mem.model.where}: the VI group's posterior_draws="
                            f"{b.settings.posterior_draws} must equal the MCMC group's keep="
                            f"{other.settings.keep} so their draws can be spliced."
                        )
    return num_chains


def block_initializer(block: Block):
    """The first log-density initializer set on a member model of ``block``, if any."""
    for mem in block.members:
        init = mem.model.initializer
        if init is not None and getattr(init, "requires_logdensity", False):
            return init
    return None


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
    for b in plan.sampling:
        s_of = {seen.get(mem.model.uid) for mem in b.members}
        if len(s_of) > 1:
            raise ValueError(f"substeps: models {b.label} are sampled jointly; list them together")
        if b.adapts(b.settings):
            raise ValueError(
                f"substeps: Bayesian model(s) {b.label} use adapt=True; window adaptation runs on "
                "the full loss but the kernel sees only its substep's constraints. Set "
                "adapt=False and pick step_size by hand."
            )
        if block_initializer(b) is not None:
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


def log_plan(plan: SolvePlan) -> None:
    """The handle-creation lines of the guide, and the mixed-mode caveats."""
    for blk in plan.sampling:
        log.info("%s", blk.describe())
    if plan.optax is not None and any(b.adapts(b.settings) for b in plan.sampling):
        log.warning(
            "Mixed mode: window adaptation runs once at the start with the optax models at "
            "their initial weights, so the adapted step size may not suit the trained "
            "problem; consider adapt=False with a hand-picked step_size."
        )
    members = plan.optax.members if plan.optax is not None else []
    if plan.num_chains > 1 and any(m.model.groups and m.mask is not None for m in members):
        log.warning(
            "Pattern B with K>1 chains: the optax body's gradient is the average over "
            "the K head chains (Monte-Carlo EM), not chain 0's."
        )
