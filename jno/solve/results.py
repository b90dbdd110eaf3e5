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
from ..lower.program import constrained
from ..trace.model import Parameter
from . import streams as st
from .blocks import Block
from .checkpoint import named_leaves
from .draw_store import DrawStore, StoredDraws
from .records import ChunkRecord

log = logging.getLogger("jno")

DIVERGENCE_WARNING = 0.01  # the guide's threshold: more than 1 % divergent transitions


class Recorder:
    """The kept records of every block: ``(N, K, ...)`` draws and ``{field: (N, K)}``.

    Draws live in host memory, or in a :class:`~jno.solve.draw_store.DrawStore` once
    :meth:`attach` gave one (the diagnostics, ``N × K`` scalars per field, stay in memory).
    """

    def __init__(self, blocks: list[Block]):
        self.blocks = blocks
        self.draws: list[list] = [[] for _ in blocks]
        self.diag: list[list] = [[] for _ in blocks]
        self.store: DrawStore | None = None
        self.groups: list[str] = [f"block{b}" for b in range(len(blocks))]
        self._layout: dict[int, tuple] = {}

    # ------------------------------------------------------------------ streaming
    def attach(self, store: DrawStore, positions: list, names: dict[str, str]) -> None:
        """Stream the draws of every recording block to ``store`` from now on; draws kept
        in memory so far are written to it first. ``positions``: the blocks' ``(K, ...)``
        positions (the layout of a row)."""
        kept = {b: self.kept(b)[0] for b in range(len(self.blocks)) if self.draws[b]}
        self.store = store
        for b, blk in enumerate(self.blocks):
            if not blk.records:
                continue
            paths, like, treedef = named_leaves(positions[b], names)
            self._layout[b] = (treedef, len(like))
            store.ensure(self.groups[b], blk.label, paths, like, blk.keep)
            if b in kept:
                store.append(self.groups[b], jax.tree.leaves(kept[b]))
                self.draws[b] = []

    @classmethod
    def restored(cls, blocks, restored, store, positions: list, names: dict) -> Recorder:
        """The records of a checkpoint (:class:`~jno.solve.checkpoint.Restored`); draws the
        run streamed are read from its store (``store`` if given, else the recorded one)."""
        rec = cls(blocks)
        rec.draws, rec.diag = restored.draws, restored.diag
        if restored.stream is not None:
            draws = DrawStore(store or restored.stream["path"], resume=True)
            rec.attach(draws, positions, names)
            for group, total in restored.stream["totals"].items():
                draws.rewind(group, int(total))
        elif store is not None:
            rec.attach(DrawStore(store), positions, names)
        return rec

    def stream_totals(self) -> dict[str, int]:
        """``{group: draws written}`` of every block streaming to the store."""
        return {self.groups[b]: self.store.totals[self.groups[b]] for b in self._layout}

    def carry(self, old: Recorder, pairs: list[tuple[int, int]]) -> None:
        """Take over ``old``'s records: block ``i_old`` of ``old`` becomes block ``i_new``."""
        self.store, self._layout = old.store, {}
        for i_old, i_new in pairs:
            self.draws[i_new], self.diag[i_new] = old.draws[i_old], old.diag[i_old]
            self.groups[i_new] = old.groups[i_old]
            if i_old in old._layout:
                self._layout[i_new] = old._layout[i_old]
        taken = {self.groups[i] for _, i in pairs}
        for b in range(len(self.blocks)):
            if all(i != b for _, i in pairs):
                name, n = f"block{b}", 0
                while name in taken:
                    n += 1
                    name = f"block{b}_{n}"
                self.groups[b] = name
                taken.add(name)

    # ------------------------------------------------------------------ recording
    def add(self, records: ChunkRecord) -> None:
        """Keep the rows of a chunk's ``records`` (see ``Engine.run_chunk``) that each
        block's schedule selects."""
        steps = np.asarray(records.step)
        active = np.asarray(records.active)
        for b, blk in enumerate(self.blocks):
            if not blk.records:
                continue
            rows = np.nonzero(active & blk.kept_rows(steps))[0]
            if rows.size == 0:
                continue
            if rows[-1] - rows[0] + 1 == rows.size:  # a run of rows: a view, no copy
                rows = slice(int(rows[0]), int(rows[-1]) + 1)
            draws = jax.tree.map(lambda a: np.asarray(a)[rows], records.positions[b])
            if self.store is None:
                self.draws[b].append(draws)
            else:
                self.store.append(self.groups[b], jax.tree.leaves(draws))
            self.diag[b].append({k: np.asarray(v)[rows] for k, v in records.infos[b].items()})
            self._trim(b)

    def count(self, b: int) -> int:
        """How many records block ``b`` keeps (at most its ``keep``)."""
        if self.store is not None and b in self._layout:
            return min(self.store.totals[self.groups[b]], self.blocks[b].keep)
        return int(sum(len(jax.tree.leaves(d)[0]) for d in self.draws[b]))

    def _trim(self, b: int) -> None:
        keep = self.blocks[b].keep
        if self.store is not None:
            if sum(len(next(iter(d.values()), ())) for d in self.diag[b]) > keep:
                self.diag[b] = [self.kept_diag(b)]
        elif self.count(b) > keep:
            self.draws[b], self.diag[b] = map(lambda x: [x], self.kept(b))

    def kept_diag(self, b: int) -> dict:
        """The diagnostics of the last ``keep`` records of block ``b``: ``{f: (N, K)}``."""
        keep = self.blocks[b].keep
        return jax.tree.map(lambda *a: np.concatenate(a)[-keep:], *self.diag[b])

    def kept(self, b: int):
        """The last ``keep`` in-memory records of block ``b``: ``(N, K, ...)`` draws and
        ``{f: (N, K)}`` (streamed draws: :meth:`posterior`)."""
        keep = self.blocks[b].keep
        draws = jax.tree.map(lambda *a: np.concatenate(a)[-keep:], *self.draws[b])
        return draws, self.kept_diag(b)

    def posterior(self, b: int):
        """``({member key: (K, N, ...)}, {field: (K, N)})`` of block ``b`` or ``(None, None)``;
        streamed draws are :class:`~jno.solve.draw_store.StoredDraws` views."""
        if not self.count(b):
            return None, None
        diag = {k: np.swapaxes(v, 0, 1) for k, v in self.kept_diag(b).items()}
        if self.store is not None and b in self._layout:
            treedef, n = self._layout[b]
            views = self.store.view(self.groups[b], n, self.blocks[b].keep)
            return jax.tree.unflatten(treedef, views), diag
        draws, _ = self.kept(b)
        return jax.tree.map(lambda a: np.swapaxes(a, 0, 1), draws), diag

    def metrics(self, records: ChunkRecord, n: int):
        """``(name, values (n,))`` of every block's per-step metrics in a chunk (chain 0)."""
        for blk, info in zip(self.blocks, records.infos):
            for name in blk.metrics:
                yield f"{name}:{blk.label}", np.asarray(info[name])[:n, 0]


