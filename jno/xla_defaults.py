"""XLA compile options jno gives its own compiled programs.

**Element-wise fusions on the CPU.** A point-wise expression is evaluated per point and
vmapped over the rows of its point set, so its arrays are ``(n, 1)``, ``(n, k)``. jaxlib 0.10's
CPU backend hands element-wise fusions to its YNN library by default, and on ``(n, 1)``
arrays that runs 25-40 times slower than on ``(n,)`` ones (one gradient of a
linear-in-features log-density at n = 1e4: 37 µs against 4 µs for the same maths on ``(n,)``
arrays). Keeping YNN for matrix products only gives both shapes the fast path and leaves
dense layers on YNN. Moving the rows axis last in the vmap does not help: XLA bitcasts
``(1, n)`` back to ``(n, 1)`` before fusing. ``benchmarks/scale_points.py`` measures it.

:func:`jit` is ``jax.jit`` with :func:`compiler_options`: the option above, per compilation
(``jax.jit(..., compiler_options=...)``), so nothing else in the process changes. A solve
uses it when every model is a parameter (``Solver``: networks make wide arrays, where YNN's
element-wise fusions win), the default backend is the CPU, the user's ``XLA_FLAGS`` do not
set the option already, ``JNO_XLA_DEFAULTS`` is not ``0``, and a probe compilation accepts it
(a jaxlib without the option gets none: no version list to keep).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}

_options: dict | None = None


def compiler_options() -> dict:
    """The compile options jno passes to its ``jax.jit`` calls (module docstring); ``{}`` when
    none apply. Decided once per process, at the first call (which starts JAX's backend)."""
    global _options
    if _options is None:
        _options = {}
        if (
            os.environ.get("JNO_XLA_DEFAULTS", "1") != "0"
            and "ynn_fusion_type" not in os.environ.get("XLA_FLAGS", "")
            and jax.default_backend() == "cpu"
        ):
            try:
                probe = jax.jit(lambda v: v + 1, compiler_options=OPTIONS)
                jax.block_until_ready(probe(jnp.zeros(2)))
                _options = dict(OPTIONS)
            except Exception:
                _options = {}
    return _options


def jit(fn, *, narrow: bool = True, **kwargs):
    """``jax.jit(fn, **kwargs)``, with jno's :func:`compiler_options` when ``narrow``: the
    program's point-wise arrays are ``(n, 1)``-narrow (every model a parameter). A network's
    hidden layers make ``(n, width)`` arrays on which YNN's element-wise fusions are the
    faster ones (a PINN's gradient measured 20-25 % slower without them), so a solve with a
    network compiles without the options."""
    options = compiler_options() if narrow else {}
    if options:
        kwargs = {**kwargs, "compiler_options": {**options, **kwargs.get("compiler_options", {})}}
    return jax.jit(fn, **kwargs)
