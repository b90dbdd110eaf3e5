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
from .kernels import (
    BlockKernel,
    capture_info,
    default_tuning,
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


def _default_prior():
    from ..bayesian import priors

    return priors.gaussian(sigma=10.0)


def take_masked(params, mask):
    """The masked subset of ``params`` (``None`` elsewhere); everything when ``mask is None``."""
    if mask is None:
        return params
    if isinstance(mask, bool):
        return params if mask else None
    return jax.tree.map(lambda p, m: p if m else None, params, mask)


def drop_masked(params, mask):
    """``params`` with the masked leaves removed (``None``)."""
    if mask is None:
        return None
    if isinstance(mask, bool):
        return None if mask else params
    return jax.tree.map(lambda p, m: None if m else p, params, mask)


class Engine:
    """Builds the step function of a solve from its :class:`Program` and :class:`SolvePlan`."""

    def __init__(self, program: Program, plan: SolvePlan, key, batch_size: int | None = None):
        self.program = program
        self.plan = plan
        self.key = key
        self.batch_size = batch_size
        self.K = plan.num_chains
        self.priors = []
        params = program.initial_params()
        for block in plan.blocks:
            fns = []
            for mem in block.members:
                prior = mem.group.settings.prior
                prior = prior if prior is not None else _default_prior()
                check_prior(prior, take_masked(params[model_key(mem.model)], mem.mask_params),
                            mem.model.where)
                fns.append(prior)
            self.priors.append(fns)
        self.weights = [program.loglik_weights(b.settings.likelihood_scale) for b in plan.blocks]
        # Kernel states must be re-initialised each step when what they condition on moved.
        self.refresh = (
            len(plan.blocks) > 1
            or bool(plan.optax_models)
            or batch_size is not None
            or bool(program.redrawn)
        )

    # ------------------------------------------------------------------ state
    def init_state(self, params: dict, key) -> dict:
        point = {}
        bayes_models = {mem.model.uid for b in self.plan.blocks for mem in b.members}
        for m in self.program.models:
            p = params[model_key(m)]
            if m.uid in bayes_models:
                rest = p
                for g_mem in (mem for b in self.plan.blocks for mem in b.members if mem.model is m):
                    rest = drop_masked(rest, g_mem.mask_params)
                point[model_key(m)] = rest
            else:
                point[model_key(m)] = p
        opt = {
            model_key(m): self.plan.txs[model_key(m)].init(
                eqx.filter(point[model_key(m)], eqx.is_inexact_array)
            )
            for m in self.plan.optax_models
        }
        blocks = []
        for b, block in enumerate(self.plan.blocks):
            pos = {
                mem.key: take_masked(params[model_key(mem.model)], mem.mask_params)
                for mem in block.members
            }
            keys = jax.random.split(jax.random.fold_in(key, 1000 + b), self.K)
            jitter = block.settings.init_jitter

            def start(k, pos=pos, jitter=jitter):
                if jitter == 0:
                    return pos
                leaves, treedef = jax.tree.flatten(pos)
                ks = jax.random.split(k, len(leaves))
                return jax.tree.unflatten(
                    treedef,
                    [
                        leaf + jitter * jax.random.normal(kk, leaf.shape, leaf.dtype)
                        for leaf, kk in zip(leaves, ks)
                    ],
                )

            starts = jax.vmap(start)(keys)
            tuned = default_tuning(block.settings, pos)
            tuned = jax.tree.map(lambda t: jnp.broadcast_to(t, (self.K,) + t.shape), tuned)
            blocks.append({"start": starts, "tuned": tuned})
        state = {"point": point, "opt": opt, "blocks": blocks}
        # Kernel states need the full log-density: initialise them with every block's start.
        positions = [blk["start"] for blk in blocks]
        for b, block in enumerate(self.plan.blocks):
            tuned = blocks[b]["tuned"]

            def init_chain(pos_all, tuned_k, b=b, block=block):
                logd = self.block_logdensity(b, point, pos_all, self.program.inputs)
                return BlockKernel(block.settings, logd, tuned_k).init(pos_all[b])

            blocks[b] = {
                "kstate": vmap_chains(init_chain, self.K)(positions, tuned),
                "tuned": tuned,
            }
        return state

    # ------------------------------------------------------------------ densities
    def assemble(self, point: dict, positions: list) -> dict:
        """Full params from the point values and one chain's block positions."""
        params = dict(point)
        for b, block in enumerate(self.plan.blocks):
            for mem in block.members:
                mk = model_key(mem.model)
                part = positions[b][mem.key]
                if mem.mask_params is None:
                    params[mk] = part
                else:
                    params[mk] = eqx.combine(params[mk], part) if params[mk] is not None else part
        return params

    def block_logdensity(self, b: int, point: dict, positions: list, inputs):
        """``θ_b -> -Σ w_k L_k(θ) + Σ log prior(θ_b)`` with the other blocks held."""
        block = self.plan.blocks[b]
        weights = self.weights[b]
        priors = self.priors[b]

        def logdensity(pos_b):
            pos = list(positions)
            pos[b] = pos_b
            losses = self.program.losses(self.assemble(point, pos), inputs)
            lp = sum(prior(pos_b[mem.key]) for prior, mem in zip(priors, block.members))
            return -jnp.sum(weights * losses) + lp

        return logdensity

    # ------------------------------------------------------------------ adaptation
    def adapt(self, state: dict, key) -> dict:
        """Window adaptation for every adapting block, each chain on its own (vmapped)."""
        blocks = list(state["blocks"])
        for b, block in enumerate(self.plan.blocks):
            if not block.settings.adapts:
                continue
            positions = [position_of(blk["kstate"]) for blk in blocks]
            keys = jax.random.split(jax.random.fold_in(key, 2000 + b), self.K)

            def adapt_chain(k, pos_all, tuned_k, b=b, block=block):
                logd = self.block_logdensity(b, state["point"], pos_all, self.program.inputs)
                return window_adapt(block.settings, logd, k, pos_all[b], tuned_k)

            kstate, tuned = vmap_chains(adapt_chain, self.K)(keys, positions, blocks[b]["tuned"])
            blocks[b] = {"kstate": kstate, "tuned": tuned}
        return {**state, "blocks": blocks}

    # ------------------------------------------------------------------ one step
    def step(self, state: dict, index) -> tuple[dict, dict]:
        key = jax.random.fold_in(self.key, index)
        k_batch, k_blocks = jax.random.split(key)
        inputs = self.step_inputs(k_batch)
        point = state["point"]
        blocks = list(state["blocks"])
        positions = [position_of(blk["kstate"]) for blk in blocks]
        infos = []
        for b, block in enumerate(self.plan.blocks):
            keys = jax.random.split(jax.random.fold_in(k_blocks, b), self.K)

            def chain_step(k, kstate, tuned_k, pos_all, b=b, block=block):
                logd = self.block_logdensity(b, point, pos_all, inputs)
                kernel = BlockKernel(block.settings, logd, tuned_k)
                if self.refresh:
                    kstate = kernel.init(position_of(kstate))
                new, info = kernel.step(k, kstate)
                return new, capture_info(info, new)

            kstate, info = vmap_chains(chain_step, self.K)(
                keys, blocks[b]["kstate"], blocks[b]["tuned"], positions
            )
            blocks[b] = {"kstate": kstate, "tuned": blocks[b]["tuned"]}
            positions[b] = position_of(kstate)
            infos.append(info)
        new_point, opt, losses = self.optax_update(point, state["opt"], positions, inputs)
        record = {"losses": losses, "positions": positions, "infos": infos}
        return {"point": new_point, "opt": opt, "blocks": blocks}, record

    def chain_losses(self, point, positions, inputs) -> jax.Array:
        """Per-constraint losses averaged over the chains ``(C,)``."""
        if not self.plan.blocks:
            return self.program.losses(point, inputs)
        per_chain = jax.vmap(lambda pos: self.program.losses(self.assemble(point, pos), inputs))
        return jnp.mean(per_chain(positions), axis=0)

    def optax_update(self, point, opt, positions, inputs):
        if not self.plan.optax_models:
            return point, opt, None
        keys = [model_key(m) for m in self.plan.optax_models]
        trainable = {k: eqx.filter(point[k], eqx.is_inexact_array) for k in keys}

        def loss_fn(tr):
            p = {**point, **{k: eqx.combine(tr[k], point[k]) for k in keys}}
            losses = self.chain_losses(p, positions, inputs)
            return jnp.sum(losses), losses

        (_, losses), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
        new_point, new_opt = dict(point), dict(opt)
        for k in keys:
            tx = self.plan.txs[k]
            updates, new_opt[k] = tx.update(grads[k], opt[k], trainable[k])
            new_point[k] = eqx.combine(optax.apply_updates(trainable[k], updates), point[k])
        return new_point, new_opt, losses

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
    def run_chunk(self, state, start, length: int, stop):
        """``length`` steps from global index ``start``; steps at or past ``stop`` are no-ops.
        Records every step."""

        def body(st, i):
            index = start + i
            new, rec = self.step(st, index)
            active = index < stop
            new = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, st)
            if rec["losses"] is None:
                rec = {
                    **rec,
                    "losses": self.chain_losses(
                        new["point"], rec["positions"], self.program.inputs
                    ),
                }
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
