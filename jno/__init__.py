"""jno: Bayesian physics-informed modelling in JAX.

Write residuals as symbolic expressions over domains, parameters and networks; ``jno.core``
lowers them to JAX and ``crux.solve()`` optimises (optax) or samples (blackjax) them.
"""

import logging as _logging

from . import bayesian, constraints, fields, kernels, nn, noise, np, sym
from .compile_cache import config
from .compile_cache import configure_at_import as _configure_cache
from .crux import Crux, core
from .domain import domain
from .solve import balance, trackers
from .solve import resample as sampling
from .solve.checkpoint import CheckpointError
from .solve.draw_store import StoredDraws
from .solve.options import SolveOptions
from .solve.records import ChunkInfo
from .trace.derivative import diff
from .trace.forward import forward_model
from .trace.node import Placeholder, apply

__version__ = "0.1.0"

_configure_cache()


def fn(f, *args, name=None, **kwargs):
    """Lift any JAX function ``f`` to act point-wise on placeholders: ``jno.fn(f, u, x)``."""
    return apply(f, *args, name=name or getattr(f, "__name__", "fn"), **kwargs)


def __getattr__(name):
    # jno.plot needs matplotlib (optional): imported on first use, never by ``import jno``.
    if name == "plot":
        import importlib

        module = importlib.import_module(".plot", __name__)
        globals()["plot"] = module
        return module
    raise AttributeError(f"module 'jno' has no attribute {name!r}")


_log = _logging.getLogger("jno")
if not _log.handlers and not _logging.getLogger().handlers:
    _handler = _logging.StreamHandler()
    _handler.setFormatter(_logging.Formatter("%(levelname)s: %(message)s"))
    _log.addHandler(_handler)
    _log.setLevel(_logging.INFO)

__all__ = [
    "CheckpointError",
    "ChunkInfo",
    "Crux",
    "Placeholder",
    "SolveOptions",
    "StoredDraws",
    "balance",
    "bayesian",
    "config",
    "constraints",
    "core",
    "diff",
    "domain",
    "fields",
    "fn",
    "forward_model",
    "kernels",
    "nn",
    "sampling",
    "noise",
    "np",
    "sym",
    "trackers",
    "__version__",
]
