"""jno's NUTS vs a hand-written blackjax program (and NumPyro) on the guide's quick example.

The problem: recover (A, B) in d(x) = A sin(πx) + B cos(πx) from 101 noisy points (σ = 0.1)
with the guide's objective, the ``.mse`` log-density ``-mean(r²) + log N(A; 0, 10²) +
log N(B; 0, 10²)``. Every program runs NUTS with blackjax-style window adaptation for
``warmup`` steps (initial step size 1e-2, identity mass matrix) and then ``keep`` draws,
recording the position and the is_divergent / acceptance_rate / energy diagnostics. All
three see the same data: ``crux.eval([target])`` of the jno problem.

Measured, in one process, interleaved round by round, medians over rounds:

* **total**: a fresh problem each round, construction + compilation + warm-up + sampling +
  moving the draws to the host (jno: ``jno.core(...)`` and ``crux.solve()``; hand-written:
  ``jax.jit`` of ``window_adaptation.run`` and of a ``lax.scan`` over ``nuts.step``; NumPyro:
  ``MCMC(NUTS(model)).run``);
* **sampling** (steady state): ``keep`` more draws from the adapted state with nothing to
  compile (jno: a second ``crux.solve(keep)``; hand-written: a second call of the compiled
  sampling scan; NumPyro: ``run`` again from ``post_warmup_state``);
* **chains**: jno with ``num_chains = K`` for K = 1, 4, 16 (total and sampling time) relative
  to K = 1.

Each program's NUTS builds trees of its own sizes (the adapted step sizes differ a little), so
the sampling table also gives microseconds per gradient evaluation.

Run: python benchmarks/bayes_overhead.py [--rounds 5] [--sampling-rounds 15]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

import jno

WARMUP, KEEP, SIGMA, PRIOR_SIGMA = 500, 1000, 0.1, 10.0
CHUNK = 100  # jno's default print_rate: draws per compiled chunk
LOG_NORM = -np.log(PRIOR_SIGMA) - 0.5 * np.log(2 * np.pi)


def now():
    """(wall-clock seconds, CPU seconds of this process, all threads)."""
    return np.array([time.perf_counter(), time.process_time()])


# ------------------------------------------------------------------------------------ jno
def jno_problem(num_chains=None, seed=0):
    """The guide's quick example (``num_chains=None``: its single-chain layout)."""
    π = jno.np.pi
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))
    x, _ = dom.variable("interior")
    target = 3.14 * jno.np.sin(π * x) - 2.71 * jno.np.cos(π * x) + jno.noise.gaussian(std=SIGMA)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0), 2)
    a = jno.np.parameter((1,), key=k1, name="a")
    b = jno.np.parameter((1,), key=k2, name="b")
    for p in (a, b):
        p.bayesian(blackjax.nuts, step_size=1e-2, warmup=WARMUP, keep=KEEP, num_chains=num_chains)
    residual = a * jno.np.sin(π * x) + b * jno.np.cos(π * x) - target
    crux = jno.core([residual.mse], seed=seed)
    return crux, target, dom, (a, b)


def jno_total(num_chains=None):
    t0 = now()
    crux, target, dom, params = jno_problem(num_chains)
    crux.solve(progress=False)
    jax.block_until_ready(params[0].posterior_samples)
    return now() - t0, crux, params


def jno_sample(crux, params, print_rate=None):
    g0 = crux.solver.grad_evals
    t0 = now()
    crux.solve(KEEP, progress=False, print_rate=print_rate)
    jax.block_until_ready(params[0].posterior_samples)
    return now() - t0, crux.solver.grad_evals - g0


