"""Random Fourier feature embeddings and an MLP that starts with one.

A plain MLP fitted by gradient descent learns the low frequencies of its target first
("spectral bias"); a target such as ``sin(20πx)`` takes it very many steps. Mapping the input
through ``γ(x) = [cos(2π B x), sin(2π B x)]`` with a fixed random Gaussian matrix ``B`` first
(Tancik et al. 2020, applied to PINNs by Wang, Wang & Perdikaris 2021) lets the network
represent frequencies of order ``σ`` from the start.

References:
    M. Tancik et al., "Fourier features let networks learn high frequency functions in low
    dimensional domains", NeurIPS 2020.
    S. Wang, H. Wang, P. Perdikaris, "On the eigenvector bias of Fourier feature networks:
    from regression to solving multi-scale PDEs with physics-informed neural networks",
    CMAME 384 (2021) 113938.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .mlp import MLP, _check_widths, mlp

# The float dtype with the same bit width as each unsigned integer dtype B is stored as.
# (64-bit arrays only exist with jax_enable_x64 on; the entries are harmless otherwise.)
_FLOAT_OF_BITS = {
    np.dtype(np.uint16): jnp.float16,
    np.dtype(np.uint32): jnp.float32,
    np.dtype(np.uint64): jnp.float64,
}
_BITS_OF_FLOAT = {np.dtype(f): u for u, f in _FLOAT_OF_BITS.items()}


class FourierFeatures(eqx.Module):
    """``γ(x) = [cos(2π B x), sin(2π B x)]`` with a fixed Gaussian matrix ``B``.

    Shapes: ``x`` is one point ``(in_features,)``; ``B`` is ``(num_features, in_features)``
    with entries ``B_ij ~ N(0, σ²)``; the output is ``(2 * num_features,)``, the cosines
    first.

    ``B`` is not a parameter. It is stored bit for bit as an unsigned-integer array
    (``B_bits``, reinterpreted as floats in the forward pass), so it is not an
    ``eqx.is_inexact_array`` leaf: optax updates, ``.bayesian`` / ``.vi`` samplers, masks and
    deep ensembles, which all act on the inexact leaves only, never move it, and it gets no
    prior. Read it as the float matrix :attr:`B`.

    Attributes:
        B_bits: the bits of ``B``, an unsigned integer array ``(num_features, in_features)``.
        sigma: the standard deviation the entries were drawn with (static; informational
            when ``B`` was given).
        in_features: input width (static).
        num_features: number of frequencies ``F`` (static); the output width is ``2F``.
    """

    B_bits: jax.Array
    sigma: float = eqx.field(static=True)
    in_features: int = eqx.field(static=True)
    num_features: int = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        num_features: int,
        sigma: float = 1.0,
        key: jax.Array | None = None,
        *,
        B: jax.Array | None = None,
    ) -> None:
        """Draw ``B ~ N(0, σ²)`` of shape ``(num_features, in_features)`` from ``key``, or
        use the given ``B`` (then ``key`` may be omitted)."""
        _check_widths([("in_features", in_features), ("num_features", num_features)])
        if B is None:
            if key is None:
                raise ValueError("FourierFeatures needs a PRNG key (or an explicit B=...)")
            dtype = jnp.result_type(float)
            B = float(sigma) * jax.random.normal(key, (num_features, in_features), dtype)
        B = jnp.asarray(B)
        if B.shape != (num_features, in_features):
            raise ValueError(
                f"FourierFeatures: B must have shape ({num_features}, {in_features}), got {B.shape}"
            )
        if np.dtype(B.dtype) not in _BITS_OF_FLOAT:
            B = B.astype(jnp.result_type(float))
        self.B_bits = jax.lax.bitcast_convert_type(B, _BITS_OF_FLOAT[np.dtype(B.dtype)])
        self.sigma = float(sigma)
        self.in_features = int(in_features)
        self.num_features = int(num_features)

    @property
    def B(self) -> jax.Array:
        """The frequency matrix ``(num_features, in_features)`` as floats."""
        return jax.lax.bitcast_convert_type(
            self.B_bits, _FLOAT_OF_BITS[np.dtype(self.B_bits.dtype)]
        )

    @property
    def out_features(self) -> int:
        """The output width ``2 * num_features``."""
        return 2 * self.num_features

    def __call__(self, x: jax.Array) -> jax.Array:
        """``(in_features,) -> (2 * num_features,)``: ``[cos(2π B x), sin(2π B x)]``."""
        if jnp.shape(x) != (self.in_features,):
            raise ValueError(
                f"FourierFeatures expects one point of shape ({self.in_features},), got "
                f"{jnp.shape(x)}; use jax.vmap for batches"
            )
        z = 2.0 * jnp.pi * (self.B.astype(jnp.result_type(x, float)) @ x)
        return jnp.concatenate([jnp.cos(z), jnp.sin(z)])


class FourierMLP(eqx.Module):
    """An :class:`~jno.nn.mlp.MLP` applied to random Fourier features: ``mlp(γ(x))``.

    Shapes: ``(in_features,) -> (out_features,)``; the MLP's input width is
    ``2 * embedding.num_features``.

    Attributes:
        embedding: the :class:`FourierFeatures` map (its ``B`` is fixed).
        mlp: the MLP on the features (trainable).
    """

    embedding: FourierFeatures
    mlp: MLP

    @property
    def in_features(self) -> int:
        return self.embedding.in_features

    @property
    def out_features(self) -> int:
        return self.mlp.out_features

    def __call__(self, x: jax.Array) -> jax.Array:
        """Map one point ``(in_features,)`` to ``(out_features,)``."""
        return self.mlp(self.embedding(x))


def fourier_mlp(
    in_features: int,
    out_features: int = 1,
    num_features: int = 64,
    sigma: float = 1.0,
    hidden_dims: int | Sequence[int] = 64,
    num_layers: int = 3,
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
    *,
    key: jax.Array,
) -> FourierMLP:
    """An MLP on random Fourier features: ``x -> mlp([cos(2πBx), sin(2πBx)])``.

    Args:
        in_features: input width (number of coordinates).
        out_features: output width.
        num_features: number of random frequencies ``F`` (rows of ``B``); the MLP sees ``2F``
            inputs.
        sigma: standard deviation of the entries of ``B``. It sets the frequency band the
            network represents easily: roughly, ``sigma`` should be of the order of the
            target's frequency in cycles per unit of ``x``. Too large a value gives a noisy
            fit (over-fitting); too small a value brings back the spectral bias.
        hidden_dims: as for :func:`jno.nn.mlp`.
        num_layers: as for :func:`jno.nn.mlp`.
        activation: as for :func:`jno.nn.mlp`.
        key: PRNG key; split into one key for ``B`` and one for the MLP.

    Example::

        net = jno.nn.wrap(jno.nn.fourier_mlp(1, 1, sigma=10.0, key=jax.random.PRNGKey(0)))
        u = net(x)
    """

    k_embed, k_mlp = jax.random.split(key)
    embedding = FourierFeatures(in_features, num_features, sigma, k_embed)
    body = mlp(
        embedding.out_features,
        out_features,
        hidden_dims=hidden_dims,
        num_layers=num_layers,
        activation=activation,
        key=k_mlp,
    )
    return FourierMLP(embedding, body)