def publish(engine, state, recorder: Recorder, streams: st.KeyStreams, started: bool) -> None:
    """Write every model's live value (chain 0, ensemble member 0), ``posterior_samples``
    and ``posterior_diagnostics`` (``None`` for families without diagnostics)."""
    params = engine.view(state)
    for m in engine.program.models:
        _set_module(m, params[model_key(m)], engine.program)
    for m, (samples, diag) in posterior_of(engine, state, recorder, streams, started).items():
        m.posterior_samples = samples
        m.posterior_diagnostics = diag


def posterior_of(engine, state, recorder: Recorder, streams: st.KeyStreams, started: bool):
    """``{model: (posterior_samples, posterior_diagnostics)}`` of the models with draws."""
    chain_axis = engine.plan.chain_axis or engine.plan.ensemble is not None
    out = {}
    for m, (full, diag) in posterior_params(engine, state, recorder, streams, started).items():
        samples = _as_samples(m, full, engine.program)
        diag = None if diag is None else dict(diag)
        if not chain_axis:
            samples = jax.tree.map(lambda a: a[0], samples)
            diag = None if diag is None else {k: v[0] for k, v in diag.items()}
        out[m] = (samples, diag)
    return out


def posterior_params(engine, state, recorder: Recorder, streams: st.KeyStreams, started: bool):
    """``{model: (params, diagnostics)}`` of the models with draws: ``params`` is the model's
    trainable pytree with ``(K, N)`` leading axes (every group's draws at its leaves, the
    other leaves constant), ``diagnostics`` ``{field: (K, N)}`` or ``None``."""
    program, blocks = engine.program, engine.blocks
    params = engine.view(state)
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
            piece = jax.tree.map(_host, piece)
            full = piece if mem.mask is None else eqx.combine(piece, full)
        out[m] = (full, diags.get(m.uid))
    return out


def summary(blocks: list[Block], recorder: Recorder) -> None:
    """One log line per sampling block with diagnostics (the guide's solve-end summary),
    and a warning when more than 1 % of its transitions diverged or were not finite."""
    for b, blk in enumerate(blocks):
        if not blk.records or blk.diagnostics is None or not recorder.count(b):
            continue
        d = recorder.kept_diag(b)
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
                stacklevel=5,
            )


def _host(leaf):
    return leaf if isinstance(leaf, StoredDraws) else np.asarray(leaf)


def _as_samples(model, params, program):
    if isinstance(model, Parameter):
        params = _host(params)
        if model.constraint is None or isinstance(params, StoredDraws):
            return params
        return np.asarray(constrained(model, params))
    return eqx.combine(params, program.statics[model_key(model)])


def _set_module(model, params, program):
    if isinstance(model, Parameter):
        model.module = constrained(model, jnp.asarray(params))
        return
    model.module = eqx.combine(params, program.statics[model_key(model)])