# ----------------------------------------------------------------------- hand-written
def hand_program(xs, data):
    """blackjax only: the same log-density, window adaptation, then a scan over nuts.step."""
    phi_s, phi_c = jnp.sin(jnp.pi * xs), jnp.cos(jnp.pi * xs)
    data = jnp.asarray(data)

    def logdensity(pos):
        r = pos["a"][0] * phi_s + pos["b"][0] * phi_c - data
        prior = sum(jnp.sum(LOG_NORM - 0.5 * (v / PRIOR_SIGMA) ** 2) for v in jax.tree.leaves(pos))
        return -jnp.mean(r**2) + prior

    @jax.jit
    def adapt(key, position):
        wa = blackjax.window_adaptation(blackjax.nuts, logdensity, initial_step_size=1e-2)
        (state, tuned), _ = wa.run(key, position, num_steps=WARMUP)
        return state, tuned

    def make_sample(length):
        @jax.jit
        def sample(key, state, tuned):
            kernel = blackjax.nuts(logdensity, **tuned)

            def body(st, k):
                st, info = kernel.step(k, st)
                rec = (
                    st.position,
                    info.is_divergent,
                    info.acceptance_rate,
                    info.energy,
                    info.num_integration_steps,
                )
                return st, rec

            return jax.lax.scan(body, state, jax.random.split(key, length))

        return sample

    return adapt, make_sample(KEEP), make_sample(CHUNK)


def hand_total(xs, data, seed=0):
    t0 = now()
    adapt, sample, chunk = hand_program(xs, data)
    key = jax.random.PRNGKey(seed)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0), 2)
    position = {"a": jax.random.normal(k1, (1,)), "b": jax.random.normal(k2, (1,))}
    state, tuned = adapt(jax.random.fold_in(key, 1), position)
    state, rec = sample(jax.random.fold_in(key, 2), state, tuned)
    rec = jax.tree.map(np.asarray, rec)
    return now() - t0, (sample, chunk, state, tuned)


