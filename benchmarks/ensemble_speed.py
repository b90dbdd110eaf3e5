"""Steady-state speed of jno.inference against a hand-written ``jax.vmap`` + optax loop.

The model is the tutorial's: 80 sinc points, a 1-32-32-1 tanh ``eqx.nn.MLP``, a Gaussian
log-likelihood with a standard-normal prior, ``optax.adam(5e-3)``, full batch. Four
variants train the same stacked initial state for ``--steps`` steps:

- ``loop``: pattern A, a Python loop over ``eqx.filter_jit(ensemble_step)``;
- ``hand_loop``: a Python loop over ``jax.jit(jax.vmap(member_step))`` on the arrays
  (partitioned out of the equinox module once, before the loop);
- ``hand_eqx_loop``: the same hand-written step, but carrying the equinox module as
  pattern A does, hence behind ``eqx.filter_jit`` (isolates equinox's dispatch cost);
- ``scan``: ``EnsembleMAP.fit`` (one compiled ``lax.scan``; ``run`` is ``init`` + ``fit``);
- ``hand_scan``: ``jax.jit`` of a ``lax.scan`` over the hand-written vmapped step.

Every variant is compiled first; then the variants are timed in interleaved rounds and
the fastest round is kept (the minimum is the least contaminated by other processes).

    python benchmarks/ensemble_speed.py [--sizes 1 4 16 64] [--steps 300] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax

from jno.inference import EnsembleMAP, ensemble_step

SIGMA = 0.1


def init_mlp(key):
    return eqx.nn.MLP(1, 1, 32, 2, activation=jax.nn.tanh, key=key)


def log_joint(mlp, x, y):
    f = jax.vmap(mlp)(x[:, None]).squeeze(-1)
    loglik = -0.5 * jnp.sum((y - f) ** 2) / SIGMA**2
    weights = jax.tree.leaves(eqx.filter(mlp, eqx.is_inexact_array))
    return loglik, -0.5 * sum(jnp.sum(w**2) for w in weights)


def block(tree):
    return jax.block_until_ready(jax.tree.leaves(eqx.filter(tree, eqx.is_array)))


def make_variants(ensemble_size: int, steps: int, x, y):
    """Return ``{name: zero-argument callable running ``steps`` steps}``."""
    optimizer = optax.adam(5e-3)
    runner = EnsembleMAP(log_joint, init_mlp, optimizer, ensemble_size=ensemble_size)
    state = runner.init(jr.PRNGKey(0))
    arrays, static = eqx.partition(state.params, eqx.is_array)

    jno_step = eqx.filter_jit(
        lambda s: ensemble_step(s, x, y, log_joint=log_joint, optimizer=optimizer)
    )

    def member_step(p, opt_state):
        def loss(q):
            loglik, logprior = log_joint(eqx.combine(q, static), x, y)
            return -loglik - logprior

        value, grads = jax.value_and_grad(loss)(p)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, value

    vmapped_step = jax.vmap(member_step)
    hand_step = jax.jit(vmapped_step)

    @jax.jit
    def hand_scan(p, opt_state):
        def body(carry, _):
            p, s, value = vmapped_step(*carry)
            return (p, s), value

        return jax.lax.scan(body, (p, opt_state), None, length=steps)

    @eqx.filter_jit
    def hand_eqx_step(params, opt_state):
        p, static_params = eqx.partition(params, eqx.is_array)
        p, opt_state, value = vmapped_step(p, opt_state)
        return eqx.combine(p, static_params), opt_state, value

    def run_loop():
        s = state
        for _ in range(steps):
            s, _ = jno_step(s)
        return block(s)

    def run_hand_loop():
        p, o = arrays, state.opt_state
        for _ in range(steps):
            p, o, _ = hand_step(p, o)
        return block(p)

    def run_hand_eqx_loop():
        p, o = state.params, state.opt_state
        for _ in range(steps):
            p, o, _ = hand_eqx_step(p, o)
        return block(p)

    def run_scan():
        return block(runner.fit(state, x, y, jr.PRNGKey(1), steps))

    def run_hand_scan():
        return block(hand_scan(arrays, state.opt_state))

    return {
        "loop": run_loop,
        "hand_loop": run_hand_loop,
        "hand_eqx_loop": run_hand_eqx_loop,
        "scan": run_scan,
        "hand_scan": run_hand_scan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    kx, ky = jr.split(jr.PRNGKey(666))
    x = jr.uniform(kx, (80,), minval=-10.0, maxval=10.0)
    y = jnp.sinc(x / jnp.pi) + SIGMA * jr.normal(ky, (80,))

    print(
        f"jax {jax.__version__}, equinox {eqx.__version__}, optax {optax.__version__}, "
        f"{jax.devices()[0].platform} x{jax.device_count()}, {os.cpu_count()} CPU cores, "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"steps per timing: {args.steps}, rounds: {args.repeats} (fastest kept)")
    print("times in ms per step (all members)\n")
    print(
        "| E | loop | hand eqx loop | hand loop | loop / hand eqx | loop / hand "
        "| scan | hand scan | scan / hand | members/s loop | members/s scan |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        variants = make_variants(size, args.steps, x, y)
        for run in variants.values():
            run()
        best = dict.fromkeys(variants, float("inf"))
        for _ in range(args.repeats):
            for name, run in variants.items():
                start = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - start)
        ms = {name: 1e3 * t / args.steps for name, t in best.items()}
        print(
            f"| {size} | {ms['loop']:.3f} | {ms['hand_eqx_loop']:.3f} | {ms['hand_loop']:.3f} "
            f"| {ms['loop'] / ms['hand_eqx_loop']:.2f} | {ms['loop'] / ms['hand_loop']:.2f} "
            f"| {ms['scan']:.3f} | {ms['hand_scan']:.3f} | {ms['scan'] / ms['hand_scan']:.2f} "
            f"| {size * 1e3 / ms['loop']:.0f} | {size * 1e3 / ms['scan']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
