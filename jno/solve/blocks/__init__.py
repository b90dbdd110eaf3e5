"""The inference families of a solve, one module each, behind one protocol (:mod:`.base`).

Sampler families (``mcmc``, ``sgmcmc``, ``vi``, ``mclmc``, and any module added here)
subclass :class:`~.base.SamplingBlock` and register themselves with
:func:`jno.family.register_family` when this package is imported; every module of the package
is imported, so a new family is one new file.
The optax group and the deep ensemble are built by the plan, not by a configurator's
factory.
"""

import importlib
import pkgutil

from .base import Block, Member, SamplingBlock
from .ensemble import EnsembleBlock
from .optax_group import OptaxBlock

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Block", "EnsembleBlock", "Member", "OptaxBlock", "SamplingBlock"]
