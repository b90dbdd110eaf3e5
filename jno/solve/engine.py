"""One compiled step for every model of a solve, and the chunked loops that run it.

State (a pytree)::

    {"point":  {model_key: params outside any Bayesian group},
     "opt":    {model_key: optax state},
     "blocks": [{"kstate": kernel state with leading (K,), "tuned": per-chain kernel args}]}

One step (global step index ``i``, key ``fold_in(key, i)``):

1. each Bayesian block in turn (Gibbs), vmapped over the K chains, does one kernel
   transition on ``log p(θ_b | rest) = -Σ_k w_k L_k + log prior(θ_b)``;
2. optax models take one step on the total loss averaged over the K chains' positions
   (a Monte-Carlo EM gradient when Bayesian models are present).

:func:`run_chunk` scans ``chunk`` steps and records every step (the general loop);
:func:`run_sample_chunk` records only every ``thin``-th step (the pure-Bayesian fastpath).
Both call the same step with the same keys, so they give the same draws.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ..lower.evaluate import model_key, subsample_inputs
from ..lower.program import Program
from ..trace.pointset import default_float
from .kernels import (
    accepts,
    capture_info,
    default_tuning,
    make_kernel,
    position_of,
    window_adapt,
)
from .plan import SolvePlan


def vmap_chains(fn, num_chains: int):
    """``jax.vmap`` over the leading chain axis; with one chain, a plain call on chain 0 (a
    vmapped NUTS while-loop compiles to a much larger program)."""
    if num_chains > 1:
        return jax.vmap(fn)

    def single(*args):
        out = fn(*jax.tree.map(lambda a: a[0], args))
        return jax.tree.map(lambda a: jnp.expand_dims(a, 0), out)

    return single


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


def _check_starts(init, new_pos, ref, num_chains: int, label: str) -> None:
    """An initializer's starts must match the position with a leading ``(K,)`` axis."""
    want = jax.tree.map(lambda r: r.shape, ref)
    try:
        got = jax.tree.map(lambda a: jnp.shape(a), new_pos)
        ok = jax.tree.structure(got) == jax.tree.structure(want) and all(
            g == w for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want))
        )
    except Exception:
        ok, got = False, new_pos
    if not ok:
        raise ValueError(
            f"Model(s) {label}: the initializer {type(init).__name__} returned starts of shapes "
            f"{got}, expected {want}: with num_chains={num_chains} > 1 every leaf needs a "
            "leading (K,) axis (one start per chain); with one chain, no chain axis."
        )


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


def ensemble_members(params, size: int, key):
    """``size`` independent starts ``(E, ...)`` for a deep ensemble.

    Member 0 is ``params``. Every other member redraws each leaf from ``N(mean, std²)`` of
    that leaf's own entries (a network's weights keep their init scale; constant leaves such
    as zero biases stay constant) and a scalar-like leaf (a Parameter) adds ``N(0, 1)``.
    """
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    out = []
    for leaf, k in zip(leaves, keys):
        draws = jax.random.normal(k, (size,) + leaf.shape, leaf.dtype)
        std = jnp.std(leaf)
        spread = jnp.where(std > 0, std, 1.0 if leaf.size <= 4 else 0.0)
        stacked = jnp.mean(leaf) + spread * draws if leaf.size > 4 else leaf + spread * draws
        out.append(stacked.at[0].set(leaf))
    return jax.tree.unflatten(treedef, out)


def _default_prior():
    from ..bayesian import priors

    return priors.gaussian(sigma=10.0)


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


