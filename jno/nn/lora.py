"""Low-rank adaptation (LoRA) of any equinox module's linear layers.

:func:`lora` replaces every ``eqx.nn.Linear`` of a module by a :class:`LoRALinear` whose base
weight and bias are frozen and whose output gains a trainable low-rank term,
``base(x) + (alpha / rank) * B @ (A @ x)``. :func:`lora_mask` marks the adapters so an
optimiser or a sampler can update only them; :func:`merge_lora` folds the adapters back into
plain linear layers.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp


class LoRALinear(eqx.Module):
    """A frozen ``eqx.nn.Linear`` plus a rank-``rank`` trainable update.

    Attributes:
        weight: base weight, shape ``(out, in)``; frozen (``stop_gradient`` in the forward
            pass, so its gradient is exactly zero).
        bias: base bias, shape ``(out,)``, or ``None``; frozen like ``weight``.
        A: adapter down-projection, shape ``(rank, in)``.
        B: adapter up-projection, shape ``(out, rank)``; zero at creation, so the layer starts
            out equal to its base.
        alpha: the update is scaled by ``alpha / rank`` (static).
        rank: the adapter rank (static).
        in_features, out_features: as for ``eqx.nn.Linear`` (an int or ``"scalar"``).
    """

    weight: jax.Array
    bias: jax.Array | None
    A: jax.Array
    B: jax.Array
    alpha: float = eqx.field(static=True)
    rank: int = eqx.field(static=True)
    in_features: int | Literal["scalar"] = eqx.field(static=True)
    out_features: int | Literal["scalar"] = eqx.field(static=True)

    def __init__(self, base: eqx.nn.Linear, rank: int, alpha: float = 1.0, *, key: jax.Array):
        """Wrap ``base``: ``A`` is drawn from ``N(0, 1/in)``, ``B`` starts at zero."""
        out_dim, in_dim = base.weight.shape
        self.weight = base.weight
        self.bias = base.bias
        self.A = jax.random.normal(key, (rank, in_dim), base.weight.dtype) / jnp.sqrt(in_dim)
        self.B = jnp.zeros((out_dim, rank), base.weight.dtype)
        self.alpha = float(alpha)
        self.rank = int(rank)
        self.in_features = base.in_features
        self.out_features = base.out_features

    @property
    def scale(self) -> float:
        """The factor ``alpha / rank`` applied to the low-rank update."""
        return self.alpha / self.rank

    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        """``base(x) + (alpha / rank) * B @ (A @ x)``; ``key`` is ignored (equinox API)."""
        if self.in_features == "scalar":
            x = jnp.broadcast_to(x, (1,))
        y = jax.lax.stop_gradient(self.weight) @ x + self.scale * (self.B @ (self.A @ x))
        if self.bias is not None:
            y = y + jax.lax.stop_gradient(self.bias)
        if self.out_features == "scalar":
            y = jnp.squeeze(y, axis=0)
        return y


def _is_linear(node: Any) -> bool:
    return isinstance(node, eqx.nn.Linear)


def _is_lora(node: Any) -> bool:
    return isinstance(node, LoRALinear)


def lora(module: Any, rank: int, alpha: float = 1.0, *, key: jax.Array) -> Any:
    """A copy of ``module`` with every ``eqx.nn.Linear`` replaced by a :class:`LoRALinear`.

    Linear layers are found by pytree traversal, so this works for any equinox module (or
    pytree of modules). Each adapter gets its own key, split from ``key``.

    Raises:
        ValueError: ``rank`` is not a positive integer, or ``module`` has no linear layer.
    """
    if not isinstance(rank, Integral) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"lora rank must be a positive integer, got {rank!r}")
    count = sum(map(_is_linear, jax.tree_util.tree_leaves(module, is_leaf=_is_linear)))
    if count == 0:
        raise ValueError(f"lora: {type(module).__name__} contains no eqx.nn.Linear layer to adapt")
    keys = iter(jax.random.split(key, count))

    def adapt(node: Any) -> Any:
        return LoRALinear(node, int(rank), alpha, key=next(keys)) if _is_linear(node) else node

    return jax.tree_util.tree_map(adapt, module, is_leaf=_is_linear)


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
    """A copy of ``module`` with each :class:`LoRALinear` folded into a plain ``eqx.nn.Linear``.

    The merged weight is ``weight + (alpha / rank) * B @ A``; outputs are unchanged.
    """

    def merge(node: Any) -> Any:
        if not _is_lora(node):
            return node
        use_bias = node.bias is not None
        linear = eqx.nn.Linear(
            node.in_features,
            node.out_features,
            use_bias=use_bias,
            dtype=node.weight.dtype,
            key=jax.random.PRNGKey(0),  # placeholder values, replaced below
        )
        weight = node.weight + node.scale * (node.B @ node.A)
        if use_bias:
            return eqx.tree_at(lambda m: (m.weight, m.bias), linear, (weight, node.bias))
        return eqx.tree_at(lambda m: m.weight, linear, weight)

    return jax.tree_util.tree_map(merge, module, is_leaf=_is_lora)
