"""Solves under several layouts, run in a subprocess with forced CPU devices (the device count
is fixed before jax is imported): ``python layout_runs.py devices|ensemble OUT`` (one process
with four devices) or
``python layout_runs.py multihost OUT PROCESS PORT CKPT_DIR`` (one of two processes with two
devices each). Writes the draws, losses and parameters as JSON for tests/test_scale_out.py."""

import json
import os
import sys

MODE = sys.argv[1]
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=" + (
    "2" if MODE == "multihost" else "4"
)
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

if MODE == "multihost":
    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except Exception as err:  # a jaxlib built without gloo
        print(f"NO_GLOO: {err}", file=sys.stderr)
        raise SystemExit(77) from None
    jax.distributed.initialize(
        coordinator_address=f"localhost:{sys.argv[4]}",
        num_processes=2,
        process_id=int(sys.argv[3]),
        initialization_timeout=60,
    )

import blackjax  # noqa: E402
import equinox as eqx  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jno  # noqa: E402

SIGMA, PRIOR_SD = 0.1, 10.0  # the likelihood's std and jno's default prior sd


def nuts(first: bool = False, checkpoint=None, **layout):
    """4 NUTS chains on ``y = a sin(pi x) + noise``: adapted draws, or (``first``) the first
    transition from the jittered starts with a fixed step size."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    target = 2.0 * jno.np.sin(jno.np.pi * x) + jno.noise.gaussian(std=SIGMA)
    a = jno.np.parameter((1,), name="a")
    if first:
        a.bayesian(
            blackjax.nuts, warmup=0, keep=1, adapt=False, step_size=0.02,
            inverse_mass_matrix=np.ones(1), num_chains=4, init_jitter=0.5,
        )  # fmt: skip
    else:
        a.bayesian(blackjax.nuts, warmup=100, keep=200, num_chains=4, init_jitter=0.5)
    crux = jno.core(
        [(a * jno.np.sin(jno.np.pi * x) - target).gaussian(std=SIGMA)], seed=3, **layout
    )
    starts = None
    if first and jax.process_count() == 1:  # the jittered starts, before the transition
        crux.solver.engine_for(None, None)
        (pos,) = crux.solver.engine.positions(crux.solver.state)[0].values()
        starts = np.asarray(pos)[:, 0].tolist()
    crux.solve(checkpoint=checkpoint)
    # the exact posterior of a (conjugate Gaussian): from the data jno drew
    s = np.sin(np.pi * dom.points("interior")[:, 0])
    y = np.asarray(crux.eval([target])).reshape(-1)
    precision = s @ s / SIGMA**2 + 1.0 / PRIOR_SD**2
    return {
        "draws": np.asarray(a.posterior_samples)[..., 0].tolist(),
        "exact_mean": float((s @ y / SIGMA**2) / precision),
        "exact_sd": float(precision**-0.5),
        "starts": starts,
    }


def pinn(**layout):
    """Poisson u'' = -pi^2 sin(pi x) with an MLP and Adam, 64 interior points."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=1 / 63))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=16, num_layers=2, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-2))
    u = net(x)
    pde = jno.diff(u, x, order=2) + jno.np.pi**2 * jno.np.sin(jno.np.pi * x)
    crux = jno.core([pde.mse.name("pde"), net(xb).mse.name("bc")], **layout)
    history = crux.solve(60, print_rate=30)
    interior = [r["coords"] for r in crux.solver.state.inputs.values() if len(r["coords"]) == 64]
    leaves = jax.tree.leaves(eqx.filter(net.module, eqx.is_inexact_array))
    return {
        "loss": np.asarray(history.total_loss).tolist(),
        "params": np.concatenate([np.ravel(leaf) for leaf in leaves]).tolist(),
        "spec": [str(axis) for axis in getattr(interior[0].sharding, "spec", ())],
    }


def ensemble(**layout):
    """A deep ensemble of 4 members fitting ``b`` in ``b x = 1.5 x``."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    b = jno.np.parameter((1,), name="b")
    b.ensemble(size=4, optimizer=optax.adam(0.05), prior_weight=0.0)
    crux = jno.core([(b * x - 1.5 * x).mse], seed=1, **layout)
    crux.solve(40, print_rate=20)
    return {"members": np.asarray(b.posterior_samples).ravel().tolist()}


def errors() -> dict:
    """The messages of layouts that cannot run on 4 devices."""
    out = {}
    for name, layout in {
        "vectorized_on_chains": dict(mesh={"chains": 4}, chain_method="vectorized"),
        "indivisible": dict(mesh={"chains": 4}),
        "parallel_indivisible": dict(chain_method="parallel"),
    }.items():
        dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
        x, _ = dom.variable("interior")
        a = jno.np.parameter((1,), name="a")
        chains = 4 if name == "vectorized_on_chains" else 3
        a.bayesian(blackjax.nuts, warmup=10, keep=10, num_chains=chains)
        crux = jno.core([(a * x - x).gaussian(std=0.1)], **layout)
        try:
            crux.solve()
            out[name] = ""
        except ValueError as err:
            out[name] = str(err)
    return out


def main():
    out = sys.argv[2]
    if MODE == "multihost":
        ckpt = os.path.join(sys.argv[5], f"run{jax.process_index()}.ckpt")
        result = {
            "processes": jax.process_count(),
            "devices": len(jax.devices()),
            "local_devices": len(jax.local_devices()),
            "parallel": nuts(checkpoint=ckpt),
            "parallel_again": nuts(),
            "first_parallel": nuts(first=True),
        }
        if jax.process_index() == 0:
            with open(out, "w") as f:
                json.dump(result, f)
        jax.distributed.shutdown()
        return
    import time

    cases = {
        "vectorized": lambda: nuts(chain_method="vectorized"),
        "sequential": lambda: nuts(chain_method="sequential"),
        "parallel": nuts,
        "parallel_again": lambda: nuts(mesh={"chains": 4}),
        "first_vectorized": lambda: nuts(first=True, chain_method="vectorized"),
        "first_sequential": lambda: nuts(first=True, chain_method="sequential"),
        "first_parallel": lambda: nuts(first=True, chain_method="parallel"),
        "pinn_one": pinn,
        "pinn_points": lambda: pinn(mesh={"points": 4}),
        "errors": errors,
    }
    if MODE == "ensemble":
        cases = {
            "ensemble_one": lambda: ensemble(chain_method="vectorized"),
            "ensemble_parallel": lambda: ensemble(mesh={"chains": 4}),
            "ensemble_sequential": lambda: ensemble(chain_method="sequential"),
        }
    result = {"devices": len(jax.devices())}
    for name, case in cases.items():
        t = time.perf_counter()
        result[name] = case()
        print(f"TIME {name} {time.perf_counter() - t:.1f}", file=sys.stderr)
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