def hand_sample(handle, i, chunked=False):
    """``KEEP`` draws from the current state: one scan, or ``KEEP // CHUNK`` scans of
    ``CHUNK`` draws with the draws moved to the host after each (as jno's chunks do)."""
    sample, chunk, state, tuned = handle
    key = jax.random.fold_in(jax.random.PRNGKey(1), i)
    t0 = now()
    if chunked:
        grads = 0
        for j in range(KEEP // CHUNK):
            state, rec = chunk(jax.random.fold_in(key, j), state, tuned)
            rec = jax.tree.map(np.asarray, rec)
            grads += int(rec[-1].sum())
    else:
        state, rec = sample(key, state, tuned)
        rec = jax.tree.map(np.asarray, rec)
        grads = int(rec[-1].sum())
    return now() - t0, grads, (sample, chunk, state, tuned)


# ---------------------------------------------------------------------------- NumPyro
def numpyro_model(xs):
    import numpyro
    import numpyro.distributions as dist

    phi_s, phi_c = jnp.sin(jnp.pi * xs), jnp.cos(jnp.pi * xs)

    def model(d):
        a = numpyro.sample("a", dist.Normal(0.0, PRIOR_SIGMA).expand([1]).to_event(1))
        b = numpyro.sample("b", dist.Normal(0.0, PRIOR_SIGMA).expand([1]).to_event(1))
        r = a[0] * phi_s + b[0] * phi_c - d
        numpyro.factor("loglik", -jnp.mean(r**2))

    return model


def numpyro_total(xs, data, seed=0):
    """``MCMC(NUTS(model)).run``: NumPyro's user-facing path."""
    from numpyro.infer import MCMC, NUTS

    t0 = now()
    mcmc = MCMC(
        NUTS(numpyro_model(xs), step_size=1e-2),
        num_warmup=WARMUP,
        num_samples=KEEP,
        num_chains=1,
        progress_bar=False,
    )
    mcmc.run(
        jax.random.PRNGKey(seed),
        jnp.asarray(data),
        extra_fields=("diverging", "accept_prob", "energy", "num_steps"),
    )
    jax.tree.map(np.asarray, (mcmc.get_samples(), mcmc.get_extra_fields()))
    return now() - t0, (mcmc, jnp.asarray(data))


def numpyro_rerun(handle, i):
    """A second ``MCMC.run`` from ``post_warmup_state`` (NumPyro compiles it again)."""
    mcmc, data = handle
    mcmc.post_warmup_state = mcmc.last_state
    t0 = now()
    mcmc.run(
        mcmc.post_warmup_state.rng_key,
        data,
        extra_fields=("diverging", "accept_prob", "energy", "num_steps"),
    )
    fields = jax.tree.map(np.asarray, mcmc.get_extra_fields())
    jax.tree.map(np.asarray, mcmc.get_samples())
    return now() - t0, int(fields["num_steps"].sum())


def numpyro_kernel(xs, data, seed=0):
    """NumPyro's NUTS kernel (``numpyro.infer.hmc.hmc``) in compiled scans: warm-up
    (NumPyro adapts inside its first ``num_warmup`` transitions), then a sampling scan that
    can be called again, like the hand-written program."""
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    info = initialize_model(
        jax.random.PRNGKey(seed), numpyro_model(xs), model_args=(jnp.asarray(data),)
    )
    init_kernel, sample_kernel = hmc(info.potential_fn, algo="NUTS")
    state = init_kernel(
        info.param_info, num_warmup=WARMUP, step_size=1e-2, rng_key=jax.random.PRNGKey(seed)
    )

    def run(length):
        def body(st, _):
            st = sample_kernel(st)
            return st, (st.z, st.diverging, st.accept_prob, st.energy, st.num_steps)

        return jax.jit(lambda st: jax.lax.scan(body, st, None, length=length))

    state, _ = run(WARMUP)(state)
    return run(KEEP), state


def numpyro_kernel_sample(handle):
    sample, state = handle[0]
    t0 = now()
    state, rec = sample(state)
    rec = jax.tree.map(np.asarray, rec)
    handle[0] = (sample, state)
    return now() - t0, int(rec[-1].sum())


# ------------------------------------------------------------------------------- main
def stats(times):
    """``(median wall, min wall, median cpu)`` of a list of ``now()`` differences."""
    t = np.asarray(times)
    return np.array([np.median(t[:, 0]), np.min(t[:, 0]), np.median(t[:, 1])])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="fresh-problem rounds (total)")
    parser.add_argument("--sampling-rounds", type=int, default=25)
    parser.add_argument("--chain-rounds", type=int, default=3)
    parser.add_argument("--chains", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--no-numpyro", action="store_true")
    args = parser.parse_args()
    logging.getLogger("jno").setLevel(logging.WARNING)
    try:
        import numpyro  # noqa: F401

        have_numpyro = not args.no_numpyro
    except ImportError:
        have_numpyro = False

    crux, target, dom, _ = jno_problem()
    xs = jnp.asarray(dom.points("interior")[:, 0])
    data = np.asarray(crux.eval([target])[:, 0])
    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, {platform.system()}; jax "
        f"{jax.__version__} ({jax.default_backend()}), blackjax {blackjax.__version__}; "
        f"load average at start {tuple(round(x, 2) for x in os.getloadavg())}"
    )
    print(f"problem: 101 points, 2 parameters, NUTS, warmup={WARMUP}, keep={KEEP}")
    print(
        "columns: wall = median wall-clock, best = fastest round, cpu = median CPU time of "
        "this process\n"
    )

    # ---- total time, fresh problems, interleaved (order rotated each round)
    programs = ["jno", "hand"] + (["numpyro"] if have_numpyro else [])
    totals = {p: [] for p in programs}
    handles = {}
    for r in range(args.rounds):
        for p in programs[r % len(programs) :] + programs[: r % len(programs)]:
            if p == "jno":
                t, c, prm = jno_total()
                handles["jno"] = (c, prm)
            elif p == "hand":
                t, handles["hand"] = hand_total(xs, data)
            else:
                t, handles["numpyro"] = numpyro_total(xs, data)
            totals[p].append(t)

    # ---- steady-state sampling from the last round's adapted states, interleaved. Each
    # sampler runs once untimed first (NumPyro compiles its sampling-only program on the
    # first run from post_warmup_state).
    samplers = {
        "jno": lambda i: jno_sample(*handles["jno"]),
        f"jno, print_rate={KEEP}": lambda i: jno_sample(*handles["jno"], print_rate=KEEP),
        "hand": lambda i: hand_step(i, chunked=False),
        f"hand, {KEEP // CHUNK} x {CHUNK}-draw scans": lambda i: hand_step(i, chunked=True),
    }

    def hand_step(i, chunked):
        t, g, handles["hand"] = hand_sample(handles["hand"], i, chunked=chunked)
        return t, g

    if have_numpyro:
        kernel_handle = [numpyro_kernel(xs, data)]
        samplers["numpyro, MCMC.run again"] = lambda i: numpyro_rerun(handles["numpyro"], i)
        samplers["numpyro kernel, compiled scan"] = lambda i: numpyro_kernel_sample(kernel_handle)
    samp = {p: [] for p in samplers}
    grads = {p: [] for p in samplers}
    for p, fn in samplers.items():
        if not p.endswith("run again"):
            fn(10**6)  # untimed warm-up call
    names = list(samplers)
    for i in range(args.sampling_rounds):
        for p in names[i % len(names) :] + names[: i % len(names)]:
            if p.endswith("run again") and i >= 3:
                continue  # it recompiles each time (seconds): three rounds are enough
            t, g = samplers[p](i)
            samp[p].append(t)
            grads[p].append(g)

    print(
        f"total time: a fresh problem (build + compile + warm-up + {KEEP} draws), "
        f"{args.rounds} interleaved rounds"
    )
    print("| program | wall s | best s | cpu s | wall / hand | best / hand | cpu / hand |")
    print("|---|---|---|---|---|---|---|")
    ref = stats(totals["hand"])
    for p in programs:
        st = stats(totals[p])
        r = st / ref
        print(
            f"| {p} | {st[0]:.2f} | {st[1]:.2f} | {st[2]:.2f} | {r[0]:.3f} | {r[1]:.3f} | "
            f"{r[2]:.3f} |"
        )

    print(
        f"\nsampling time: {KEEP} more draws from the adapted state, nothing to compile, "
        f"{args.sampling_rounds} interleaved rounds (jno's default print_rate is {CHUNK}: "
        f"{KEEP // CHUNK} compiled chunks)"
    )
    print(
        "| program | wall ms | best ms | cpu ms | wall / hand | best / hand | cpu / hand | "
        "gradients per draw | cpu per gradient / hand |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ref = stats(samp["hand"])
    ref_grad = np.median(np.asarray(samp["hand"])[:, 1] / np.asarray(grads["hand"]))
    for p in samplers:
        st = stats(samp[p])
        r = st / ref
        per_grad = np.median(np.asarray(samp[p])[:, 1] / np.asarray(grads[p]))
        print(
            f"| {p} | {1e3 * st[0]:.1f} | {1e3 * st[1]:.1f} | {1e3 * st[2]:.1f} | "
            f"{r[0]:.3f} | {r[1]:.3f} | {r[2]:.3f} | {np.median(grads[p]) / KEEP:.2f} | "
            f"{per_grad / ref_grad:.3f} |"
        )

    # ---- chains (jno), interleaved over K
    ks = args.chains
    ctot = {k: [] for k in ks}
    csamp = {k: [] for k in ks}
    for r in range(args.chain_rounds):
        for k in ks[r % len(ks) :] + ks[: r % len(ks)]:
            t, c, prm = jno_total(num_chains=k)
            ctot[k].append(t)
            for _ in range(3):
                csamp[k].append(jno_sample(c, prm)[0])
    print(
        f"\nchains (jno, num_chains=K, vmapped): total over {args.chain_rounds} rounds, "
        f"sampling ({KEEP} draws per chain) over {3 * args.chain_rounds}"
    )
    print(
        "| K | total wall s | total cpu s | total / K=1 (wall, cpu) | sampling wall ms | "
        "sampling cpu ms | sampling / K=1 (wall, cpu) | per chain / K=1 (wall) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    t1, s1 = stats(ctot[ks[0]]), stats(csamp[ks[0]])
    for k in ks:
        tt, ss = stats(ctot[k]), stats(csamp[k])
        print(
            f"| {k} | {tt[0]:.2f} | {tt[2]:.2f} | {tt[0] / t1[0]:.2f}, {tt[2] / t1[2]:.2f} | "
            f"{1e3 * ss[0]:.1f} | {1e3 * ss[2]:.1f} | {ss[0] / s1[0]:.2f}, "
            f"{ss[2] / s1[2]:.2f} | {ss[0] / s1[0] / k:.2f} |"
        )
    print(f"\nload average at end {tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
