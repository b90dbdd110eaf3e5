"""A plain multilayer perceptron as an equinox module, initialised for PINNs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral

import equinox as eqx
import jax
import jax.numpy as jnp


def _glorot_linear(in_features: int, out_features: int, key: jax.Array) -> eqx.nn.Linear:
    """An ``eqx.nn.Linear`` with Glorot-normal weights and zero bias."""
    # Only the layer's structure is taken from eqx.nn.Linear: its own random init is skipped.
    layer = eqx.filter_eval_shape(eqx.nn.Linear, in_features, out_features, key=key)
    std = (2.0 / (in_features + out_features)) ** 0.5
    weight = std * jax.random.normal(key, (out_features, in_features), layer.weight.dtype)
    bias = jnp.zeros((out_features,), layer.bias.dtype)
    return eqx.tree_at(lambda m: (m.weight, m.bias), layer, (weight, bias))


def _hidden_widths(hidden_dims: int | Sequence[int], num_layers: int) -> list[int]:
    """The list of hidden widths from ``hidden_dims`` (an int or a sequence) and
    ``num_layers`` (used when ``hidden_dims`` is an int), validated."""
    if isinstance(hidden_dims, Integral):
        if not isinstance(num_layers, Integral) or num_layers < 0:
            raise ValueError(f"num_layers must be an integer >= 0, got {num_layers!r}")
        widths = [hidden_dims] * int(num_layers)
    else:
        widths = list(hidden_dims)
    _check_widths([("hidden_dims", w) for w in widths])
    return [int(w) for w in widths]


def _check_widths(checks: Sequence[tuple[str, object]]) -> None:
    """Raise ``ValueError`` unless every ``(name, value)`` value is a positive integer."""
    for name, value in checks:
        if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


class MLP(eqx.Module):
    """``in_features -> hidden layers (activation) -> output_layer (linear)`` on one point.

    Attributes:
        layers: the hidden ``eqx.nn.Linear`` layers, each followed by ``activation``.
        output_layer: the final ``eqx.nn.Linear`` (no activation), e.g. the "head" a mask
            selects with ``eqx.tree_at(lambda m: m.output_layer, ...)``.
        activation: the element-wise activation (static).
        in_features, out_features: input and output widths (static).
    """

    layers: tuple[eqx.nn.Linear, ...]
    output_layer: eqx.nn.Linear
    activation: Callable[[jax.Array], jax.Array] = eqx.field(static=True)
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        widths: Sequence[int],
        activation: Callable[[jax.Array], jax.Array],
        *,
        key: jax.Array,
    ) -> None:
        sizes = [in_features, *widths, out_features]
        keys = jax.random.split(key, len(sizes) - 1)
        linears = [_glorot_linear(a, b, k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)]
        self.layers = tuple(linears[:-1])
        self.output_layer = linears[-1]
        self.activation = activation
        self.in_features = in_features
        self.out_features = out_features

    def __call__(self, x: jax.Array) -> jax.Array:
        """Map one input vector of shape ``(in_features,)`` to ``(out_features,)``."""
        if jnp.shape(x) != (self.in_features,):
            raise ValueError(
                f"MLP expects one point of shape ({self.in_features},), got {jnp.shape(x)}; "
                "use jax.vmap for batches"
            )
        for layer in self.layers:
            x = self.activation(layer(x))
        return self.output_layer(x)


def mlp(
    in_features: int,
    out_features: int = 1,
    hidden_dims: int | Sequence[int] = 32,
    num_layers: int = 3,
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
    *,
    key: jax.Array,
) -> MLP:
    """A multilayer perceptron for one point: ``(in_features,) -> (out_features,)``.

    Args:
        in_features: input width (e.g. the number of coordinates).
        out_features: output width.
        hidden_dims: the width of every hidden layer, or a sequence of widths (one per hidden
            layer; its length then sets the number of hidden layers and ``num_layers`` is
            not used).
        num_layers: the number of hidden layers when ``hidden_dims`` is an int (0 gives an
            affine map).
        activation: applied after every hidden layer, not after the output layer.
        key: PRNG key for the initial weights.

    Weights use Glorot (Xavier) normal initialisation, ``N(0, 2 / (fan_in + fan_out))``
    (untruncated), and biases start at zero: with ``tanh`` this keeps
    activations and their input-derivatives, which PINN residuals are built from, of order one
    through the depth.
    """
    widths = _hidden_widths(hidden_dims, num_layers)
    _check_widths([("in_features", in_features), ("out_features", out_features)])
    return MLP(int(in_features), int(out_features), [int(w) for w in widths], activation, key=key)
