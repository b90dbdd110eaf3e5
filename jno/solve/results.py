"""What a solve leaves behind: kept draws, ``posterior_samples`` / ``posterior_diagnostics``
on the models, and the end-of-solve summary.

:class:`Recorder` keeps, per block, the recorded rows its schedule selects (``warmup``,
``thin``) and trims them to the last ``keep`` (continued solves append). :func:`publish`
writes the live values and the posterior of every model: each group's draws at its leaves,
the model's other leaves constant, groups of one model spliced draw by draw.
"""

from __future__ import annotations

import logging
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..lower.evaluate import model_key
from ..trace.model import Parameter
from . import streams as st
from .blocks import Block

log = logging.getLogger("jno")

DIVERGENCE_WARNING = 0.01  # the guide's threshold: more than 1 % divergent transitions


class Recorder:
    """The kept records of every block: ``(N, K, ...)`` draws and ``{field: (N, K)}``."""

    def __init__(self, blocks: list[Block]):
        self.blocks = blocks
        self.draws: list[list] = [[] for _ in blocks]
        self.diag: list[list] = [[] for _ in blocks]

    def add(self, records: dict) -> None:
        """Keep the rows of a chunk's ``records`` (see ``Engine.run_chunk``) that each
        block's schedule selects."""
        steps = np.asarray(records["step"])
        active = np.asarray(records["active"])
        for b, blk in enumerate(self.blocks):
            if not blk.records:
                continue
            rows = np.nonzero(active & blk.kept_rows(steps))[0]
            if rows.size == 0:
                continue
            self.draws[b].append(
                jax.tree.map(lambda a: np.asarray(a)[rows], records["positions"][b])
            )
            self.diag[b].append({k: np.asarray(v)[rows] for k, v in records["infos"][b].items()})
            self._trim(b)

    def count(self, b: int) -> int:
        return int(sum(len(jax.tree.leaves(d)[0]) for d in self.draws[b]))

    def _trim(self, b: int) -> None:
        if self.count(b) > self.blocks[b].keep:
            self.draws[b], self.diag[b] = map(lambda x: [x], self.kept(b))

    def kept(self, b: int):
        """The last ``keep`` records of block ``b``: ``(N, K, ...)`` draws, ``{f: (N, K)}``."""
        keep = self.blocks[b].keep
        draws = jax.tree.map(lambda *a: np.concatenate(a)[-keep:], *self.draws[b])
        diag = jax.tree.map(lambda *a: np.concatenate(a)[-keep:], *self.diag[b])
        return draws, diag

    def posterior(self, b: int):
        """``({member key: (K, N, ...)}, {field: (K, N)})`` of block ``b`` or ``(None, None)``."""
        if not self.draws[b]:
            return None, None
        draws, diag = self.kept(b)
        draws = jax.tree.map(lambda a: np.swapaxes(a, 0, 1), draws)
        return draws, {k: np.swapaxes(v, 0, 1) for k, v in diag.items()}

    def metrics(self, records: dict, n: int):
        """``(name, values (n,))`` of every block's per-step metrics in a chunk (chain 0)."""
        for blk, info in zip(self.blocks, records["infos"]):
            for name in blk.metrics:
                yield f"{name}:{blk.label}", np.asarray(info[name])[:n, 0]


def publish(engine, state, recorder: Recorder, streams: st.KeyStreams, started: bool) -> None:
    """Write every model's live value (chain 0, ensemble member 0), ``posterior_samples``
    and ``posterior_diagnostics`` (``None`` for families without diagnostics)."""
    params = live_params(engine, state)
    for m in engine.program.models:
        _set_module(m, params[model_key(m)], engine.program)
    for m, (samples, diag) in posterior_of(engine, state, recorder, streams, started).items():
        m.posterior_samples = samples
        m.posterior_diagnostics = diag


def live_params(engine, state) -> dict:
    """Every model's current value: chain 0, ensemble member 0."""
    view = [
        jax.tree.map(lambda a: a[0], p) if ax == 0 else p
        for p, ax in zip(engine.positions(state), engine.pop_axes)
    ]
    return engine.assemble(state.point, view)


