"""Scale-out of jno solves over devices, side by side with hand-written sharded JAX programs.

Three tables:

1. **Chains.** NUTS chain throughput (draws/s and ESS/s, ESS = arviz bulk ESS, the smallest
   over the parameters) for K chains on D devices: jno (``jno.core(mesh={"chains": D})``,
   ``chain_method="parallel"``; ``"vectorized"`` on one device for D = 1) and a
   hand-written program (``jax.shard_map`` over D devices of a ``vmap`` over K/D chains of
   blackjax NUTS in a ``lax.scan``, with jno's adapted step sizes and mass matrices), and
   the weak-scaling efficiency ``throughput(K, D) / (D * throughput(K/D, 1))``.
2. **PINN points.** Adam step time of a 1D Poisson PINN against the number of collocation
   points sharded over D devices (``mesh={"points": D}``), jno and a hand-written
   ``jax.jit`` program on ``NamedSharding`` inputs, and the strong-scaling efficiency
   ``t(N, 1) / (D * t(N, D))``.
3. **Memory.** XLA's temporary memory of one compiled sampling chunk
   (``compiled.memory_analysis()``) for ``chain_method="sequential"`` and ``"vectorized"``
   against K, for a small Bayesian network (one chain's working set grows with its points).

The model of table 1: ``y = a sin(pi x) + b cos(pi x) + c`` on ``--data`` points, sigma 0.1,
prior N(0, 10^2). Every timed run is compiled first; the best of ``--repeats`` is kept.
On CPU the D devices are forced host devices (``--xla_force_host_platform_device_count``),
which share the machine's cores: the efficiency there measures jno's overhead over the
hand-written program more than real parallel speed. On a GPU machine pass
``--devices`` = the number of GPUs.

    python benchmarks/scaling.py [--devices 4] [--chains 4 16] [--points 1024 4096]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ARGS = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ARGS.add_argument("--devices", type=int, default=4, help="the most devices D (forced on CPU)")
ARGS.add_argument("--chains", type=int, nargs="+", default=[4, 16], help="chain counts K")
ARGS.add_argument("--points", type=int, nargs="+", default=[1024, 8192], help="PINN points")
ARGS.add_argument("--memory-chains", type=int, nargs="+", default=[4, 16, 64])
ARGS.add_argument("--keep", type=int, default=200, help="timed draws per chain")
ARGS.add_argument("--data", type=int, default=1000, help="data points of the NUTS model")
ARGS.add_argument("--steps", type=int, default=50, help="timed PINN steps")
ARGS.add_argument("--repeats", type=int, default=2)
ARGS.add_argument("--cpu", action="store_true", help="force the CPU backend")
OPTS = ARGS.parse_args()
if OPTS.cpu:
    os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={OPTS.devices}"
)

import arviz as az  # noqa: E402
import blackjax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import jno  # noqa: E402

SIGMA, PRIOR_SD = 0.1, 10.0
WARMUP = 200


def best(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (after the caller compiled ``fn``)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def ess(draws: np.ndarray) -> float:
    """The smallest bulk ESS over the parameters of ``(K, N, p)`` draws."""
    return min(float(az.ess(draws[..., j], method="bulk")) for j in range(draws.shape[-1]))


def device_counts() -> list[int]:
    """D = 1, 2, 4, ... up to ``--devices`` and the devices there are."""
    most = min(OPTS.devices, len(jax.devices()))
    return [d for d in (1, 2, 4, 8, 16) if d <= most]


# ---------------------------------------------------------------------- chains
def chains_problem(k: int, d: int):
    """The jno crux (adapted, compiled) and its params and data for K chains on D devices."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=1.0 / (OPTS.data - 1)))
    x, _ = dom.variable("interior")
    s, c = jno.np.sin(jno.np.pi * x), jno.np.cos(jno.np.pi * x)
    target = 2.0 * s - 1.0 * c + 0.5 + jno.noise.gaussian(std=SIGMA)
    theta = jno.np.parameter((3,), name="theta")
    theta.bayesian(blackjax.nuts, warmup=WARMUP, keep=OPTS.keep, num_chains=k, init_jitter=0.5)
    r = theta[0] * s + theta[1] * c + theta[2] - target
    layout = dict(chain_method="vectorized") if d == 1 else dict(mesh={"chains": d})
    crux = jno.core([r.gaussian(std=SIGMA)], seed=1, **layout)
    crux.solve(WARMUP + OPTS.keep, print_rate=OPTS.keep)  # adapt and compile
    pts = dom.points("interior")[:, 0]
    y = np.asarray(crux.eval([target])).reshape(-1)
    return crux, theta, pts, y


