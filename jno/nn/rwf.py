"""Random weight factorisation (RWF) of Wang et al. (2022).

Each dense weight is reparametrised as ``W = diag(exp(s)) V``: a per-output-neuron scale
``exp(s_i)`` times a direction matrix ``V``. At initialisation ``s ~ N(μ, σ²)`` and
``V = W₀ / exp(s)`` row by row, so the layer starts out equal to a Glorot-initialised dense
layer; only the parametrisation, and with it the geometry of gradient descent, changes.
Training ``(s, V, b)`` lets every neuron's scale move on its own, which the paper shows
speeds up and improves the training of coordinate networks and PINNs.

Reference:
    S. Wang, H. Wang, J. H. Seidman, P. Perdikaris, "Random weight factorization improves the
    training of continuous neural representations", arXiv:2210.01274 (2022).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .mlp import _check_widths, _hidden_widths


class RWFLinear(eqx.Module):
    """A dense layer ``y = diag(exp(s)) V x + b``.

    Shapes: ``x`` ``(in_features,)``, ``y`` ``(out_features,)``.

    Attributes:
        s: log-scales ``(out_features,)``; drawn from ``N(mean, std²)``.
        V: directions ``(out_features, in_features)``; ``V = W₀ / exp(s)[:, None]`` with
            ``W₀`` Glorot normal, so :attr:`weight` starts at ``W₀``.
        bias: ``(out_features,)``, zero at start.
        in_features, out_features: widths (static).
    """

    s: jax.Array
    V: jax.Array
    bias: jax.Array
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        mean: float = 1.0,
        std: float = 0.1,
        *,
        key: jax.Array,
    ) -> None:
        _check_widths([("in_features", in_features), ("out_features", out_features)])
        dtype = jnp.result_type(float)
        k_w, k_s = jax.random.split(key)
        glorot = (2.0 / (in_features + out_features)) ** 0.5
        w0 = glorot * jax.random.normal(k_w, (out_features, in_features), dtype)
        self.s = mean + std * jax.random.normal(k_s, (out_features,), dtype)
        self.V = w0 / jnp.exp(self.s)[:, None]
        self.bias = jnp.zeros((out_features,), dtype)
        self.in_features = int(in_features)
        self.out_features = int(out_features)

    @property
    def weight(self) -> jax.Array:
        """The effective weight ``diag(exp(s)) V``, shape ``(out_features, in_features)``."""
        return jnp.exp(self.s)[:, None] * self.V

    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        """``diag(exp(s)) V x + b``; ``key`` is ignored (equinox layer API)."""
        return jnp.exp(self.s) * (self.V @ x) + self.bias


class RWFMLP(eqx.Module):
    """An MLP whose dense layers are :class:`RWFLinear`: ``(in_features,) -> (out_features,)``.

    ``h₀ = embedding(x)`` (or ``x``), ``h_{k} = σ(RWF_k(h_{k-1}))``, output ``RWF_out(h_L)``.

    Attributes:
        layers: the hidden :class:`RWFLinear` layers, each followed by ``activation``.
        output_layer: the final :class:`RWFLinear` (no activation).
        embedding: an optional module applied to the input first, or ``None``.
        activation: the element-wise activation (static).
        in_features, out_features: input and output widths (static).
    """

    layers: tuple[RWFLinear, ...]
    output_layer: RWFLinear
    embedding: eqx.Module | None
    activation: Callable[[jax.Array], jax.Array] = eqx.field(static=True)
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        widths: Sequence[int],
        activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
        mean: float = 1.0,
        std: float = 0.1,
        *,
        embedding: eqx.Module | None = None,
        key: jax.Array,
    ) -> None:
        _check_widths([("in_features", in_features), ("out_features", out_features)])
        d = in_features if embedding is None else int(embedding.out_features)
        sizes = [d, *widths, out_features]
        keys = jax.random.split(key, len(sizes) - 1)
        linears = [
            RWFLinear(a, b, mean, std, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)
        ]
        self.layers = tuple(linears[:-1])
        self.output_layer = linears[-1]
        self.embedding = embedding
        self.activation = activation
        self.in_features = int(in_features)
        self.out_features = int(out_features)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Map one input vector ``(in_features,)`` to ``(out_features,)``."""
        if jnp.shape(x) != (self.in_features,):
            raise ValueError(
                f"RWFMLP expects one point of shape ({self.in_features},), got "
                f"{jnp.shape(x)}; use jax.vmap for batches"
            )
        if self.embedding is not None:
            x = self.embedding(x)
        for layer in self.layers:
            x = self.activation(layer(x))
        return self.output_layer(x)


def rwf_mlp(
    in_features: int,
    out_features: int = 1,
    hidden_dims: int | Sequence[int] = 64,
    num_layers: int = 3,
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
    mean: float = 1.0,
    std: float = 0.1,
    *,
    embedding: eqx.Module | None = None,
    key: jax.Array,
) -> RWFMLP:
    """An MLP with random weight factorisation ``W = diag(exp(s)) V`` in every layer.

    Args:
        in_features: as for :func:`jno.nn.mlp`.
        out_features: as for :func:`jno.nn.mlp`.
        hidden_dims: as for :func:`jno.nn.mlp`.
        num_layers: as for :func:`jno.nn.mlp`.
        activation: as for :func:`jno.nn.mlp`.
        mean: the log-scales start as ``s ~ N(mean, std²)`` (the paper's defaults are
            ``mean=1.0``, ``std=0.1``; ``mean=0.5`` is also common).
        std: see ``mean``.
        embedding: optional input embedding with an ``out_features`` attribute, e.g.
            ``jno.nn.FourierFeatures``.
        key: PRNG key.

    Note: :meth:`Network.lora` adapts layers whose arrays are a plain ``weight`` and ``bias``;
    an RWF layer's weight is the product ``diag(exp(s)) V``, so it finds nothing to adapt in an
    RWF network.
    """
    widths = _hidden_widths(hidden_dims, num_layers)
    return RWFMLP(
        in_features,
        out_features,
        widths,
        activation,
        mean,
        std,
        embedding=embedding,
        key=key,
    )