class Engine:
    """Builds the step function of a solve from its :class:`Program` and :class:`SolvePlan`.

    Args:
        program: the lowered constraints.
        plan: the grouping of models.
        key: the solver key; step ``i`` uses ``fold_in(key, i)``.
        batch_size: points per point set per step (``None``: all).
        substeps: the resolved substeps (:func:`~jno.solve.plan.resolve_substeps`) or ``None``.
    """

    def __init__(
        self, program: Program, plan: SolvePlan, key, batch_size: int | None = None, substeps=None
    ):
        self.program = program
        self.plan = plan
        self.key = key
        self.batch_size = batch_size
        self.K = plan.num_chains
        self.E = plan.ensembles[0].ensemble_settings.size if plan.ensembles else 0
        self.priors = []
        params = program.initial_params()
        for block in plan.blocks:
            fns = []
            for mem in block.members:
                prior = mem.group.settings.prior
                prior = prior if prior is not None else _default_prior()
                check_prior(
                    prior,
                    take_masked(params[model_key(mem.model)], mem.mask_params),
                    mem.model.where,
                )
                fns.append(prior)
            self.priors.append(fns)
        self.ensemble_priors = {}
        for m in plan.ensembles:
            prior = m.ensemble_settings.prior
            prior = prior if prior is not None else _default_prior()
            check_prior(prior, params[model_key(m)], m.where)
            self.ensemble_priors[model_key(m)] = prior
        self.weights = [program.loglik_weights(b.settings.likelihood_scale) for b in plan.blocks]
        all_constraints = jnp.ones(len(program.constraints), default_float())
        if substeps is None:
            everyone = {m.uid for m in program.models}
            substeps = [(all_constraints, everyone)]
        self.substeps = [(jnp.asarray(mask), uids) for mask, uids in substeps]
        self.has_substeps = len(self.substeps) > 1 or bool(jnp.any(self.substeps[0][0] == 0))
        # Kernel states must be re-initialised each step when what they condition on moved.
        self.refresh = (
            len(plan.blocks) > 1
            or bool(plan.optax_models)
            or batch_size is not None
            or bool(program.redrawn)
            or self.has_substeps
        )

    # ------------------------------------------------------------------ state
    def init_state(self, params: dict, key) -> dict:
        """The solve state at ``params``; block starts are dispersed by ``init_jitter``."""
        point = {}
        for m in self.program.models:
            rest = params[model_key(m)]
            for mem in (mem for b in self.plan.blocks for mem in b.members if mem.model is m):
                rest = drop_masked(rest, mem.mask_params)
            point[model_key(m)] = rest
        starts, tuned = [], []
        for b, block in enumerate(self.plan.blocks):
            pos = {
                mem.key: take_masked(params[model_key(mem.model)], mem.mask_params)
                for mem in block.members
            }
            keys = jax.random.split(jax.random.fold_in(key, 1000 + b), self.K)
            jitter = block.settings.init_jitter if block.kind == "mcmc" else 0.0
            starts.append(jax.vmap(lambda k, pos=pos, j=jitter: jitter_tree(k, pos, j))(keys))
            t = default_tuning(block.settings, pos) if block.kind == "mcmc" else {}
            tuned.append(jax.tree.map(lambda a: jnp.broadcast_to(a, (self.K,) + a.shape), t))
        ensemble = {}
        for i, m in enumerate(self.plan.ensembles):
            ensemble[model_key(m)] = ensemble_members(
                params[model_key(m)], self.E, jax.random.fold_in(key, 3000 + i)
            )
        state = {
            "point": point,
            "opt": self._init_opt(point, ensemble),
            "ensemble": ensemble,
            "grad_evals": jnp.zeros((), default_float()),
        }
        return self.init_kernels(state, starts, tuned)

    def _init_opt(self, point, ensemble) -> dict:
        opt = {}
        for m in self.plan.optax_models:
            k = model_key(m)
            opt[k] = self.plan.txs[k].init(eqx.filter(point[k], eqx.is_inexact_array))
        for k, members in ensemble.items():
            opt[k] = jax.vmap(self.plan.txs[k].init)(members)
        return opt

    def init_kernels(self, state: dict, starts: list, tuned: list) -> dict:
        """Kernel states at block starts ``(K, ...)`` (each needs the full log-density)."""
        blocks = []
        for b, block in enumerate(self.plan.blocks):

            def init_chain(pos_all, tuned_k, b=b, block=block):
                logd = self.block_logdensity(b, state["point"], pos_all, self.program.inputs)
                return make_kernel(block.settings, logd, tuned_k).init(pos_all[b])

            blocks.append(
                {"kstate": vmap_chains(init_chain, self.K)(starts, tuned[b]), "tuned": tuned[b]}
            )
        return {**state, "blocks": blocks}

    def apply_initializers(self, state: dict, key) -> dict:
        """Run each block's log-density initializer (eagerly: initializers compile their own
        work and may check their results), then re-initialise the kernels at the new starts.

        The new position replaces every chain's start (``init_jitter`` is overridden); the
        returned kernel arguments are kept when the kernel accepts them."""
        starts = [position_of(blk["kstate"]) for blk in state["blocks"]]
        tuned = [blk["tuned"] for blk in state["blocks"]]
        params = self.program.initial_params()
        initial = [
            {
                mem.key: take_masked(params[model_key(mem.model)], mem.mask_params)
                for mem in block.members
            }
            for block in self.plan.blocks
        ]
        changed = False
        for b, block in enumerate(self.plan.blocks):
            init = block.initializer
            if init is None or block.kind != "mcmc":
                continue
            # other blocks at their (unjittered) initial values, this one from its initial value
            logd = jax.jit(self.block_logdensity(b, state["point"], initial, self.program.inputs))
            new_pos, update = init(jax.random.fold_in(key, 4000 + b), logd, initial[b], self.K)
            if self.K == 1:
                new_pos = jax.tree.map(lambda a: jnp.asarray(a)[None], new_pos)
            _check_starts(init, new_pos, starts[b], self.K, block.label)
            starts[b] = jax.tree.map(lambda a, ref: jnp.asarray(a, ref.dtype), new_pos, starts[b])
            for name, value in update.items():
                if name in tuned[b] or accepts(block.settings.factory, name):
                    value = jnp.asarray(value, default_float())
                    tuned[b] = {**tuned[b], name: jnp.broadcast_to(value, (self.K,) + value.shape)}
            changed = True
        if not changed:
            return state
        return jax.jit(self.init_kernels)(state, starts, tuned)

    # ------------------------------------------------------------------ densities
    def assemble(self, point: dict, positions: list) -> dict:
        """Full params from the point values and one chain's block positions."""
        params = dict(point)
        for b, block in enumerate(self.plan.blocks):
            for mem in block.members:
                mk = model_key(mem.model)
                part = positions[b][mem.key]
                if mem.mask_params is None or params[mk] is None:
                    params[mk] = part
                else:
                    params[mk] = eqx.combine(params[mk], part)
        return params

    def block_logdensity(self, b: int, point: dict, positions: list, inputs, cmask=None):
        """``θ_b -> -Σ w_k L_k(θ) + Σ log prior(θ_b)`` with the other blocks held; ``cmask``
        restricts the sum to a substep's constraints."""
        block = self.plan.blocks[b]
        weights = self.weights[b] if cmask is None else self.weights[b] * cmask
        priors = self.priors[b]

        def logdensity(pos_b):
            pos = list(positions)
            pos[b] = pos_b
            losses = self.program.losses(self.assemble(point, pos), inputs)
            lp = sum(prior(pos_b[mem.key]) for prior, mem in zip(priors, block.members))
            return -jnp.sum(weights * losses) + lp

        return logdensity

    # ------------------------------------------------------------------ adaptation
    def adaptation_steps(self, warmup: int) -> int:
        """Window-adaptation steps out of ``warmup``: all of them for a single block; half for
        Gibbs blocks, whose adaptation holds the other blocks at their starts, so the second
        half runs joint Gibbs sweeps with the adapted kernels (and is discarded)."""
        return warmup if len(self.plan.blocks) == 1 else max(1, warmup // 2)

    def adapt(self, state: dict, key) -> dict:
        """Window adaptation for every adapting block, each chain on its own (vmapped)."""
        blocks = list(state["blocks"])
        grads = state["grad_evals"]
        for b, block in enumerate(self.plan.blocks):
            if block.kind != "mcmc" or not block.settings.adapts:
                continue
            positions = [position_of(blk["kstate"]) for blk in blocks]
            keys = jax.random.split(jax.random.fold_in(key, 2000 + b), self.K)

            def adapt_chain(k, pos_all, tuned_k, b=b, block=block):
                logd = self.block_logdensity(b, state["point"], pos_all, self.program.inputs)
                steps = self.adaptation_steps(block.settings.warmup)
                return window_adapt(block.settings, logd, k, pos_all[b], tuned_k, steps)

            kstate, tuned, n = vmap_chains(adapt_chain, self.K)(keys, positions, blocks[b]["tuned"])
            grads = grads + jnp.sum(n)
            blocks[b] = {"kstate": kstate, "tuned": tuned}
        return {**state, "blocks": blocks, "grad_evals": grads}

    # ------------------------------------------------------------------ one step
    def step(self, state: dict, index) -> tuple[dict, dict]:
        """One outer step: every substep in turn; see the module docstring."""
        key = jax.random.fold_in(self.key, index)
        k_batch, k_blocks = jax.random.split(key)
        inputs = self.step_inputs(k_batch)
        point, opt, ensemble = state["point"], state["opt"], state["ensemble"]
        blocks = list(state["blocks"])
        positions = [position_of(blk["kstate"]) for blk in blocks]
        infos = [None] * len(blocks)
        grads = state["grad_evals"]
        losses = None
        for cmask, uids in self.substeps:
            for b, block in enumerate(self.plan.blocks):
                if not any(mem.model.uid in uids for mem in block.members):
                    continue
                keys = jax.random.split(jax.random.fold_in(k_blocks, b), self.K)
                mask = cmask if self.has_substeps else None

                def chain_step(k, kstate, tuned_k, pos_all, b=b, block=block, mask=mask):
                    logd = self.block_logdensity(b, point, pos_all, inputs, mask)
                    kernel = make_kernel(block.settings, logd, tuned_k)
                    if self.refresh and block.kind == "mcmc":
                        kstate = kernel.init(position_of(kstate))
                    new, info = kernel.step(k, kstate)
                    if block.kind == "vi":
                        return new, info
                    return new, capture_info(info, new)

                kstate, info = vmap_chains(chain_step, self.K)(
                    keys, blocks[b]["kstate"], blocks[b]["tuned"], positions
                )
                grads = grads + jnp.sum(info.pop("num_integration_steps", 0))
                blocks[b] = {"kstate": kstate, "tuned": blocks[b]["tuned"]}
                positions[b] = position_of(kstate)
                infos[b] = info
            point, opt, losses = self.optax_update(point, opt, positions, inputs, cmask, uids)
            ensemble, opt, e_losses = self.ensemble_update(
                ensemble, opt, point, inputs, cmask, uids
            )
            losses = e_losses if e_losses is not None else losses
        if self.has_substeps:
            losses = None
        record = {"losses": losses, "positions": positions, "infos": infos}
        new_state = {
            "point": point,
            "opt": opt,
            "ensemble": ensemble,
            "blocks": blocks,
            "grad_evals": grads,
        }
        return new_state, record

    def chain_losses(self, point, positions, inputs, ensemble=None) -> jax.Array:
        """Per-constraint losses ``(C,)`` averaged over the chains (or ensemble members)."""
        if ensemble:

            def member(params):
                return self.program.losses({**point, **params}, inputs)

            return jnp.mean(jax.vmap(member)(ensemble), axis=0)
        if not self.plan.blocks:
            return self.program.losses(point, inputs)
        per_chain = jax.vmap(lambda pos: self.program.losses(self.assemble(point, pos), inputs))
        return jnp.mean(per_chain(positions), axis=0)

    def optax_update(self, point, opt, positions, inputs, cmask, uids):
        """One optax step of the models of this substep on ``Σ cmask·L`` (chain-averaged)."""
        models = [m for m in self.plan.optax_models if m.uid in uids]
        if not models:
            return point, opt, None
        keys = [model_key(m) for m in models]
        trainable = {k: eqx.filter(point[k], eqx.is_inexact_array) for k in keys}

        def loss_fn(tr):
            p = {**point, **{k: eqx.combine(tr[k], point[k]) for k in keys}}
            losses = self.chain_losses(p, positions, inputs)
            return jnp.sum(cmask * losses), losses

        (_, losses), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
        new_point, new_opt = dict(point), dict(opt)
        for k in keys:
            tx = self.plan.txs[k]
            updates, new_opt[k] = tx.update(grads[k], opt[k], trainable[k])
            new_point[k] = eqx.combine(optax.apply_updates(trainable[k], updates), point[k])
        return new_point, new_opt, losses

    def ensemble_update(self, ensemble, opt, point, inputs, cmask, uids):
        """One optax step per ensemble member (vmapped) on
        ``Σ cmask·w·L - prior_weight · log prior``."""
        models = [m for m in self.plan.ensembles if m.uid in uids]
        if not models:
            return ensemble, opt, None
        keys = [model_key(m) for m in models]
        weights = self.program.loglik_weights(1.0) * cmask

        def member_step(params, opts):
            def loss_fn(p):
                losses = self.program.losses({**point, **p}, inputs)
                lp = sum(
                    m.ensemble_settings.prior_weight * self.ensemble_priors[k](p[k])
                    for m, k in zip(models, keys)
                )
                return jnp.sum(weights * losses) - lp, losses

            (_, losses), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
            new_p, new_o = {}, {}
            for k in keys:
                upd, new_o[k] = self.plan.txs[k].update(g[k], opts[k], params[k])
                new_p[k] = optax.apply_updates(params[k], upd)
            return new_p, new_o, losses

        params = {k: ensemble[k] for k in keys}
        opts = {k: opt[k] for k in keys}
        new_p, new_o, losses = jax.vmap(member_step)(params, opts)
        return {**ensemble, **new_p}, {**opt, **new_o}, jnp.mean(losses, axis=0)

    def step_inputs(self, key):
        """This step's rows: all points, or a subsample, with redrawn noise if asked for."""
        inputs = self.program.redraw_noise(self.program.inputs, jax.random.fold_in(key, 7))
        if self.batch_size is None:
            return inputs
        indices = {}
        for i, (pk, n) in enumerate(sorted(self.program.pointset_sizes().items())):
            if n > self.batch_size:
                indices[pk] = jax.random.choice(
                    jax.random.fold_in(key, i), n, (self.batch_size,), replace=False
                )
        return subsample_inputs(inputs, indices)

    # ------------------------------------------------------------------ loops
    def run_chunk(self, state, start, length: int, stop, partial: bool = True):
        """``length`` steps from global index ``start``, recording every step. With
        ``partial``, steps at or past ``stop`` are no-ops (the last chunk of a solve); a full
        chunk skips that select (a second compiled variant, never more)."""

        def body(st, i):
            index = start + i
            new, rec = self.step(st, index)
            if partial:
                active = index < stop
                new = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, st)
            if rec["losses"] is None:
                losses = self.chain_losses(
                    new["point"], rec["positions"], self.program.inputs, new["ensemble"]
                )
                rec = {**rec, "losses": losses}
            return new, rec

        return jax.lax.scan(body, state, jnp.arange(length))

    def run_silent(self, state, start, length: int, stop):
        """``length`` steps recording nothing (fastpath warm-up)."""

        def body(i, st):
            index = start + i
            new, _ = self.step(st, index)
            return jax.tree.map(lambda a, b: jnp.where(index < stop, a, b), new, st)

        return jax.lax.fori_loop(0, length, body, state)

    def run_sample_chunk(self, state, start, n_draws: int, thin: int, stop):
        """``n_draws`` recorded draws, ``thin`` steps each (fastpath sampling): ``thin - 1``
        unrecorded steps, then one recorded step."""

        def draw(st, j):
            base = start + j * thin
            if thin > 1:
                st = self.run_silent(st, base, thin - 1, stop)
            index = base + thin - 1
            new, rec = self.step(st, index)
            new = jax.tree.map(lambda a, b: jnp.where(index < stop, a, b), new, st)
            return new, {"positions": rec["positions"], "infos": rec["infos"]}

        return jax.lax.scan(draw, state, jnp.arange(n_draws))
