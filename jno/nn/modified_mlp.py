"""The modified MLP of Wang, Teng & Perdikaris (2021): two input encoders gate every layer.

With ``σ`` the activation and ``x`` the (optionally embedded) input,

    U = σ(W_u x + b_u),   V = σ(W_v x + b_v),                    (the two encoders)
    H¹ = σ(W_1 x + b_1),
    Zᵏ = σ(W_{k+1} Hᵏ + b_{k+1}),   Hᵏ⁺¹ = (1 - Zᵏ) ⊙ U + Zᵏ ⊙ V,   k = 1..L,
    f(x) = W_out H^{L+1} + b_out.

Every hidden state is a point-wise convex-like mix of the two encodings of the input, which
carries the input through the depth multiplicatively; the paper reports it eases the
stiffness of PINN gradient flows.

Reference:
    S. Wang, Y. Teng, P. Perdikaris, "Understanding and mitigating gradient flow pathologies
    in physics-informed neural networks", SIAM J. Sci. Comput. 43(5) (2021) A3055-A3081.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .mlp import _check_widths, _glorot_linear


class ModifiedMLP(eqx.Module):
    """The modified MLP on one point: ``(in_features,) -> (out_features,)``.

    Attributes:
        encoder_u, encoder_v: the encoders ``U`` and ``V``, ``eqx.nn.Linear`` of shape
            ``(width, d)`` with ``d`` the embedded input width.
        layers: ``num_layers`` hidden ``eqx.nn.Linear`` layers: ``layers[0]`` maps the input
            to ``H¹`` (shape ``(width, d)``), each later one maps ``Hᵏ`` to the gate ``Zᵏ``
            (shape ``(width, width)``), so there are ``L = num_layers - 1`` gated updates.
        output_layer: the linear head ``(out_features, width)``.
        embedding: an optional module applied to the input first (e.g.
            :class:`~jno.nn.fourier.FourierFeatures`), or ``None``.
        activation: the element-wise activation (static).
        in_features, out_features: input and output widths (static).
    """

    encoder_u: eqx.nn.Linear
    encoder_v: eqx.nn.Linear
    layers: tuple[eqx.nn.Linear, ...]
    output_layer: eqx.nn.Linear
    embedding: eqx.Module | None
    activation: Callable[[jax.Array], jax.Array] = eqx.field(static=True)
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        width: int,
        num_layers: int,
        activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
        *,
        embedding: eqx.Module | None = None,
        key: jax.Array,
    ) -> None:
        _check_widths(
            [
                ("in_features", in_features),
                ("out_features", out_features),
                ("hidden_dims", width),
                ("num_layers", num_layers),
            ]
        )
        d = in_features if embedding is None else int(embedding.out_features)
        keys = jax.random.split(key, num_layers + 3)
        self.encoder_u = _glorot_linear(d, width, keys[0])
        self.encoder_v = _glorot_linear(d, width, keys[1])
        sizes = [d] + [width] * num_layers
        self.layers = tuple(
            _glorot_linear(a, b, k) for a, b, k in zip(sizes[:-1], sizes[1:], keys[2:-1])
        )
        self.output_layer = _glorot_linear(width, out_features, keys[-1])
        self.embedding = embedding
        self.activation = activation
        self.in_features = int(in_features)
        self.out_features = int(out_features)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Map one input vector ``(in_features,)`` to ``(out_features,)``."""
        if jnp.shape(x) != (self.in_features,):
            raise ValueError(
                f"ModifiedMLP expects one point of shape ({self.in_features},), got "
                f"{jnp.shape(x)}; use jax.vmap for batches"
            )
        if self.embedding is not None:
            x = self.embedding(x)
        u = self.activation(self.encoder_u(x))
        v = self.activation(self.encoder_v(x))
        h = self.activation(self.layers[0](x))
        for layer in self.layers[1:]:
            z = self.activation(layer(h))
            h = (1.0 - z) * u + z * v
        return self.output_layer(h)


def modified_mlp(
    in_features: int,
    out_features: int = 1,
    hidden_dims: int = 64,
    num_layers: int = 4,
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
    *,
    embedding: eqx.Module | None = None,
    key: jax.Array,
) -> ModifiedMLP:
    """A modified MLP (Wang, Teng & Perdikaris 2021) for one point.

    Args:
        in_features: input width.
        out_features: output width.
        hidden_dims: the common width of the encoders and the hidden layers (gating mixes
            them element-wise, so one width).
        num_layers: number of hidden layers, at least 1; ``num_layers - 1`` of them are gated.
        activation: the element-wise activation ``σ``.
        embedding: optional input embedding with an ``out_features`` attribute, e.g.
            ``jno.nn.FourierFeatures(in_features, 64, sigma, key)``.
        key: PRNG key. Weights are Glorot-normal, biases zero.
    """
    return ModifiedMLP(
        in_features,
        out_features,
        hidden_dims,
        num_layers,
        activation,
        embedding=embedding,
        key=key,
    )
