# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Long runs: checkpoint, resume, sample until converged, watch, save
#
# The two-coefficient inverse problem of `bayesian_inverse.py`: recover $(A, B)$ in
# $d(x) = A\sin(\pi x) + B\cos(\pi x)$ from 21 noisy observations ($\sigma = 0.1$) with 4 NUTS
# chains. A real B-PINN runs for hours; here the same script shows, in seconds,
#
# 1. a solve that writes a checkpoint and is stopped half-way (as a scheduler's SIGTERM or a
#    Ctrl-C would stop it),
# 2. a fresh process-like restart (a new crux built by the same code) that resumes from the
#    checkpoint and ends with the draws an uninterrupted solve makes, bit for bit,
# 3. sampling until R-hat $\le 1.01$ and bulk ESS $\ge 400$ instead of guessing `keep`,
# 4. a TensorBoard tracker (`pip install tensorboardX`) watching the run from outside,
# 5. the posterior saved to netCDF, loaded back and pushed through an expression.
#
# `JNO_TUTORIAL_SIZE=small` runs every cell with fewer steps (tutorials/README.md); the step
# counts in the text are those of the full size.

# %%
import os
import tempfile
from pathlib import Path

import blackjax
import numpy as np

import jno

SIZE = os.environ.get("JNO_TUTORIAL_SIZE", "full")
if SIZE not in ("full", "small"):
    raise ValueError(f"JNO_TUTORIAL_SIZE must be 'full' or 'small', got {SIZE!r}")
SMALL = SIZE == "small"
WARMUP, KEEP, STOP_AT = (100, 200, 200) if SMALL else (300, 600, 600)
OUT = Path(os.environ.get("JNO_TUTORIAL_OUT", os.environ.get("JNO_OUTPUT_DIR", "outputs")))
OUT.mkdir(parents=True, exist_ok=True)
work = Path(tempfile.mkdtemp(prefix="jno-long-run-"))


def build(keep=KEEP):
    """The same script, up to jno.core: what a resumed job runs again."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    target = (3.14 * jno.np.sin(jno.np.pi * x) - 2.71 * jno.np.cos(jno.np.pi * x)
              + jno.noise.gaussian(std=0.1))
    a = jno.np.parameter((1,), name="a")
    b = jno.np.parameter((1,), name="b")
    for p in (a, b):
        p.bayesian(blackjax.nuts, warmup=WARMUP, keep=keep, num_chains=4, init_jitter=0.5)
    r = a * jno.np.sin(jno.np.pi * x) + b * jno.np.cos(jno.np.pi * x) - target
    return jno.core([r.gaussian(std=0.1)], seed=7), a, b, x


# %% [markdown]
# ## 1. A checkpointed solve, stopped half-way
# `checkpoint=` writes the whole solve state (chain states, adapted step sizes and mass
# matrices, kept draws, history, step index) every `checkpoint_every` chunks of `print_rate`
# steps, at the end, on Ctrl-C and on SIGTERM, atomically. Here a callback stops the run at
# step 600 the way Ctrl-C does.

# %%
ckpt = work / "run.ckpt"


def stop_half_way(info):
    if info.step >= STOP_AT:  # 600 of the 900 steps (full size)
        raise KeyboardInterrupt


crux, a, b, x = build()
crux.solve(print_rate=100, checkpoint=ckpt, checkpoint_every=2, callbacks=[stop_half_way])
print(f"stopped at step {crux.solver.step_index}; checkpoint {ckpt.stat().st_size} bytes")

# %% [markdown]
# ## 2. Resume in a fresh crux
# `resume_from=` checks the checkpoint's fingerprint (constraints, models, settings, seed,
# data) and continues the interrupted call to its end (here `warmup + keep = 900` steps).

# %%
resumed, ra, rb, _ = build()
resumed.solve(print_rate=100, resume_from=ckpt, checkpoint=ckpt)
reference, fa, fb, _ = build()
reference.solve(print_rate=100)
same = np.array_equal(ra.posterior_samples, fa.posterior_samples)
print(f"resumed draws equal the uninterrupted run's: {same}")
assert same

# %% [markdown]
# ## 3. Sample until converged, watched by TensorBoard
# `until=jno.bayesian.converged(rhat=1.01, ess=400)` checks the kept draws after every chunk
# and stops at the first chunk where every model meets both targets, or at `max_epochs`.

# %%
trackers = []
try:
    trackers.append(jno.trackers.TensorBoardTracker(work / "tensorboard"))
except ImportError:
    print("tensorboardX not installed: no tracker")
crux, a, b, x = build(keep=5000)
crux.solve(until=jno.bayesian.converged(rhat=1.01, ess=400), max_epochs=6000, print_rate=100,
           trackers=trackers)
chain = np.asarray(a.posterior_samples)
print(f"stopped at step {crux.solver.step_index}: {chain.shape[1]} draws per chain, "
      f"R-hat {float(np.max(jno.bayesian.rhat(chain))):.4f}, "
      f"ESS {float(np.min(jno.bayesian.ess(chain))):.0f}")

# %% [markdown]
# ## 4. Save, load, evaluate
# `crux.save_posterior` writes an arviz `InferenceData` (netCDF); a crux built by the same
# script loads it back, and `crux.eval` pushes expressions through the loaded draws.

# %%
path = crux.save_posterior(work / "posterior.nc")
later, la, lb, lx = build(keep=5000)
later.load_posterior(path)
u = later.eval([la * jno.np.sin(jno.np.pi * lx) + lb * jno.np.cos(jno.np.pi * lx)])
u_orig = crux.eval([a * jno.np.sin(jno.np.pi * x) + b * jno.np.cos(jno.np.pi * x)])
print(f"posterior mean of A = {float(np.mean(la.posterior_samples)):.3f} (truth 3.14); "
      f"evaluations equal: {np.allclose(u, u_orig)}")


# %% [markdown]
# The history of the converged run (`jno.plot.history`, when matplotlib is installed).

# %%
try:
    import matplotlib
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib not installed: no figure")
else:
    fig = jno.plot.history(crux)
    fig.savefig(OUT / "checkpoint_resume_history.png", dpi=100)
    print(f"saved {OUT / 'checkpoint_resume_history.png'}")
    if "inline" in matplotlib.get_backend():
        plt.show()  # drawn below the cell in Jupyter
    else:
        plt.close(fig)  # a script only saves it
