"""Where the examples write their figures, and matplotlib when it is installed."""

from __future__ import annotations

import os
from typing import Any


def output_dir(default: str = "outputs") -> str:
    """The figure folder: ``$JNO_OUTPUT_DIR`` when set, else ``default``."""
    return os.environ.get("JNO_OUTPUT_DIR", default)


def pyplot() -> Any | None:
    """``matplotlib.pyplot`` on the file-only Agg backend, or ``None`` without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, out_dir: str, name: str) -> str:
    """Save ``fig`` as ``out_dir/name`` (folder created), close it, return the path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


NO_FIGURE = "(matplotlib not installed: no figure)"
