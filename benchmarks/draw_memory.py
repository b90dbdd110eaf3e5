"""Peak host memory of a long sampling run: draws kept in memory vs streamed to zarr.

One problem, run three ways in fresh subprocesses (so each peak RSS is its own): a network
of about 100k parameters fitted to 32 points, 4 MALA chains, ``warmup`` steps then
``keep`` = 2000 kept draws per chain.

- ``base``: the same solve with ``keep=1`` (the process's footprint without draws: jax,
  the compiled program, the chains' state);
- ``memory``: ``keep`` draws kept in host memory (``K · keep · P · 4`` bytes of draws, plus
  the copy made when the chunks are joined into ``posterior_samples``);
- ``stream``: ``crux.solve(store=...)``: one chunk of ``print_rate`` records in memory at a
  time, every row written to a zarr store.

Prints the peak RSS of each, ``stream - base`` against the bound ``4 · print_rate · K · P · 4``
bytes (about four chunks of records: the running chunk's scan output, the last chunk's records
until they are written, and the chain-major copies zarr makes while writing), and
``memory / stream``. Also checks that the streamed draws equal the in-memory ones (the last
draw of every chain), so the two runs are the same computation.

    python benchmarks/draw_memory.py            # ~2 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

RUN = r"""
import json, resource, sys, time, warnings
import blackjax, equinox as eqx, jax, numpy as np
import jno
warnings.simplefilter("ignore")
mode, store = sys.argv[1], sys.argv[5]
keep, print_rate, hidden = map(int, sys.argv[2:5])
dom = jno.domain(constructor=jno.domain.line(mesh_size=1 / 31))
x, _ = dom.variable("interior")
net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=hidden, num_layers=3, key=jax.random.PRNGKey(0)),
                  name="u")
net.bayesian(blackjax.mala, warmup=100, keep=keep, num_chains=4, step_size=1e-5)
crux = jno.core([(net(x) - jno.np.sin(jno.np.pi * x)).gaussian(std=0.1)], seed=0)
n_params = sum(a.size for a in jax.tree.leaves(eqx.filter(net.module, eqx.is_inexact_array)))
t0 = time.perf_counter()
crux.solve(print_rate=print_rate, store=store if mode == "stream" else None)
wall = time.perf_counter() - t0
last = np.asarray(net.posterior_samples.output_layer.bias[:, -1])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
print(json.dumps({"peak": peak, "params": int(n_params), "wall": wall, "last": last.tolist()}))
"""


def run(mode, keep, print_rate, hidden, store):
    out = subprocess.run(
        [sys.executable, "-c", RUN, mode, str(keep), str(print_rate), str(hidden), store],
        capture_output=True,
        text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=int, default=2000)
    ap.add_argument("--print-rate", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=222)  # 3 hidden layers: ~100k parameters
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "draws.zarr")
        base = run("memory", 1, args.print_rate, args.hidden, store)
        mem = run("memory", args.keep, args.print_rate, args.hidden, store)
        stream = run("stream", args.keep, args.print_rate, args.hidden, store)
    p, k = mem["params"], 4
    mib = 2.0**20
    draws = k * args.keep * p * 4
    bound = 4 * args.print_rate * k * p * 4
    print(f"network parameters P = {p}, chains K = {k}, keep = {args.keep}, "
          f"print_rate = {args.print_rate}")
    print(f"draws K*keep*P*4 B          : {draws / mib:9.1f} MiB")
    print(f"{'run':8s} {'peak RSS MiB':>12s} {'above base':>11s} {'wall s':>7s}")
    for name, r in (("base", base), ("memory", mem), ("stream", stream)):
        print(f"{name:8s} {r['peak'] / mib:12.1f} {(r['peak'] - base['peak']) / mib:11.1f} "
              f"{r['wall']:7.1f}")
    print(f"stream above base {(stream['peak'] - base['peak']) / mib:.1f} MiB <= bound "
          f"4*print_rate*K*P*4 = {bound / mib:.1f} MiB: {stream['peak'] - base['peak'] <= bound}")
    print(f"memory / stream peak: {mem['peak'] / stream['peak']:.2f}")
    print(f"same draws (last draw of every chain): {mem['last'] == stream['last']}")


if __name__ == "__main__":
    main()
