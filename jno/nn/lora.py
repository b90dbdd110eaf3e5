"""Low-rank adaptation (LoRA) of the linear layers of any equinox module.

A *linear layer* is recognised by structure, not by class: an equinox module whose array
fields are a 2-D ``weight`` of shape ``(out, in)`` and a ``bias`` of shape ``(out,)`` or
``None``, applied as ``x @ weight.T + bias`` (``eqx.nn.Linear``, foundax's ``Linear``, or a
user's own layer). :func:`lora` replaces each by a :class:`LoRALinear` whose base weight and
bias are frozen and whose output gains a trainable low-rank term,
``x @ W.T + b + (alpha / rank) * (x @ A.T) @ B.T``. :func:`lora_mask` marks the adapters so an
optimiser or a sampler can update only them; :func:`merge_lora` folds the adapters back into
layers of the original class.
"""

from __future__ import annotations

import dataclasses
from numbers import Integral
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

LINEAR_LAYER = (
    "an equinox module with a 2-D inexact array field 'weight' (out, in) and a field 'bias' "
    "(an (out,) array or None), and no other array field"
)


def _array_fields(node: eqx.Module) -> dict[str, Any]:
    return {
        f.name: getattr(node, f.name, None)
        for f in dataclasses.fields(node)
        if eqx.is_array(getattr(node, f.name, None))
    }


def is_linear_layer(node: Any) -> bool:
    """Whether ``node`` is a linear layer in the sense of this module (see :data:`LINEAR_LAYER`).

    ``x @ weight.T + bias`` must be what the layer computes; that is the convention of
    ``eqx.nn.Linear`` (on one vector), foundax's ``Linear`` and PyTorch's ``nn.Linear``.
    """
    if not isinstance(node, eqx.Module) or isinstance(node, LoRALinear):
        return False
    if "bias" not in {f.name for f in dataclasses.fields(node)}:
        return False
    weight, bias = getattr(node, "weight", None), getattr(node, "bias", None)
    if not eqx.is_inexact_array(weight) or weight.ndim != 2:
        return False
    if bias is not None and not (eqx.is_inexact_array(bias) and bias.shape == weight.shape[:1]):
        return False
    return set(_array_fields(node)) <= {"weight", "bias"}


class LoRALinear(eqx.Module):
    """A frozen linear layer plus a rank-``rank`` trainable update.

    Attributes:
        weight: base weight, shape ``(out, in)``; frozen (``stop_gradient`` in the forward
            pass, so its gradient is exactly zero).
        bias: base bias, shape ``(out,)``, or ``None``; frozen like ``weight``.
        A: adapter down-projection, shape ``(rank, in)``.
        B: adapter up-projection, shape ``(out, rank)``; zero at creation, so the layer starts
            out equal to its base.
        alpha: the update is scaled by ``alpha / rank`` (static).
        rank: the adapter rank (static).
        base: the adapted layer with its weight and bias removed (static); :func:`merge_lora`
            puts merged arrays back into it, so the original class comes back.
    """

    weight: jax.Array
    bias: jax.Array | None
    A: jax.Array
    B: jax.Array
    alpha: float = eqx.field(static=True)
    rank: int = eqx.field(static=True)
    base: Any = eqx.field(static=True)

    def __init__(self, base: Any, rank: int, alpha: float = 1.0, *, key: jax.Array):
        """Wrap the linear layer ``base``: ``A`` is drawn from ``N(0, 1/in)``, ``B`` starts at
        zero."""
        if not is_linear_layer(base):
            raise TypeError(f"LoRALinear needs {LINEAR_LAYER}; got {type(base).__name__}")
        out_dim, in_dim = base.weight.shape
        dtype = base.weight.dtype
        self.weight = base.weight
        self.bias = base.bias
        self.A = jax.random.normal(key, (rank, in_dim), dtype) / jnp.sqrt(in_dim)
        self.B = jnp.zeros((out_dim, rank), dtype)
        self.alpha = float(alpha)
        self.rank = int(rank)
        self.base = eqx.tree_at(lambda m: (m.weight, m.bias), base, (None, None),
                                is_leaf=lambda v: v is None)

    @property
    def scale(self) -> float:
        """The factor ``alpha / rank`` applied to the low-rank update."""
        return self.alpha / self.rank

    @property
    def in_features(self):
        return getattr(self.base, "in_features", self.weight.shape[1])

    @property
    def out_features(self):
        return getattr(self.base, "out_features", self.weight.shape[0])

    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        """``x @ W.T + b + (alpha / rank) * (x @ A.T) @ B.T`` for ``x`` of shape ``(..., in)``
        (a scalar when the base layer's ``in_features`` is ``"scalar"``); ``key`` is ignored
        (equinox API)."""
        if self.in_features == "scalar":
            x = jnp.reshape(x, (1,))
        y = x @ jax.lax.stop_gradient(self.weight).T + self.scale * ((x @ self.A.T) @ self.B.T)
        if self.bias is not None:
            y = y + jax.lax.stop_gradient(self.bias)
        if self.out_features == "scalar":
            y = jnp.squeeze(y, axis=-1)
        return y


