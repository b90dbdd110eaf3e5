"""jno vs hand-written jax+optax on the 1D and 2D Poisson PINNs (same network, points,
optimiser, steps and seed), in one process.

Prints the steady-state step-time ratio jno / hand-written and the compile-time ratio.
Run: python benchmarks/pinn_overhead.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jno

CHUNK = 500


def jno_problem(dim: int):
    if dim == 1:
        dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))
        x, _ = dom.variable("interior")
        xb, _ = dom.variable("boundary")
        coords, bcoords = [x], [xb]
    else:
        dom = jno.domain(constructor=jno.domain.rect(mesh_size=0.05, x_range=(0, 1),
                                                     y_range=(0, 1)))
        x, y, _ = dom.variable("interior")
        xb, yb, _ = dom.variable("boundary")
        coords, bcoords = [x, y], [xb, yb]
    mlp = jno.nn.mlp(dim, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(0))
    net = jno.nn.wrap(mlp).optimizer(optax.adam(1e-3))
    inp = coords[0] if dim == 1 else jno.np.concat(coords, axis=-1)
    binp = bcoords[0] if dim == 1 else jno.np.concat(bcoords, axis=-1)
    u = net(inp)
    f = dim * jno.np.pi**2
    for c in coords:
        f = f * jno.np.sin(jno.np.pi * c)
    pde = jno.np.laplacian(u, coords) + f
    crux = jno.core([pde.mse, net(binp).mse])
    return crux, mlp, dom.points("interior"), dom.points("boundary")


def hand_written(mlp, pts, bpts):
    params, static = eqx.partition(mlp, eqx.is_inexact_array)
    tx = optax.adam(1e-3)
    dim = pts.shape[1]
    pts, bpts = jnp.asarray(pts), jnp.asarray(bpts)

    def u(p, c):
        return eqx.combine(p, static)(c)

    def lap(p, c):
        total = 0.0
        for i in range(dim):
            e = jnp.zeros(dim).at[i].set(1.0)
            d1 = lambda cc, e=e: jax.jvp(lambda z: u(p, z), (cc,), (e,))[1]  # noqa: E731
            total = total + jax.jvp(d1, (c,), (e,))[1]
        return total

    def loss(p):
        f = dim * jnp.pi**2 * jnp.prod(jnp.sin(jnp.pi * pts), axis=1, keepdims=True)
        r = jax.vmap(lambda c: lap(p, c))(pts) + f
        b = jax.vmap(lambda c: u(p, c))(bpts)
        return jnp.mean(r**2) + jnp.mean(b**2)

    def step(carry, _):
        p, s = carry
        val, g = jax.value_and_grad(loss)(p)
        upd, s = tx.update(g, s, p)
        return (optax.apply_updates(p, upd), s), val

    chunk = jax.jit(lambda c: jax.lax.scan(step, c, None, length=CHUNK))
    return chunk, (params, tx.init(params))


def timed(fn):
    t = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    return time.perf_counter() - t, out


def bench(dim: int, steps: int):
    crux, mlp, pts, bpts = jno_problem(dim)
    chunk, carry = hand_written(mlp, pts, bpts)
    t_jno_first, _ = timed(lambda: crux.solve(CHUNK, print_rate=CHUNK, progress=False))
    t_hand_first, (carry, _) = timed(lambda: chunk(carry))
    jno_times, hand_times = [], []
    for _ in range(steps // CHUNK):  # interleave so both see the same machine load
        t, _ = timed(lambda: crux.solve(CHUNK, print_rate=CHUNK, progress=False))
        jno_times.append(t)
        t, (carry, _) = timed(lambda: chunk(carry))
        hand_times.append(t)
    jno_step = np.median(jno_times) / CHUNK
    hand_step = np.median(hand_times) / CHUNK
    jno_compile = t_jno_first - jno_step * CHUNK
    hand_compile = t_hand_first - hand_step * CHUNK
    return jno_step, hand_step, jno_compile, hand_compile


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'problem':<12}{'jno ms/step':>12}{'hand ms/step':>14}{'step ratio':>12}"
          f"{'jno compile s':>15}{'hand compile s':>16}{'compile ratio':>15}")
    for dim in (1, 2):
        js, hs, jc, hc = bench(dim, args.steps)
        print(f"{f'Poisson {dim}D':<12}{1e3 * js:>12.3f}{1e3 * hs:>14.3f}{js / hs:>12.3f}"
              f"{jc:>15.2f}{hc:>16.2f}{jc / hc:>15.2f}")


if __name__ == "__main__":
    main()