def hand_chains(k: int, d: int, crux, pts, y):
    """The same sampler by hand: shard_map over D devices of vmapped blackjax NUTS."""
    tuned = crux.solver.state.blocks[0].tuned
    step_size = jnp.asarray(tuned["step_size"])
    imm = jnp.asarray(tuned["inverse_mass_matrix"])
    (start,) = crux.solver.engine.positions(crux.solver.state)[0].values()
    xs, ys = jnp.asarray(pts), jnp.asarray(y)

    def logdensity(theta):  # the features recomputed at every call, as jno's graph does
        r = theta[0] * jnp.sin(jnp.pi * xs) + theta[1] * jnp.cos(jnp.pi * xs) + theta[2] - ys
        return -0.5 * jnp.sum(r**2) / SIGMA**2 - 0.5 * jnp.sum(theta**2) / PRIOR_SD**2

    def one(key, pos, eps, m):
        kernel = blackjax.nuts(logdensity, eps, m)

        def body(state, key):
            state, _ = kernel.step(key, state)
            return state, state.position

        return jax.lax.scan(body, kernel.init(pos), jax.random.split(key, OPTS.keep))[1]

    mesh = Mesh(np.array(jax.devices()[:d]), ("chains",))
    run = jax.jit(
        jax.shard_map(
            jax.vmap(one), mesh=mesh, in_specs=P("chains"), out_specs=P("chains"),
            check_vma=False,
        )
    )  # fmt: skip
    keys = jax.random.split(jax.random.PRNGKey(7), k)
    args = (keys, jnp.asarray(start), step_size, imm)
    jax.block_until_ready(run(*args))
    draws = []
    seconds = best(lambda: draws.append(jax.block_until_ready(run(*args))), OPTS.repeats)
    return seconds, np.asarray(draws[-1])


def measure_chains(k: int, d: int) -> dict:
    """Throughputs of jno and the hand-written program for K chains on D devices."""
    crux, theta, pts, y = chains_problem(k, d)
    seconds = best(lambda: crux.solve(OPTS.keep, print_rate=OPTS.keep), OPTS.repeats)
    draws = np.asarray(theta.posterior_samples)
    hand_s, hand_draws = hand_chains(k, d, crux, pts, y)
    n = k * OPTS.keep
    return {
        "jno": n / seconds,
        "jno_ess": ess(draws) / seconds,
        "hand": n / hand_s,
        "hand_ess": ess(hand_draws) / hand_s,
    }


def chains_table():
    """Every K on every D, and the efficiency against K/D chains on one device (measured
    too when K/D is not in ``--chains``; ESS needs more than one chain, so K/D >= 2)."""
    runs: dict = {}

    def run(k, d):
        if (k, d) not in runs:
            runs[k, d] = measure_chains(k, d)
        return runs[k, d]

    print("\n## Chains: NUTS draws/s and ESS/s (K chains, D devices)")
    print(
        "| K | D | jno draws/s | jno ESS/s | hand draws/s | hand ESS/s | jno/hand | "
        "jno eff. | hand eff. |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for k in OPTS.chains:
        for d in device_counts():
            if k % d or k // d < 2:
                continue
            r = run(k, d)
            base = run(k // d, 1)
            eff = [r[v] / (d * base[v]) for v in ("jno", "hand")]
            print(
                f"| {k} | {d} | {r['jno']:.0f} | {r['jno_ess']:.0f} | {r['hand']:.0f} | "
                f"{r['hand_ess']:.0f} | {r['jno'] / r['hand']:.2f} | {eff[0]:.2f} | "
                f"{eff[1]:.2f} |",
                flush=True,
            )


# ---------------------------------------------------------------------- PINN points
def pinn_problem(n: int, d: int):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=1.0 / (n - 1)))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-3))
    u = net(x)
    pde = jno.diff(u, x, order=2) + jno.np.pi**2 * jno.np.sin(jno.np.pi * x)
    mesh = None if d == 1 else {"points": d}
    crux = jno.core([pde.mse, net(xb).mse], mesh=mesh)
    crux.solve(OPTS.steps, print_rate=OPTS.steps)  # compile
    return crux, dom, net


