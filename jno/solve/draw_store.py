"""Draws streamed to a zarr store as they are made (``crux.solve(store="draws.zarr")``).

Without a store the kept draws of a solve live in host memory: ``keep × K × params`` numbers
per sampling block. With one, every recorded row is written to disk at the end of its chunk
and host memory holds one chunk's records at a time. The store is a zarr group (the optional
``jno[stream]`` extra)::

    draws.zarr/
      block0/            one group per recording block (attrs: label, total rows written)
        leaf0            (K, capacity, *leaf shape): chain-major, the draw axis grows on demand
        leaf1 ...        (attrs: the leaf's canonical path, e.g. "[model0].layers[0].weight")

The posterior is the last ``keep`` rows: ``posterior_samples`` holds :class:`StoredDraws`
views of them, which read from disk only when indexed or converted (``np.asarray``), so
``crux.eval``, ``to_arviz`` and the plots work on them as on in-memory draws. Every row ever
recorded stays in the store (continued solves append), which is what a resumed solve needs:
a checkpoint records how many rows were written, and resuming writes from there on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

FORMAT = "jno-draws-1"
CHUNK_BYTES = 8 * 2**20  # target size of one zarr chunk (one chain, many rows)


def _zarr():
    try:
        import zarr
    except ImportError as err:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "crux.solve(store=...): streaming draws needs zarr; pip install 'jno[stream]'."
        ) from err
    return zarr


class StoredDraws:
    """A lazy ``(K, N, *leaf)`` view of rows ``lo:hi`` of one stored leaf.

    Indexing reads only what it selects (``draws[0]`` reads chain 0, ``draws[:, -100:]`` the
    last 100 draws of every chain); ``np.asarray(draws)`` reads the whole view.
    """

    def __init__(self, array, lo: int, hi: int):
        self.array, self.lo, self.hi = array, int(lo), int(hi)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.array.shape[0], self.hi - self.lo) + tuple(self.array.shape[2:])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.array[:, self.lo : self.hi])
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis or k is None for k in key) or not all(
            isinstance(k, (int, np.integer, slice)) for k in key[:2]
        ):
            return np.asarray(self)[key]
        draw = key[1] if len(key) > 1 else slice(None)
        rows = range(self.lo, self.hi)[draw]
        if isinstance(rows, range):
            if rows.step < 0:
                return np.asarray(self)[key]
            draw = slice(rows.start, rows.stop, rows.step) if len(rows) else slice(0, 0)
        else:
            draw = rows
        return np.asarray(self.array[(key[0], draw) + key[2:]])

    def __repr__(self) -> str:
        return f"StoredDraws(shape={self.shape}, dtype={self.dtype}, store={self.array.store})"


def is_sample_leaf(leaf: Any) -> bool:
    """What counts as a draws leaf of ``posterior_samples``: a float array or stored draws."""
    return isinstance(leaf, StoredDraws) or eqx.is_inexact_array(leaf)


def has_stored(tree: Any) -> bool:
    return any(isinstance(x, StoredDraws) for x in jax.tree.leaves(tree))


class DrawStore:
    """The zarr group the recorded rows of every block stream to.

    Args:
        path: the store's directory. A fresh solve replaces what is there; a resumed one
            (``resume=True``) opens it and writes after the rows its checkpoint counted.
    """

    def __init__(self, path: str | os.PathLike, *, resume: bool = False):
        zarr = _zarr()
        self.path = Path(path)
        if resume:
            if not self.path.exists():
                raise ValueError(
                    f"crux.solve(store={str(self.path)!r}, resume_from=...): the checkpoint's "
                    "draws were streamed to this store, which does not exist any more."
                )
            self.root = zarr.open_group(str(self.path), mode="r+")
            if self.root.attrs.get("format") != FORMAT:
                raise ValueError(
                    f"crux.solve(store={str(self.path)!r}): not a jno draw store (format "
                    f"{self.root.attrs.get('format')!r})."
                )
        else:
            self.root = zarr.open_group(str(self.path), mode="w")
            self.root.attrs["format"] = FORMAT
        self.groups: dict[str, Any] = {}
        self.order: dict[str, list[str]] = {}  # array names in this process's leaf order
        self.totals: dict[str, int] = {}

    def ensure(self, name: str, label: str, paths: list[str], like: list, keep: int) -> None:
        """Create (or reopen) block ``name``'s arrays for leaves like ``like`` (``(K, *leaf)``
        each, in this process's leaf order), matched to stored arrays by canonical path."""
        if name in self.groups:
            return
        if name in self.root:
            group = self.root[name]
            by_path = {group[a].attrs["path"]: a for a in group.array_keys()}
            missing = sorted(set(paths) - set(by_path))
            if missing:
                raise ValueError(
                    f"crux.solve(resume_from=...): the draw store {str(self.path)!r} has no "
                    f"arrays for {missing} of block {name}; it was written by another problem."
                )
            self.order[name] = [by_path[p] for p in paths]
            self.totals[name] = int(group.attrs["total"])
        else:
            group = self.root.create_group(name)
            group.attrs.update({"label": label, "total": 0})
            for i, (path, leaf) in enumerate(zip(paths, like)):
                shape = tuple(np.shape(leaf))
                row = max(1, int(np.prod(shape[1:])) * np.dtype(leaf.dtype).itemsize)
                rows = int(min(max(keep, 1), max(1, CHUNK_BYTES // row)))
                arr = group.create_array(
                    f"leaf{i}",
                    shape=(shape[0], max(keep, 1)) + shape[1:],
                    chunks=(1, rows) + shape[1:],
                    dtype=np.dtype(leaf.dtype),
                    fill_value=0,
                )
                arr.attrs["path"] = path
            self.order[name] = [f"leaf{i}" for i in range(len(paths))]
            self.totals[name] = 0
        self.groups[name] = group

    def append(self, name: str, leaves: list[np.ndarray]) -> None:
        """Write rows ``(n, K, *leaf)`` of every leaf after the block's last written row."""
        group, start = self.groups[name], self.totals[name]
        n = int(np.shape(leaves[0])[0])
        for array, rows in zip(self.order[name], leaves):
            arr = group[array]
            if start + n > arr.shape[1]:
                grow = max(start + n, 2 * arr.shape[1])
                arr.resize((arr.shape[0], grow) + tuple(arr.shape[2:]))
            arr[:, start : start + n] = np.swapaxes(np.asarray(rows), 0, 1)
        self.totals[name] = start + n
        group.attrs["total"] = start + n

    def rewind(self, name: str, total: int) -> None:
        """Resume: the block's rows after ``total`` belong to the interrupted run."""
        written = self.totals.get(name, 0)
        if written < total:
            raise ValueError(
                f"crux.solve(resume_from=...): the draw store {str(self.path)!r} holds "
                f"{written} rows of block {name} but the checkpoint counted {total}; it was "
                "replaced or written by another run. Resume with the store the run wrote."
            )
        self.totals[name] = total
        self.groups[name].attrs["total"] = total

    def view(self, name: str, n_leaves: int, keep: int) -> list[StoredDraws]:
        """Lazy views of the last ``keep`` rows of every leaf of block ``name``."""
        hi = self.totals[name]
        lo = max(0, hi - keep)
        group = self.groups[name]
        return [StoredDraws(group[a], lo, hi) for a in self.order[name][:n_leaves]]


__all__ = ["DrawStore", "StoredDraws", "has_stored", "is_sample_leaf"]
