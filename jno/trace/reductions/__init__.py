"""Reductions and likelihoods: the nodes that turn a point-wise residual into a scalar loss.

Each node class carries its JAX reduction, its sympy form and its properties
(:mod:`.base`), and registers its fluent method on ``Placeholder`` with
:func:`~.base.residual_property` (``r.mse``) or :func:`~.base.residual_method`
(``r.gaussian(std=0.1)``). This package imports every module in it, so a new reduction or
likelihood is one new file here (``student_t.py`` is the example), with nothing to edit
elsewhere.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