def hand_pinn(n: int, d: int, dom, net):
    """The same PINN step by hand: jit on points placed with a NamedSharding."""
    params, static = eqx.partition(net.module, eqx.is_inexact_array)
    mesh = Mesh(np.array(jax.devices()[:d]), ("points",))
    xs = jax.device_put(jnp.asarray(dom.points("interior")), NamedSharding(mesh, P("points")))
    xb = jnp.asarray(dom.points("boundary"))
    tx = optax.adam(1e-3)

    def u(p, x):
        return eqx.combine(p, static)(x)[0]

    def loss(p, xs, xb):
        def residual(x):
            uxx = jax.jvp(lambda z: jax.jvp(lambda w: u(p, w), (z,), (jnp.ones(1),))[1],
                          (x,), (jnp.ones(1),))[1]  # fmt: skip
            return uxx + jnp.pi**2 * jnp.sin(jnp.pi * x[0])

        return jnp.mean(jax.vmap(residual)(xs) ** 2) + jnp.mean(
            jax.vmap(lambda x: u(p, x))(xb) ** 2
        )

    def chunk(p, opt, xs, xb):
        def body(carry, _):
            p, opt = carry
            g = jax.grad(loss)(p, xs, xb)
            updates, opt = tx.update(g, opt, p)
            return (optax.apply_updates(p, updates), opt), None

        return jax.lax.scan(body, (p, opt), None, length=OPTS.steps)[0]

    run = jax.jit(chunk)
    args = (params, tx.init(params), xs, xb)
    jax.block_until_ready(run(*args))
    return best(lambda: jax.block_until_ready(run(*args)), OPTS.repeats)


def pinn_table():
    devices = device_counts()
    print("\n## PINN: Adam step time (ms) against points sharded over D devices")
    print("| points | D | jno ms/step | hand ms/step | jno/hand | jno eff. | hand eff. |")
    print("|---|---|---|---|---|---|---|")
    for n in OPTS.points:
        base = None
        for d in devices:
            if n % d:
                continue
            crux, dom, net = pinn_problem(n, d)
            jno_s = best(lambda: crux.solve(OPTS.steps, print_rate=OPTS.steps), OPTS.repeats)
            hand_s = hand_pinn(n, d, dom, net)
            jno_ms, hand_ms = 1e3 * jno_s / OPTS.steps, 1e3 * hand_s / OPTS.steps
            if base is None:
                base = (jno_ms, hand_ms)
            print(
                f"| {n} | {d} | {jno_ms:.3f} | {hand_ms:.3f} | {jno_ms / hand_ms:.2f} | "
                f"{base[0] / (d * jno_ms):.2f} | {base[1] / (d * hand_ms):.2f} |",
                flush=True,
            )


# ---------------------------------------------------------------------- memory
def chunk_memory(k: int, method: str) -> int:
    """Temporary bytes of the compiled sampling chunk of a small Bayesian MLP."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=1.0 / 511))
    x, _ = dom.variable("interior")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=32, num_layers=2, key=jax.random.PRNGKey(0)))
    net.bayesian(
        blackjax.hmc, warmup=0, keep=10, adapt=False, step_size=1e-3, num_integration_steps=8,
        inverse_mass_matrix=np.ones(sum(a.size for a in jax.tree.leaves(
            eqx.filter(net.module, eqx.is_inexact_array)))), num_chains=k,
    )  # fmt: skip
    crux = jno.core([(net(x) - jno.np.sin(jno.np.pi * x)).gaussian(std=SIGMA)], chain_method=method)
    solver = crux.solver
    engine = solver.engine_for(None, None)
    fn = jax.jit(engine.run_chunk, static_argnames=("length", "stride", "with_losses", "partial"))
    lowered = fn.lower(
        solver.state, jnp.asarray(10, jnp.int32), length=10, stride=1, with_losses=False,
        partial=False,
    )  # fmt: skip
    return int(lowered.compile().memory_analysis().temp_size_in_bytes)


def memory_table():
    print("\n## Memory: temporary MiB of one compiled 10-draw HMC chunk (MLP 1-32-32-1, 512 pts)")
    print("| K | vectorized MiB | sequential MiB | vectorized/sequential |")
    print("|---|---|---|---|")
    for k in OPTS.memory_chains:
        vec, seq = chunk_memory(k, "vectorized"), chunk_memory(k, "sequential")
        print(
            f"| {k} | {vec / 2**20:.2f} | {seq / 2**20:.2f} | {vec / max(seq, 1):.1f} |", flush=True
        )


def main():
    import logging

    logging.getLogger("jno").setLevel(logging.WARNING)
    dev = jax.devices()
    print(
        f"# {len(dev)} x {dev[0].device_kind} ({dev[0].platform}), jax {jax.__version__}, "
        f"load {os.getloadavg()[0]:.1f}; argv: {' '.join(sys.argv[1:])}"
    )
    t = time.perf_counter()
    chains_table()
    pinn_table()
    memory_table()
    print(f"\ntotal {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
