"""jno beside hand-written JAX at the sizes users bring: 1e2 ... 1e5 points.

* ``--grad``: one gradient of a log-density, 200 calls inside a ``lax.scan`` (the way a sampler
  calls it), for (a) data points of the linear-in-features model ``y = θ0 sin πx + θ1 cos πx +
  θ2`` (Gaussian likelihood, σ = 0.1) and (b) collocation points of a PINN residual
  ``u'' + π² sin πx`` of a 1-20-20-1 tanh network, and (c) Raissi's Burgers loss below
  (2000 points, ``u, u_t, u_x, u_xx``; hand-written in reverse mode). jno: the crux's
  lowered losses on its inputs prepared the way a solve prepares them once per chunk
  (``Program.hoist``: the parameter-free ``sin πx``, ``cos πx`` evaluated once);
  hand-written: the same maths in jax.numpy with the arrays passed as arguments (not closed
  over, so XLA cannot fold them).
* ``--nuts``: NUTS on the linear model, 4 chains × 1000 draws, the same fixed step size and
  identity mass matrix, started at the same point; microseconds per leapfrog step (per
  gradient) of the compiled steady state (a second call), jno (``crux.solve``) beside
  blackjax's ``nuts`` in a hand-written ``vmap``/``lax.scan``.
* ``--memory``: the compiled step's temporary memory at the largest N, with and without
  hoisting, beside the size of the hoisted arrays.
* ``--raissi``: the Burgers identification of Raissi et al. (2019): ``u_t + λ1 u u_x - λ2 u_xx =
  0`` from 2000 noisy observations (1 % noise, exact Cole–Hopf solution on ``[-1, 1] × [0,
  1)``), an 8×20 tanh network, ``λ1 = 0`` and ``log λ2 = -6`` at the start, Adam then L-BFGS;
  jno with one ``optax.lbfgs()`` object shared by the network and both coefficients, beside a
  hand-written joint L-BFGS over the concatenated pytree, from the same initial weights.

Everything runs in one process, medians over rounds, every program compiled with plain
``jax.jit`` (as a solve compiles its steps).

    python benchmarks/scale_points.py --grad --nuts          # a few minutes on 2 CPU cores
    python benchmarks/scale_points.py --raissi --quick       # 500 + 500 steps
    python benchmarks/scale_points.py --raissi               # 5000 + 5000 steps
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import NamedTuple

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jno
from jno.lower.evaluate import model_key

sys.path.insert(0, os.path.dirname(__file__))
from pinn_problems import NU, cole_hopf  # noqa: E402

SIGMA = 0.1


def calls_for(n: int) -> int:
    """Gradient calls per timed scan: 200, more at small N so that one call of the compiled
    scan (whose dispatch costs a few µs) runs for milliseconds."""
    return max(200, 1_000_000 // n)
HISTORY_EVERY = 1  # --history-every: jno's L-BFGS phase records the losses every k steps


def paired_times(f, f_args, g, g_args, rounds=9) -> tuple[float, float]:
    """Median seconds of a call of ``f(*f_args)`` and of ``g(*g_args)``, compiled first and
    then timed alternately (one of each per round), so a machine whose speed drifts (a
    shared VM's neighbours) slows both alike."""
    jax.block_until_ready(f(*f_args))
    jax.block_until_ready(g(*g_args))
    times = []
    for _ in range(rounds):
        row = []
        for fn, args in ((f, f_args), (g, g_args)):
            t = time.perf_counter()
            jax.block_until_ready(fn(*args))
            row.append(time.perf_counter() - t)
        times.append(row)
    med = np.median(np.array(times), axis=0)
    return float(med[0]), float(med[1])


# ------------------------------------------------------------------ linear-in-features model
def linear_data(n: int):
    rng = np.random.default_rng(0)
    xs = np.sort(rng.uniform(0, 1, n)).astype(np.float32)
    y = 3.14 * np.sin(np.pi * xs) - 2.71 * np.cos(np.pi * xs) + 0.5 + SIGMA * rng.normal(size=n)
    return xs, y.astype(np.float32)


def linear_jno(xs, y):
    dom = jno.domain(constructor=jno.domain.points(xs[:, None]))
    x, _ = dom.variable("interior")
    obs = dom.variable("y", y[:, None])
    th = jno.np.parameter((3,), name="th", init=0.0)
    r = th[0:1] * jno.np.sin(jno.np.pi * x) + th[1:2] * jno.np.cos(jno.np.pi * x) + th[2:3] - obs
    return th, r.gaussian(std=SIGMA)


def linear_hand_loss(th, xs, y):
    r = th[0] * jnp.sin(jnp.pi * xs) + th[1] * jnp.cos(jnp.pi * xs) + th[2] - y
    return 0.5 * jnp.sum((r / SIGMA) ** 2) + r.size * jnp.log(SIGMA * jnp.sqrt(2 * jnp.pi))


def scan_of_grads(loss, calls=200):
    """``calls`` gradient calls of ``loss(θ, *args)`` in a ``lax.scan`` (each moves θ a
    little, so no call can be skipped), compiled."""

    def run(th0, *args):
        def body(th, _):
            g = jax.grad(loss)(th, *args)
            return jax.tree.map(lambda a, b: a - 1e-12 * b, th, g), None

        return jax.lax.scan(body, th0, None, length=calls)[0]

    return jax.jit(run)


def grad_linear(n: int) -> tuple[float, float]:
    xs, y = linear_data(n)
    th, constraint = linear_jno(xs, y)
    program = jno.core([constraint]).program
    key = model_key(th)
    calls = calls_for(n)
    jno_run = scan_of_grads(lambda t, inputs: program.losses({key: t}, inputs).sum(), calls)
    prepared = jax.jit(program.hoist)(program.inputs)
    hand_run = scan_of_grads(linear_hand_loss, calls)
    th0 = jnp.array([1.0, -1.0, 0.0])
    t_jno, t_hand = paired_times(jno_run, (th0, prepared),
                                 hand_run, (th0, jnp.asarray(xs), jnp.asarray(y)))
    return t_jno / calls, t_hand / calls


# ------------------------------------------------------------------ PINN collocation residual
def grad_pinn(n: int) -> tuple[float, float]:
    xs = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    dom = jno.domain(constructor=jno.domain.points(xs))
    x, _ = dom.variable("interior")
    module = jno.nn.mlp(1, 1, hidden_dims=20, num_layers=2, key=jax.random.PRNGKey(0))
    net = jno.nn.wrap(module, name="u")
    pde = jno.diff(net(x), x, order=2) + jno.np.pi**2 * jno.np.sin(jno.np.pi * x)
    program = jno.core([pde.mse]).program
    key = model_key(net)
    calls = 200
    params, static = eqx.partition(module, eqx.is_inexact_array)
    jno_run = scan_of_grads(lambda p, inputs: program.losses({key: p}, inputs).sum())
    prepared = jax.jit(program.hoist)(program.inputs)

    def hand_loss(p, pts):
        u = eqx.combine(p, static)

        def u_xx(z):
            return jax.grad(jax.grad(lambda s: u(jnp.reshape(s, (1,)))[0]))(z)

        r = jax.vmap(u_xx)(pts[:, 0]) + jnp.pi**2 * jnp.sin(jnp.pi * pts[:, 0])
        return jnp.mean(r**2)

    hand_run = scan_of_grads(hand_loss)
    t_jno, t_hand = paired_times(jno_run, (params, prepared), hand_run, (params, jnp.asarray(xs)))
    return t_jno / calls, t_hand / calls


# ------------------------------------------------------------------ memory of the compiled step
def step_memory(n: int) -> dict:
    """Temporary memory (``compiled.memory_analysis()``) of the compiled scan of gradients of
    the linear model with the features hoisted (on ``Program.hoist``'s inputs) and without
    (on the raw inputs, ``sin πx`` and ``cos πx`` computed in the step), and the size of the
    hoisted arrays."""
    xs, y = linear_data(n)
    th, constraint = linear_jno(xs, y)
    program = jno.core([constraint]).program
    key = model_key(th)
    run = scan_of_grads(lambda t, inputs: program.losses({key: t}, inputs).sum())
    th0 = jnp.array([1.0, -1.0, 0.0])
    prepared = jax.jit(program.hoist)(program.inputs)
    hoisted_bytes = sum(a.nbytes for rows in prepared.values()
                        for a in jax.tree.leaves(rows.get("hoisted", {})))
    temp = {}
    for name, inputs in (("hoisted", prepared), ("not hoisted", program.inputs)):
        temp[name] = run.lower(th0, inputs).compile().memory_analysis().temp_size_in_bytes
    return {"hoisted_arrays": hoisted_bytes, **temp}


# ------------------------------------------------------------------ NUTS per leapfrog
def nuts_per_leapfrog(n: int, chains=4, draws=1000) -> tuple[float, float, float]:
    """µs per leapfrog step of jno's whole ``crux.solve(draws)`` (its per-solve work
    included: key streams, history, the divergence report), of one more chunk of ``draws``
    (a solve of two chunks minus a solve of one: the steady state of a long run) and of the
    hand-written compiled scan; medians over rounds that alternate the three."""
    xs, y = linear_data(n)
    step = 0.5 * SIGMA * np.sqrt(2.0 / n)
    start = np.array([3.14, -2.71, 0.5], np.float32)
    th, constraint = linear_jno(xs, y)
    th.initialize(jnp.asarray(start))
    th.bayesian(blackjax.nuts, step_size=step, adapt=False, warmup=0, keep=draws,
                num_chains=chains, prior=jno.bayesian.priors.gaussian(sigma=10.0))
    crux = jno.core([constraint])
    crux.solve(draws, print_rate=draws)

    def jno_again(chunks=1):
        before = crux.solver.grad_evals
        t = time.perf_counter()
        crux.solve(chunks * draws, print_rate=draws)
        return time.perf_counter() - t, crux.solver.grad_evals - before

    X, Y = jnp.asarray(xs), jnp.asarray(y)
    prior = jno.bayesian.priors.gaussian(sigma=10.0)

    @jax.jit
    def hand(keys, pos, X, Y, step, imm):
        # step size and mass matrix as arguments, as after a warm-up (jno's are state, too):
        # as compile-time constants XLA folds the kinetic energy's work at small N
        logdensity = lambda t: -linear_hand_loss(t, X, Y) + prior(t)  # noqa: E731
        kernel = blackjax.nuts(logdensity, step_size=step, inverse_mass_matrix=imm)

        def chain(key, p):
            def body(state, k):
                state, info = kernel.step(k, state)
                return state, info.num_integration_steps

            return jax.lax.scan(body, kernel.init(p), jax.random.split(key, draws))[1]

        return jax.vmap(chain)(keys, pos)

    keys = jax.random.split(jax.random.PRNGKey(1), chains)
    pos = jnp.tile(jnp.asarray(start), (chains, 1))
    tuned = (jnp.asarray(step, jnp.float32), jnp.ones(3, jnp.float32))
    jax.block_until_ready(hand(keys, pos, X, Y, *tuned))
    rows = []
    for _ in range(7):
        t_j, g_j = jno_again()
        t_j2, g_j2 = jno_again(2)
        t = time.perf_counter()
        steps = jax.block_until_ready(hand(keys, pos, X, Y, *tuned))
        t_h = time.perf_counter() - t
        rows.append((t_j / g_j, (t_j2 - t_j) / (g_j2 - g_j), t_h / float(np.sum(steps))))
    per = np.median(np.array(rows), axis=0)
    return float(per[0]), float(per[1]), float(per[2])


# ------------------------------------------------------------------ Raissi identification
def raissi_data(n=2000, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    t = rng.uniform(0, 0.99, n)
    u = np.array([cole_hopf(np.array([xi]), ti)[0] for xi, ti in zip(x, t)])
    u = u + noise * np.std(u) * rng.normal(size=n)
    dt = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return np.stack([x, t], 1).astype(dt), u[:, None].astype(dt)


def raissi_net(seed=0):
    return jno.nn.mlp(2, 1, hidden_dims=20, num_layers=8, key=jax.random.PRNGKey(seed))


class Identified(NamedTuple):
    """A Raissi run: the identified coefficients, the whole wall time, the L-BFGS phase's
    wall time and its objective evaluations (value and gradient: the steps' own and every
    line-search step's)."""

    lam1: float
    lam2: float
    wall: float
    lbfgs_wall: float
    lbfgs_evals: int


def raissi_model(pts, u_obs):
    """jno's Raissi problem: the crux and its three models (network, λ1, log λ2)."""
    dom = jno.domain(constructor=jno.domain.points(pts))
    x, t, _ = dom.variable("interior")  # the points' two columns: x and t
    obs = dom.variable("u", u_obs)
    net = jno.nn.wrap(raissi_net(), name="u")
    lam1 = jno.np.parameter((1,), name="lam1", init=0.0)
    log_lam2 = jno.np.parameter((1,), name="log_lam2", init=-6.0)
    u = net(jno.np.concat([x, t], axis=-1))
    f = (jno.diff(u, t) + lam1 * u * jno.diff(u, x)
         - jno.np.exp(log_lam2) * jno.diff(u, x, order=2))
    return jno.core([(u - obs).mse, f.mse]), net, lam1, log_lam2


def raissi_hand_loss(static):
    """The hand-written Raissi loss of ``(p, points, u_obs)``, ``p = {"net", "lam1",
    "log_lam2"}``: per-point reverse mode (``jax.grad``, grad of grad), vmapped."""

    def loss(p, P, U):
        net = eqx.combine(p["net"], static)

        def point(z):
            def u(z):
                return net(z)[0]

            g = jax.grad(u)(z)
            uxx = jax.grad(lambda s: jax.grad(u)(s)[0])(z)[0]
            return u(z), g[0], g[1], uxx

        uu, ux, ut, uxx = jax.vmap(point)(P)
        f = ut + p["lam1"][0] * uu * ux - jnp.exp(p["log_lam2"][0]) * uxx
        return jnp.mean((uu - U[:, 0]) ** 2) + jnp.mean(f**2)

    return loss


def raissi_hand_params(dtype):
    params, static = eqx.partition(raissi_net(), eqx.is_inexact_array)
    p = {"net": params, "lam1": jnp.zeros(1, dtype), "log_lam2": jnp.full(1, -6.0, dtype)}
    return p, static


def grad_raissi(calls=100) -> tuple[float, float]:
    """Seconds per gradient of the Raissi loss (2000 points; ``u, u_t, u_x, u_xx`` of an
    8×20 network), jno's lowered losses beside the hand-written reverse-mode loss."""
    pts, u_obs = raissi_data()
    crux, *_ = raissi_model(pts, u_obs)
    program = crux.program
    prepared = jax.jit(program.hoist)(program.inputs)
    jno_run = scan_of_grads(lambda p, inputs: program.losses(p, inputs).sum(), calls)
    p, static = raissi_hand_params(pts.dtype)
    hand_run = scan_of_grads(raissi_hand_loss(static), calls)
    t_jno, t_hand = paired_times(jno_run, (program.initial_params(), prepared),
                                 hand_run, (p, jnp.asarray(pts), jnp.asarray(u_obs)))
    return t_jno / calls, t_hand / calls


def raissi_jno(pts, u_obs, adam_steps, lbfgs_steps):
    crux, net, lam1, log_lam2 = raissi_model(pts, u_obs)
    start = time.perf_counter()
    adam = optax.adam(1e-3)
    for m in (net, lam1, log_lam2):
        m.optimizer(adam)
    crux.solve(adam_steps, print_rate=max(1, adam_steps // 5), progress=False)
    lbfgs_start, evals_before = time.perf_counter(), crux.solver.grad_evals
    lbfgs = optax.lbfgs()  # one object: one L-BFGS over the network and both coefficients
    for m in (net, lam1, log_lam2):
        m.optimizer(lbfgs)
    every = HISTORY_EVERY if (lbfgs_steps // 5) % HISTORY_EVERY == 0 else 1
    crux.solve(
        lbfgs_steps, print_rate=max(1, lbfgs_steps // 5), progress=False, history_every=every
    )
    end = time.perf_counter()
    return Identified(
        float(np.asarray(lam1.module)[0]),
        float(np.exp(np.asarray(log_lam2.module)[0])),
        end - start,
        end - lbfgs_start,
        crux.solver.grad_evals - evals_before,
    )


def raissi_hand(pts, u_obs, adam_steps, lbfgs_steps):
    p, static = raissi_hand_params(pts.dtype)
    P, U = jnp.asarray(pts), jnp.asarray(u_obs)
    hand_loss = raissi_hand_loss(static)

    def loss(p):
        return hand_loss(p, P, U)

    start = time.perf_counter()
    adam = optax.adam(1e-3)

    @jax.jit
    def adam_run(p):
        def body(c, _):
            p, s = c
            g = jax.grad(loss)(p)
            upd, s = adam.update(g, s, p)
            return (optax.apply_updates(p, upd), s), None

        return jax.lax.scan(body, (p, adam.init(p)), None, length=adam_steps)[0][0]

    p = jax.block_until_ready(adam_run(p))
    lbfgs_start = time.perf_counter()
    lbfgs = optax.lbfgs()
    vg = optax.value_and_grad_from_state(loss)

    @jax.jit
    def lbfgs_run(p):
        def body(c, _):
            p, s, evals = c
            value, g = vg(p, state=s)
            upd, s = lbfgs.update(g, s, p, value=value, grad=g, value_fn=loss)
            evals = evals + optax.tree.get(s, "num_linesearch_steps")
            return (optax.apply_updates(p, upd), s, evals), None

        init = (p, lbfgs.init(p), jnp.asarray(1))  # the first step computes its own gradient
        p, _, evals = jax.lax.scan(body, init, None, length=lbfgs_steps)[0]
        return p, evals

    p, evals = jax.block_until_ready(lbfgs_run(p))
    end = time.perf_counter()
    return Identified(
        float(p["lam1"][0]),
        float(jnp.exp(p["log_lam2"][0])),
        end - start,
        end - lbfgs_start,
        int(evals),
    )


# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grad", action="store_true")
    ap.add_argument("--nuts", action="store_true")
    ap.add_argument("--raissi", action="store_true")
    ap.add_argument("--memory", action="store_true", help="temporary memory at the largest N")
    ap.add_argument("--quick", action="store_true", help="smaller N range / Raissi budget")
    ap.add_argument("--float64", action="store_true", help="Raissi in float64")
    ap.add_argument("--noise", type=float, default=0.01, help="Raissi: relative noise")
    ap.add_argument("--adam-steps", type=int, default=0, help="Raissi: Adam steps (a budget)")
    ap.add_argument("--lbfgs-steps", type=int, default=0, help="Raissi: L-BFGS steps")
    ap.add_argument("--history-every", type=int, default=1,
                    help="Raissi: jno's L-BFGS phase records the losses every k steps")
    args = ap.parse_args()
    global HISTORY_EVERY
    HISTORY_EVERY = args.history_every
    if not (args.grad or args.nuts or args.raissi or args.memory):
        args.grad = args.nuts = args.memory = True
    print(f"jax {jax.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    sizes = [100, 1000, 10_000] if args.quick else [100, 1000, 10_000, 100_000]
    if args.grad:
        print("\n| workload | N | jno µs/grad | hand µs/grad | jno/hand |\n|---|---|---|---|---|")
        for name, fn in (("linear model, data points", grad_linear),
                         ("PINN residual u'' + f, collocation points", grad_pinn)):
            for n in sizes:
                a, b = fn(n)
                print(f"| {name} | {n:.0e} | {a * 1e6:.1f} | {b * 1e6:.1f} | {a / b:.2f} |",
                      flush=True)
        a, b = grad_raissi()
        print(f"| Raissi's Burgers loss (u, u_t, u_x, u_xx of an 8x20 network) | 2e+03 | "
              f"{a * 1e6:.1f} | {b * 1e6:.1f} | {a / b:.2f} |", flush=True)
    if args.nuts:
        print("\n| NUTS, 4 chains x 1000 draws | N | jno µs/leapfrog, whole solve | "
              "jno, one more chunk | hand | jno/hand whole | one more chunk |\n"
              "|---|---|---|---|---|---|---|")
        for n in sizes:
            a, m, b = nuts_per_leapfrog(n)
            print(f"| linear model | {n:.0e} | {a * 1e6:.2f} | {m * 1e6:.2f} | {b * 1e6:.2f} "
                  f"| {a / b:.2f} | {m / b:.2f} |", flush=True)
    if args.memory:
        n = sizes[-1]
        m = step_memory(n)
        print(f"\nMemory at N = {n:.0e} (compiled scan of gradients, temporaries): hoisted "
              f"{m['hoisted'] / 2**20:.2f} MiB, not hoisted {m['not hoisted'] / 2**20:.2f} MiB, "
              f"hoisted arrays {m['hoisted_arrays'] / 2**20:.2f} MiB")
    if args.raissi:
        if args.float64:
            jax.config.update("jax_enable_x64", True)
        adam_steps, lbfgs_steps = (500, 500) if args.quick else (5000, 5000)
        adam_steps, lbfgs_steps = args.adam_steps or adam_steps, args.lbfgs_steps or lbfgs_steps
        pts, u_obs = raissi_data(noise=args.noise)
        print(f"\nRaissi Burgers identification, {len(pts)} points, {100 * args.noise:g} % "
              f"noise, Adam {adam_steps} + L-BFGS {lbfgs_steps}, "
              f"{'float64' if args.float64 else 'float32'}")
        print("| program | λ1 | error λ1 | λ2 | error λ2 | wall s | L-BFGS s | L-BFGS "
              "evaluations | ms / evaluation |\n|---|---|---|---|---|---|---|---|---|")
        per_eval = []
        for name, run in (("jno, one shared optax.lbfgs()", raissi_jno),
                          ("hand-written joint L-BFGS", raissi_hand)):
            r = run(pts, u_obs, adam_steps, lbfgs_steps)
            per_eval.append(r.lbfgs_wall / r.lbfgs_evals)
            print(f"| {name} | {r.lam1:.5f} | {100 * abs(r.lam1 - 1):.3f} % | {r.lam2:.6f} | "
                  f"{100 * abs(r.lam2 - NU) / NU:.3f} % | {r.wall:.1f} | {r.lbfgs_wall:.1f} | "
                  f"{r.lbfgs_evals} | {1e3 * per_eval[-1]:.2f} |", flush=True)
        print(f"L-BFGS time per evaluation, jno/hand: {per_eval[0] / per_eval[1]:.2f}")


if __name__ == "__main__":
    main()
