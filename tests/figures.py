"""Record the matplotlib figures a tutorial saves, so tests can check what is drawn."""

from __future__ import annotations

import contextlib
import runpy
from pathlib import Path

import numpy as np
import pytest


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


def run_tutorial(path, out_dir, **env) -> tuple[dict, dict]:
    """Run the tutorial script ``path`` as ``__main__`` at full size, its figures saved in
    ``out_dir`` (more environment variables in ``env``, restored after): ``(namespace,
    {file name: Figure})``."""
    mp = pytest.MonkeyPatch()
    for name, value in {"JNO_OUTPUT_DIR": str(out_dir), "JNO_TUTORIAL_SIZE": "full", **env}.items():
        mp.setenv(name, value)
    try:
        with recording_savefig() as figures:
            namespace = runpy.run_path(str(path), run_name="__main__")
    finally:
        mp.undo()
    return namespace, figures


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
