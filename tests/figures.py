"""Record the matplotlib figures a tutorial saves, so tests can check what is drawn."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def recording_savefig():
    """Within the block every ``Figure.savefig(path)`` also stores ``{file name: Figure}``."""
    from matplotlib.figure import Figure

    saved: dict = {}
    original = Figure.savefig

    def spy(self, fname, *args, **kwargs):
        saved[Path(str(fname)).name] = self
        return original(self, fname, *args, **kwargs)

    Figure.savefig = spy
    try:
        yield saved
    finally:
        Figure.savefig = original


def lines_by_label(ax) -> dict:
    """``{label: (x, y)}`` of the axes' lines (float arrays)."""
    return {
        line.get_label(): (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
        for line in ax.get_lines()
    }


def line_matching(ax, x, y, rtol=1e-5, atol=1e-6):
    """The first line of ``ax`` whose data equal ``(x, y)``, or ``None``."""
    for line in ax.get_lines():
        lx, ly = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        if lx.shape == np.shape(x) and np.allclose(lx, x, rtol, atol) and np.allclose(
            ly, y, rtol, atol
        ):
            return line
    return None
