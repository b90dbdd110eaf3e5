"""Checkpoint and resume: a solve killed by SIGTERM resumes to the draws of an uninterrupted
one, bit for bit; corrupt, foreign and half-written checkpoints are refused and never clobber
the last good file."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jno.solve.checkpoint import CheckpointError

# A mixed problem, so every kind of state is in the checkpoint: two NUTS chains over (a, b)
# with window adaptation, and an Adam-trained offset c in a second constraint.
PROBLEM = r"""
import blackjax, jax, numpy as np, optax, jno

def build(seed=4, keep=120):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    target = (3.0 * jno.np.sin(jno.np.pi * x) - 2.0 * jno.np.cos(jno.np.pi * x)
              + jno.noise.gaussian(std=0.1))
    a = jno.np.parameter((1,), name="a")
    b = jno.np.parameter((1,), name="b")
    c = jno.np.parameter((1,), name="c", init=0.0)
    for p in (a, b):
        p.bayesian(blackjax.nuts, warmup=100, keep=keep, num_chains=2, init_jitter=0.3)
    c.optimizer(optax.adam(0.05))
    r = a * jno.np.sin(jno.np.pi * x) + b * jno.np.cos(jno.np.pi * x) - target
    crux = jno.core([r.gaussian(std=0.1), (c - 0.7 * x).mse], seed=seed)
    return crux, (a, b, c)
"""

SCRIPT = (
    PROBLEM
    + r"""
import os, signal, sys
mode, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
crux, (a, b, c) = build()

def preempt(info):
    if info.step >= 160:  # after the third chunk past adaptation: a scheduler's SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)

if mode == "killed":
    crux.solve(print_rate=20, checkpoint=path, checkpoint_every=1, callbacks=[preempt])
    raise SystemExit("the solve should have exited on SIGTERM")
if mode == "resume":
    crux.solve(print_rate=20, checkpoint=path, resume_from=path)
else:
    crux.solve(print_rate=20)
np.savez(out, a=a.posterior_samples, b=b.posterior_samples, c=np.asarray(c.module),
         steps=crux.history.steps, total=crux.history.total_loss,
         step_size=np.asarray(crux.solver.state.blocks[0].tuned["step_size"]))
"""
)


def _python(tmp_path, *args):
    script = tmp_path / "solve.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.slow
def test_sigterm_then_resume_gives_the_uninterrupted_draws(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    killed = _python(tmp_path, "killed", ckpt, tmp_path / "unused.npz")
    assert killed.returncode == 143, killed.stderr[-2000:]
    assert "SIGTERM" in killed.stderr and ckpt.is_file()
    with __import__("zipfile").ZipFile(ckpt) as z:
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["step"] == 160 and manifest["call"] == {
        "start": 0,
        "stop": 220,
        "print_rate": 20,
    }
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    resumed = _python(tmp_path, "resume", ckpt, tmp_path / "resumed.npz")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resumed at step 160" in resumed.stderr
    full = _python(tmp_path, "full", ckpt, tmp_path / "full.npz")
    assert full.returncode == 0, full.stderr[-2000:]
    got, want = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "full.npz")
    assert got["a"].shape == (2, 120, 1)
    for key in ("a", "b", "c", "steps", "total", "step_size"):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def _build(**kw):
    namespace = {}
    exec(PROBLEM, namespace)
    return namespace["build"](**kw)


@pytest.mark.slow
def test_corrupt_foreign_and_half_written_checkpoints(tmp_path, monkeypatch):
    ckpt = tmp_path / "run.ckpt"
    crux, _ = _build()
    crux.solve(140, print_rate=20, checkpoint=ckpt)
    good = ckpt.read_bytes()

    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        _build()[0].solve(print_rate=20, resume_from=truncated)

    with pytest.raises(CheckpointError, match="seed") as err:
        _build(seed=5)[0].solve(print_rate=20, resume_from=ckpt)
    assert "blocks" not in str(err.value)
    with pytest.raises(CheckpointError, match=r"blocks .*keep': 120.*keep': 60"):
        _build(keep=60)[0].solve(print_rate=20, resume_from=ckpt)
    assert ckpt.read_bytes() == good

    # A crash while the next checkpoint is written leaves the last good one and no debris.
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        crux.solve(40, print_rate=20, checkpoint=ckpt)
    monkeypatch.undo()
    assert ckpt.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt", "truncated.ckpt"]


@pytest.mark.slow
def test_keyboard_interrupt_writes_a_checkpoint_that_resumes(tmp_path):
    """Ctrl-C (a callback raising KeyboardInterrupt) keeps what was collected and writes the
    checkpoint; resuming in the same process gives the uninterrupted run's values."""
    ckpt = tmp_path / "run.ckpt"

    def stop(info):
        if info.step >= 120:
            raise KeyboardInterrupt

    crux, (a, b, c) = _build()
    crux.solve(print_rate=20, checkpoint=ckpt, checkpoint_every=100, callbacks=[stop])
    assert crux.solver.step_index == 120 and a.posterior_samples.shape == (2, 20, 1)
    resumed, (ra, rb, rc) = _build()
    resumed.solve(print_rate=20, resume_from=ckpt)
    full, (fa, fb, fc) = _build()
    full.solve(print_rate=20)
    np.testing.assert_array_equal(ra.posterior_samples, fa.posterior_samples)
    np.testing.assert_array_equal(np.asarray(rc.module), np.asarray(fc.module))
    np.testing.assert_array_equal(resumed.history.total_loss, full.history.total_loss)