def _is_lora(node: Any) -> bool:
    return isinstance(node, LoRALinear)


def lora(module: Any, rank: int, alpha: float = 1.0, *, key: jax.Array) -> Any:
    """A copy of ``module`` with every linear layer replaced by a :class:`LoRALinear`.

    Linear layers are found by pytree traversal and recognised by structure
    (:func:`is_linear_layer`), so this works for any equinox module (or pytree of modules)
    built from ``eqx.nn.Linear``, foundax's ``Linear`` or a user's own layer. Each adapter
    gets its own key, split from ``key``.

    Raises:
        ValueError: ``rank`` is not a positive integer, or ``module`` has no linear layer.
    """
    if not isinstance(rank, Integral) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"lora rank must be a positive integer, got {rank!r}")
    count = sum(map(is_linear_layer, jax.tree_util.tree_leaves(module, is_leaf=is_linear_layer)))
    if count == 0:
        raise ValueError(
            f"lora: {type(module).__name__} contains no linear layer to adapt; searched for "
            f"{LINEAR_LAYER}"
        )
    keys = iter(jax.random.split(key, count))

    def adapt(node: Any) -> Any:
        if not is_linear_layer(node):
            return node
        return LoRALinear(node, int(rank), alpha, key=next(keys))

    return jax.tree_util.tree_map(adapt, module, is_leaf=is_linear_layer)


def lora_mask(module: Any) -> Any:
    """A boolean pytree shaped like ``module``: ``True`` on every adapter ``A`` and ``B``.

    Every other leaf (base weights and biases, other layers' parameters) is ``False``; use it
    with ``eqx.filter`` / ``eqx.partition`` or ``model.mask(...)`` to update adapters only.
    """

    def mark(node: Any) -> Any:
        false = jax.tree_util.tree_map(lambda _: False, node)
        if _is_lora(node):
            return eqx.tree_at(lambda m: (m.A, m.B), false, (True, True))
        return false

    return jax.tree_util.tree_map(mark, module, is_leaf=_is_lora)


def merge_lora(module: Any) -> Any:
    """A copy of ``module`` with each :class:`LoRALinear` folded back into a layer of its
    original class.

    The merged weight is ``weight + (alpha / rank) * B @ A``; outputs are unchanged.
    """

    def merge(node: Any) -> Any:
        if not _is_lora(node):
            return node
        weight = node.weight + node.scale * (node.B @ node.A)
        return eqx.tree_at(
            lambda m: (m.weight, m.bias), node.base, (weight, node.bias),
            is_leaf=lambda v: v is None,
        )

    return jax.tree_util.tree_map(merge, module, is_leaf=_is_lora)
