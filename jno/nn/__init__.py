"""Neural-network models: wrap any equinox module, build MLPs and operator networks.

Point-wise networks (called on one point, ``(in_features,) -> (out_features,)``):
:func:`mlp`, :func:`fourier_mlp` (random Fourier features), :func:`modified_mlp` (Wang, Teng &
Perdikaris 2021), :func:`rwf_mlp` (random weight factorisation). Operator networks:
:class:`DeepONet` (``net(u_sensors, y)``) and the Fourier neural operators :func:`fno1d` and
:func:`fno2d` (one sampled function in, one out). See ``docs/networks.md``.
"""

from __future__ import annotations

from .deeponet import DeepONet
from .fno import FNO, SpectralConv1d, SpectralConv2d, fno1d, fno2d
from .fourier import FourierFeatures, FourierMLP, fourier_mlp
from .lora import LoRALinear, is_linear_layer, lora_mask, merge_lora
from .lora import lora as lora_module
from .mlp import MLP, mlp
from .modified_mlp import ModifiedMLP, modified_mlp
from .network import Network
from .rwf import RWFMLP, RWFLinear, rwf_mlp


def wrap(module, name: str | None = None) -> Network:
    """Wrap an equinox module as a jno model: ``net = jno.nn.wrap(eqx_module, name="u")``.

    Calling the model on placeholders (``net(x)``) builds a point-wise model-call node;
    ``net.module`` is the live module.
    """
    return Network(module, name=name)


__all__ = [
    "FNO",
    "MLP",
    "RWFMLP",
    "DeepONet",
    "FourierFeatures",
    "FourierMLP",
    "LoRALinear",
    "ModifiedMLP",
    "Network",
    "RWFLinear",
    "SpectralConv1d",
    "SpectralConv2d",
    "fno1d",
    "fno2d",
    "fourier_mlp",
    "is_linear_layer",
    "lora_mask",
    "lora_module",
    "merge_lora",
    "mlp",
    "modified_mlp",
    "rwf_mlp",
    "wrap",
]
