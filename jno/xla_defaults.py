"""XLA CPU settings jno applies before JAX starts its backend.

**Element-wise fusions on the CPU.** A point-wise expression is evaluated per point and
vmapped over the rows of its point set, so its arrays are ``(n, 1)``, ``(n, k)``. jaxlib 0.10's
CPU backend hands element-wise fusions to its YNN library by default, and on ``(n, 1)`` arrays
that runs 25-40 times slower than on ``(n,)`` ones (measured: 80 µs against 3 µs for one
gradient of a linear-in-features log-density at n = 1e4). Keeping YNN for matrix products
only (``--xla_cpu_experimental_ynn_fusion_type=dot``) gives both shapes the fast path (3 µs)
and leaves dense layers on YNN; ``benchmarks/scale_points.py`` measures it.

jno adds that flag to ``XLA_FLAGS`` when it is imported, only if all of these hold: the
environment variable ``JNO_XLA_DEFAULTS`` is not ``0``; ``XLA_FLAGS`` does not already name
the option (a user's choice wins); the installed jaxlib is a version known to have the flag
(an unknown flag would stop XLA); JAX has not started a backend yet (the flag is read once,
then). :func:`applied` says whether it took effect.
"""

from __future__ import annotations

import os

FLAG = "--xla_cpu_experimental_ynn_fusion_type=dot"
#: jaxlib (major, minor) versions checked to have the flag
KNOWN = {(0, 10)}

_applied = False


def _jaxlib_version() -> tuple[int, int] | None:
    try:
        from jaxlib import version

        major, minor = version.__version__.split(".")[:2]
        return int(major), int(minor)
    except Exception:
        return None


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:
        return True  # cannot tell: leave XLA_FLAGS alone


def apply() -> bool:
    """Add :data:`FLAG` to ``XLA_FLAGS`` when the conditions of the module docstring hold;
    returns whether it was added (now or before)."""
    global _applied
    flags = os.environ.get("XLA_FLAGS", "")
    if (
        _applied
        or os.environ.get("JNO_XLA_DEFAULTS", "1") == "0"
        or "xla_cpu_experimental_ynn_fusion_type" in flags
        or _jaxlib_version() not in KNOWN
        or _backend_started()
    ):
        return _applied
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    _applied = True
    return True


def applied() -> bool:
    """Whether jno set :data:`FLAG` in this process."""
    return _applied
