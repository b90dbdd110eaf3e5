"""Checkpoints of a solve: the whole solve state on disk, written atomically, read back exactly.

A checkpoint is one zip archive (no pickle anywhere) with three entries:

``manifest.json``
    the format tag, the step index, the solve call in progress (its start step and its stop
    step), whether adaptation ran, the layout of the arrays below, and the problem's
    :func:`fingerprint`;
``state.npz``
    every array of the :class:`~jno.solve.state.SolveState` (parameters, optax and kernel
    states, adapted step sizes and mass matrices, the inputs), named by its canonical path;
``arrays.npz``
    the draws and diagnostics kept so far (per block) and the history (steps, losses, metrics).
    Draws streamed to a zarr store (``solve(store=...)``) stay there: the manifest records the
    store's path and how many rows of each block were written, and resuming writes after them.

Inside a process, models, point sets and noise leaves are keyed by creation counters
(``m12``, ``p3``, ``n5``) that differ between a script and a notebook re-run; the checkpoint
names them by their place in the problem instead (``model0``, ``points0``, ``noise0``), and
reads every array back by that name into the state of a crux built by the same script.

Writing goes to a temporary file in the same folder, flushed to disk, then renamed over the
target (``os.replace``): a crash mid-write leaves the last good checkpoint as it was. The keys of
every step derive from the seed and the step index (:mod:`.streams`) and the state is stored
bit for bit, so a resumed solve makes the draws the uninterrupted one makes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from ..lower.evaluate import model_key

FORMAT = "jno-checkpoint/1"


class Snapshot(NamedTuple):
    """What a checkpoint is written from and checked against (built by
    ``Solver.snapshot``).

    Attributes:
        program: the lowered constraints (names, data, models).
        streams: the key streams of the solve.
        blocks: the plan's blocks.
        state: the :class:`~jno.solve.state.SolveState` (this process's view).
        gather: ``() -> state`` readable on this process (a collective with several).
        positions: every block's position (the layout of a kept draw).
        adapted: whether window adaptation has run.
        recorder: the kept draws (:class:`~jno.solve.results.Recorder`).
        history: the :class:`~jno.solve.history.History`.
    """

    program: Any
    streams: Any
    blocks: list
    state: Any
    gather: Callable[[], Any]
    positions: list
    adapted: bool
    recorder: Any
    history: Any


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: unreadable, or written by another problem."""


class Call(NamedTuple):
    """The solve call a checkpoint was written in: it resumes to ``stop``."""

    start: int
    stop: int
    print_rate: int


# ---------------------------------------------------------------------- fingerprint
def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


_COUNTER_KEY = re.compile(r"^([mpn])(\d+)(\..*)?$")


def canonical_names(program) -> dict[str, str]:
    """``{creation-counter key: place in the problem}`` for models, point sets and noise."""
    names = {model_key(m): f"model{i}" for i, m in enumerate(program.models)}
    for j, pk in enumerate(program.plan.pointsets):
        names[pk] = f"points{j}"
    noises = [nk for pk in program.plan.pointsets for nk in program.inputs[pk]["noise"]]
    names.update({nk: f"noise{k}" for k, nk in enumerate(noises)})
    return names


def _rename(key, names: dict[str, str]) -> str:
    key = str(key)
    match = _COUNTER_KEY.match(key)
    if match and match.group(1) + match.group(2) in names:
        return names[match.group(1) + match.group(2)] + (match.group(3) or "")
    return key


def named_leaves(tree, names: dict[str, str]) -> tuple[list[str], list, jax.tree_util.PyTreeDef]:
    """The leaves of ``tree`` with their canonical paths, and its structure."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = []
    for path, _ in leaves:
        parts = []
        for entry in path:
            if isinstance(entry, jax.tree_util.DictKey):
                parts.append(f"[{_rename(entry.key, names)}]")
            else:
                parts.append(jax.tree_util.keystr((entry,)))
        paths.append("".join(parts))
    return paths, [leaf for _, leaf in leaves], treedef


def _by_name(tree, names) -> list:
    paths, leaves, _ = named_leaves(tree, names)
    return [leaf for _, leaf in sorted(zip(paths, leaves), key=lambda pl: pl[0])]


def _layout(tree, names) -> list[str]:
    paths, leaves, _ = named_leaves(tree, names)
    return sorted(
        f"{p}:{np.dtype(leaf.dtype).str}{list(np.shape(leaf))}" for p, leaf in zip(paths, leaves)
    )


def _settings(blk) -> str:
    s = blk.settings
    if s is None:
        return blk.family
    fields = {
        k: getattr(s, k)
        for k in ("warmup", "keep", "thin", "num_chains", "adapt", "init_jitter")
        if hasattr(s, k)
    }
    name = getattr(s, "name", type(s).__name__)
    kwargs = sorted((k, repr(v)) for k, v in getattr(s, "kernel_kwargs", {}).items())
    return f"{blk.family}:{name} {fields} {kwargs}"


def _model(m) -> str:
    """A model as the fingerprint names it (with its constraint: the state holds ``u``)."""
    where = getattr(m, "where", repr(m))
    constraint = getattr(m, "constraint", None)
    return where if constraint is None else f"{where} constraint={constraint!r}"


def fingerprint(snap: Snapshot, batch_size, substeps) -> dict[str, Any]:
    """What identifies the problem a checkpoint belongs to, field by field (readable, so a
    mismatch can say what differs): the seed's key streams, the constraints, the models and
    their shapes, the blocks and their settings, the attached data, the state's layout and the
    solve arguments that change the step."""
    program = snap.program
    names = canonical_names(program)
    return {
        "seed (key streams)": _digest(jax.tree.leaves(snap.streams)),
        "constraints": [f"{n}: {c}" for n, c in zip(program.names, program.constraints)],
        "models": [_model(m) for m in program.models],
        "blocks": [f"{blk.label} {_settings(blk)}" for blk in snap.blocks],
        "data and points": _digest(_by_name(program.inputs, names)),
        "state layout": _layout(snap.state, names),
        "batch_size": batch_size,
        "substeps": None if substeps is None else len(substeps),
    }


def _differences(saved: dict, now: dict) -> list[str]:
    out = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if a != b:
            if isinstance(a, list) and isinstance(b, list):
                diff = [f"{x!r} -> {y!r}" for x, y in zip(a, b) if x != y][:3]
                if len(a) != len(b):
                    diff.append(f"{len(a)} entries -> {len(b)}")
                out.append(f"{key} ({'; '.join(diff)})")
            else:
                out.append(f"{key} ({a!r} -> {b!r})")
    return out


# ---------------------------------------------------------------------- write
def _arrays(snap: Snapshot, names) -> tuple[dict[str, np.ndarray], dict]:
    arrays: dict[str, np.ndarray] = {}
    layout: dict[str, Any] = {"blocks": {}, "metrics": []}
    rec = snap.recorder
    if rec.store is not None:
        layout["stream"] = {
            "path": str(rec.store.path),
            "totals": rec.stream_totals(),
        }
    for b in range(len(rec.blocks)):
        if not rec.count(b):
            continue
        diag = rec.kept_diag(b)
        if rec.store is None:
            draws, _ = rec.kept(b)
            for path, leaf in zip(*named_leaves(draws, names)[:2]):
                arrays[f"draws/{b}/{path}"] = np.asarray(leaf)
        for name, value in diag.items():
            arrays[f"diag/{b}/{name}"] = np.asarray(value)
        layout["blocks"][str(b)] = sorted(diag)
    hist = snap.history
    arrays["history/steps"] = np.asarray(hist.steps)
    losses = hist.losses
    arrays["history/losses"] = np.stack([losses[n] for n in hist.names], axis=1)
    for i, (name, (steps, values)) in enumerate(hist.metrics.items()):
        arrays[f"metric/{i}/steps"] = steps
        arrays[f"metric/{i}/values"] = values
        layout["metrics"].append(name)
    layout["wall_time"] = hist.wall_time
    return arrays, layout


def save(path, snap: Snapshot, call: Call, batch_size, substeps) -> Path:
    """Write the solve of ``snap`` (state, kept draws, history) to ``path``, atomically; with
    several processes every process calls it (the state is gathered) and process 0 writes."""
    path = Path(path)
    names = canonical_names(snap.program)
    arrays, layout = _arrays(snap, names)
    manifest = {
        "format": FORMAT,
        "step": int(snap.state.step),
        "call": call._asdict(),
        "adapted": bool(snap.adapted),
        "layout": layout,
        "fingerprint": fingerprint(snap, batch_size, substeps),
    }
    state = io.BytesIO()
    paths, leaves, _ = named_leaves(jax.device_get(snap.gather()), names)
    if jax.process_index() != 0:
        return path  # one writer: process 0 (every process took part in the gather)
    np.savez(state, **{p: np.asarray(leaf) for p, leaf in zip(paths, leaves)})
    table = io.BytesIO()
    np.savez(table, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
                z.writestr("manifest.json", json.dumps(manifest, indent=1))
                z.writestr("state.npz", state.getvalue())
                z.writestr("arrays.npz", table.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# ---------------------------------------------------------------------- read
class SavedHistory(NamedTuple):
    """A checkpoint's history: ``steps (T,)``, ``losses (T, C)``, ``{name: (steps,
    values)}`` metrics and the wall time (the arguments of ``History.replace``)."""

    steps: np.ndarray
    losses: np.ndarray
    metrics: dict
    wall_time: float


class Restored(NamedTuple):
    """What :func:`load` read: the call to resume and the pieces of the solver."""

    call: Call
    state: Any
    adapted: bool
    draws: list
    diag: list
    history: SavedHistory
    stream: dict | None = None


def _read_archive(path: Path, where: str) -> tuple[dict, dict, dict]:
    """``(manifest, state arrays, draws/history arrays)`` of a checkpoint file."""
    try:
        with zipfile.ZipFile(path) as z:
            manifest = json.loads(z.read("manifest.json"))
            state_table = np.load(io.BytesIO(z.read("state.npz")), allow_pickle=False)
            saved_state = {k: state_table[k] for k in state_table.files}
            table = np.load(io.BytesIO(z.read("arrays.npz")), allow_pickle=False)
            arrays = {k: table[k] for k in table.files}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as err:
        raise CheckpointError(
            f"{where}: the file is not a readable jno checkpoint (corrupt or truncated: {err}); "
            "it was left as it is. Resume from an intact checkpoint or solve without resume_from."
        ) from err
    return manifest, saved_state, arrays


def load(path, snap: Snapshot, batch_size, substeps) -> Restored:
    """Read ``path`` for the solve of ``snap`` (whose fresh state gives the structure to read
    into).

    Raises:
        CheckpointError: the file is missing, not a jno checkpoint, corrupt or truncated, or
            was written by a different problem (the message names what differs).
    """
    path = Path(path)
    where = f"crux.solve(resume_from={str(path)!r})"
    if not path.is_file():
        raise CheckpointError(f"{where}: no checkpoint at that path.")
    manifest, saved_state, arrays = _read_archive(path, where)
    if manifest.get("format") != FORMAT:
        raise CheckpointError(
            f"{where}: format {manifest.get('format')!r} is not {FORMAT!r}; it was written by "
            "another version of jno."
        )
    diffs = _differences(manifest["fingerprint"], fingerprint(snap, batch_size, substeps))
    if diffs:
        raise CheckpointError(
            f"{where}: the checkpoint was written by a different problem: "
            + "; ".join(diffs)
            + ". Resume with the script (constraints, models, .bayesian settings, seed, data and "
            "solve arguments) that wrote it, or solve without resume_from."
        )
    names = canonical_names(snap.program)
    paths, like, treedef = named_leaves(snap.state, names)  # shapes and dtypes only
    leaves = [
        np.asarray(saved_state[p]).astype(np.dtype(ref.dtype)).reshape(np.shape(ref))
        for p, ref in zip(paths, like)
    ]
    state = jax.tree.unflatten(treedef, leaves)
    positions = snap.positions
    draws, diag = [[] for _ in snap.blocks], [[] for _ in snap.blocks]
    for key, fields in manifest["layout"]["blocks"].items():
        b = int(key)
        if "stream" not in manifest["layout"]:
            block_paths, _, block_def = named_leaves(positions[b], names)
            pieces = [arrays[f"draws/{b}/{p}"] for p in block_paths]
            draws[b] = [jax.tree.unflatten(block_def, pieces)]
        diag[b] = [{name: arrays[f"diag/{b}/{name}"] for name in fields}]
    history = SavedHistory(
        arrays["history/steps"],
        arrays["history/losses"],
        {
            name: (arrays[f"metric/{i}/steps"], arrays[f"metric/{i}/values"])
            for i, name in enumerate(manifest["layout"]["metrics"])
        },
        float(manifest["layout"]["wall_time"]),
    )
    return Restored(
        Call(**manifest["call"]),
        state,
        bool(manifest["adapted"]),
        draws,
        diag,
        history,
        manifest["layout"].get("stream"),
    )


__all__ = ["Call", "CheckpointError", "Restored", "Snapshot", "fingerprint", "load", "save"]
