"""The symbolic graph (no JAX computation happens here).

Importing the package imports :mod:`jno.trace.reductions`, whose classes register the
constraint methods of every placeholder (``r.mse``, ``r.gaussian(std=...)``, ...).
"""

from . import reductions  # noqa: F401