def posterior_of(engine, state, recorder: Recorder, streams: st.KeyStreams, started: bool):
    """``{model: (posterior_samples, posterior_diagnostics)}`` of the models with draws."""
    program, blocks = engine.program, engine.blocks
    params = live_params(engine, state)
    out = {}
    parts: dict[int, list] = {}
    diags: dict[int, dict | None] = {}
    for b, blk in enumerate(blocks):
        recorded, diag = recorder.posterior(b) if blk.records else (None, None)
        if not blk.records:
            if not started or blk.population is None:
                continue
            recorded = blk.posterior(st.posterior_key(streams, b), state.blocks[b], None)
        if recorded is None:
            continue
        diag = diag if blk.diagnostics is not None else None
        for mem in blk.members:
            parts.setdefault(mem.model.uid, []).append((mem, recorded[mem.key]))
            if diags.get(mem.model.uid) is None:
                diags[mem.model.uid] = diag
    chain_axis = engine.plan.chain_axis or engine.plan.ensemble is not None
    for m in program.models:
        pieces = parts.get(m.uid)
        if not pieces:
            continue
        lead = np.shape(jax.tree.leaves(pieces[0][1])[0])[:2]
        if any(np.shape(jax.tree.leaves(p)[0])[:2] != lead for _, p in pieces):
            continue  # groups of unequal length (an interrupted solve): nothing to splice
        full = jax.tree.map(
            lambda a: np.broadcast_to(np.asarray(a), lead + np.shape(a)), params[model_key(m)]
        )
        for mem, piece in pieces:
            piece = jax.tree.map(np.asarray, piece)
            full = piece if mem.mask is None else eqx.combine(piece, full)
        samples = _as_samples(m, full, program)
        diag = diags.get(m.uid)
        diag = None if diag is None else dict(diag)
        if not chain_axis:
            samples = jax.tree.map(lambda a: a[0], samples)
            diag = None if diag is None else {k: v[0] for k, v in diag.items()}
        out[m] = (samples, diag)
    return out


def summary(blocks: list[Block], recorder: Recorder) -> None:
    """One log line per sampling block with diagnostics (the guide's solve-end summary),
    and a warning when more than 1 % of its transitions diverged or were not finite."""
    for b, blk in enumerate(blocks):
        if not blk.records or blk.diagnostics is None or not recorder.draws[b]:
            continue
        _, d = recorder.kept(b)
        n = int(np.size(next(iter(d.values())))) if d else 0
        div = np.zeros(np.shape(next(iter(d.values()))), bool) if d else np.zeros((), bool)
        if "is_divergent" in d:
            div = div | d["is_divergent"].astype(bool)
        if "nonfinite" in d:
            div = div | d["nonfinite"].astype(bool)
        n_div = int(np.sum(div))
        parts = []
        if d:
            parts.append(f"{n_div}/{n} divergent ({100.0 * n_div / max(n, 1):.2f}%)")
        if "acceptance_rate" in d:
            parts.append(f"mean_accept={float(np.mean(d['acceptance_rate'])):.2f}")
        if "energy" in d:
            parts.append(f"mean_energy={float(np.mean(d['energy'])):.1f}")
        if parts:
            log.info("Model %s: %s", blk.label, ", ".join(parts))
        if n and n_div > DIVERGENCE_WARNING * n:
            warnings.warn(
                f"Model {blk.label}: {n_div}/{n} divergent or non-finite transitions "
                f"({100.0 * n_div / n:.1f}% > 1%); lower step_size or let adaptation tune it.",
                stacklevel=3,
            )


def _as_samples(model, params, program):
    if isinstance(model, Parameter):
        return np.asarray(params)
    return eqx.combine(params, program.statics[model_key(model)])


def _set_module(model, params, program):
    if isinstance(model, Parameter):
        model.module = jnp.asarray(params)
        return
    model.module = eqx.combine(params, program.statics[model_key(model)])
