"""``jno.nn.wrap``'s model: an equinox module called point-wise inside expressions.

A :class:`Network` is a :class:`~jno.trace.model.Model` whose value is an equinox module;
calling it on placeholders builds a :class:`ModelCall` node (evaluated per point and
vmapped by the lowering). LoRA adapters are a network configurator (``.lora``).
"""

from __future__ import annotations

import equinox as eqx
import jax
import sympy

from ..trace.model import Model, check_mask
from ..trace.node import Placeholder, as_node, common_pointset
from .lora import lora, lora_mask, merge_lora


class Network(Model):
    """A wrapped equinox module; calling it on placeholders builds a model-call node."""

    kind = "net"

    def __init__(self, module, name: str | None = None):
        if not isinstance(module, eqx.Module) and not callable(module):
            raise TypeError(f"jno.nn.wrap needs an equinox module, got {type(module).__name__}")
        super().__init__(module, name)

    def __call__(self, *args) -> Placeholder:
        return ModelCall(self, [as_node(a) for a in args])

    def __repr__(self) -> str:
        return f"<jno network '{self.model_name}'>"

    def lora(self, rank: int, alpha: float = 1.0, *, key=None) -> Network:
        """Add low-rank adapters ``W + (alpha/rank)·B A`` to every linear layer of the network.

        A linear layer is found by structure: ``eqx.nn.Linear``, foundax's ``Linear`` or any
        module with a 2-D ``weight`` and a ``bias`` (or ``None``) used as ``x @ W.T + b``
        (:func:`jno.nn.lora.is_linear_layer`). ``B = 0`` at start, so the output is unchanged.
        The next ``.bayesian()`` / ``.vi()`` acts on the adapter leaves only; ``.optimizer()``
        trains only them too (the base weights are held by a stop-gradient).

        Raises:
            ValueError: the network has no linear layer (the message says what was searched).
        """
        if self.groups:
            raise ValueError(
                f"{self.where}: .lora() after .bayesian()/.vi(); call .lora(...) first, then "
                "configure the adapters: net.lora(rank=4).bayesian(...)."
            )
        key = jax.random.PRNGKey(self.uid) if key is None else key
        # the last call wins: earlier adapters are folded into the base weights first
        self.module = lora(merge_lora(self.module), rank, alpha, key=key)
        self._lora_mask = check_mask(self, lora_mask(self.module))
        return self


class ModelCall(Placeholder):
    """``network(*args)`` evaluated point-wise."""

    op = "call"

    def __init__(self, model: Network, args):
        pointset = common_pointset(args, f"{model.model_name}(...)")
        self.model = model
        try:
            out = eqx.filter_eval_shape(
                lambda m, *a: m(*a), model.module, *[a.abstract() for a in args]
            )
        except Exception as err:
            shapes = ", ".join(str(a.shape) for a in args)
            raise ValueError(
                f"model '{model.model_name}' cannot be called on per-point inputs of shape "
                f"{shapes}: {err}. Concatenate coordinates with jno.np.concat([x, y], axis=-1) "
                "to match the network's input size."
            ) from None
        super().__init__(args, pointset, out.shape, out.dtype)

    @property
    def reads_model(self) -> Network:
        return self.model

    def lower(self, ev, args):
        return ev.module(self.model)(*args)

    def sympy_form(self, args):
        return sympy.Function(self.model.model_name)(*args)
