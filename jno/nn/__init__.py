"""Neural-network models: wrap any equinox module, build MLPs, add LoRA adapters."""

from __future__ import annotations

from ..trace.model import Network
from .lora import LoRALinear, lora_mask, merge_lora
from .lora import lora as lora_module
from .mlp import MLP, mlp


def wrap(module, name: str | None = None) -> Network:
    """Wrap an equinox module as a jno model: ``net = jno.nn.wrap(eqx_module, name="u")``.

    Calling the model on placeholders (``net(x)``) builds a point-wise model-call node;
    ``net.module`` is the live module.
    """
    return Network(module, name=name)


__all__ = ["MLP", "LoRALinear", "Network", "lora_mask", "lora_module", "merge_lora", "mlp", "wrap"]
