"""Fourier neural operators (Li et al. 2021) in one and two dimensions.

An FNO maps a function sampled on a uniform grid, ``a`` of shape ``(n, c_in)`` (1-D) or
``(n1, n2, c_in)`` (2-D, channels last), to another function on the same grid:

    h⁰ = P(a(x), x)                                   (lifting, point-wise linear)
    hˡ⁺¹ = σ( 𝓕⁻¹[ R_l · 𝓕[hˡ] ] + W_l hˡ + b_l ),      l = 0..L-1 (no σ after the last)
    u = Q(hᴸ) = Q₂ σ(Q₁ hᴸ)                           (projection, point-wise)

where ``𝓕`` is the real FFT over the grid axes, ``R_l`` a complex ``(c, c)`` matrix per kept
Fourier mode (the ``modes`` lowest frequencies; every higher mode is set to zero) and
``W_l`` a point-wise linear skip. The grid coordinates in ``[0, 1]`` are appended to the
input channels by default (``grid=True``), which lets the network handle non-periodic
problems.

The complex weights are stored as separate real and imaginary float arrays, so every
trainable leaf is an ordinary inexact array (optax, blackjax, ``eqx.filter``, ``.mask``,
``.bayesian`` and ``.ensemble`` see plain floats).

Reference:
    Z. Li, N. Kovachki, K. Azizzadenesheli, B. Liu, K. Bhattacharya, A. Stuart,
    A. Anandkumar, "Fourier neural operator for parametric partial differential equations",
    ICLR 2021.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .mlp import _check_widths


def _spectral_weights(key: jax.Array, shape: tuple[int, ...], c_in: int, c_out: int):
    """Real and imaginary parts ``U[0, 1) / (c_in · c_out)`` (the init of Li et al.)."""
    dtype = jnp.result_type(float)
    k_re, k_im = jax.random.split(key)
    scale = 1.0 / (c_in * c_out)
    return (
        scale * jax.random.uniform(k_re, shape, dtype),
        scale * jax.random.uniform(k_im, shape, dtype),
    )


class SpectralConv1d(eqx.Module):
    """``(n, c_in) -> (n, c_out)``: ``irfft( R_k · rfft(h)_k  for k < modes,  0 otherwise )``.

    With ``ĥ_k = Σ_j h_j e^{-2πi jk/n}`` (``k = 0..n//2``), the output is the inverse real FFT
    of ``ŷ_k = ĥ_k R_k`` for ``k < modes`` and ``ŷ_k = 0`` above.

    Attributes:
        weight_real, weight_imag: ``Re R`` and ``Im R``, each ``(modes, c_in, c_out)``.
        in_channels, out_channels, modes: static sizes.
    """

    weight_real: jax.Array
    weight_imag: jax.Array
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    modes: int = eqx.field(static=True)

    def __init__(self, in_channels: int, out_channels: int, modes: int, *, key: jax.Array):
        _check_widths([("in_channels", in_channels), ("out_channels", out_channels)])
        _check_widths([("modes", modes)])
        shape = (modes, in_channels, out_channels)
        self.weight_real, self.weight_imag = _spectral_weights(
            key, shape, in_channels, out_channels
        )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.modes = int(modes)

    def __call__(self, h: jax.Array) -> jax.Array:
        """Apply the convolution to ``h`` of shape ``(n, in_channels)``."""
        n = h.shape[0]
        if h.ndim != 2 or h.shape[1] != self.in_channels:
            raise ValueError(f"SpectralConv1d expects (n, {self.in_channels}), got {jnp.shape(h)}")
        if self.modes > n // 2 + 1:
            raise ValueError(f"SpectralConv1d: {self.modes} modes need n >= {2 * self.modes - 2}")
        h_hat = jnp.fft.rfft(h, axis=0)[: self.modes]
        weight = self.weight_real + 1j * self.weight_imag
        y_hat = jnp.einsum("ki,kio->ko", h_hat, weight)
        y_hat = jnp.pad(y_hat, ((0, n // 2 + 1 - self.modes), (0, 0)))
        return jnp.fft.irfft(y_hat, n=n, axis=0).astype(h.dtype)


class SpectralConv2d(eqx.Module):
    """``(n1, n2, c_in) -> (n1, n2, c_out)``: a 2-D spectral convolution.

    With ``ĥ = rfft2(h)`` of shape ``(n1, n2//2 + 1, c_in)``, the kept modes are
    ``k₂ < modes2`` and either ``0 <= k₁ < modes1`` (weights ``R⁺``) or the ``modes1`` most
    negative frequencies ``n1 - modes1 <= k₁ < n1`` (weights ``R⁻``); ``ŷ = ĥ R`` there and 0
    elsewhere; the output is ``irfft2(ŷ)``.

    Attributes:
        weight_pos_real, weight_pos_imag: ``R⁺``, each ``(modes1, modes2, c_in, c_out)``.
        weight_neg_real, weight_neg_imag: ``R⁻``, same shape.
        in_channels, out_channels, modes1, modes2: static sizes.
    """

    weight_pos_real: jax.Array
    weight_pos_imag: jax.Array
    weight_neg_real: jax.Array
    weight_neg_imag: jax.Array
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    modes1: int = eqx.field(static=True)
    modes2: int = eqx.field(static=True)

    def __init__(
        self, in_channels: int, out_channels: int, modes1: int, modes2: int, *, key: jax.Array
    ):
        _check_widths([("in_channels", in_channels), ("out_channels", out_channels)])
        _check_widths([("modes1", modes1), ("modes2", modes2)])
        k_pos, k_neg = jax.random.split(key)
        shape = (modes1, modes2, in_channels, out_channels)
        self.weight_pos_real, self.weight_pos_imag = _spectral_weights(
            k_pos, shape, in_channels, out_channels
        )
        self.weight_neg_real, self.weight_neg_imag = _spectral_weights(
            k_neg, shape, in_channels, out_channels
        )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.modes1 = int(modes1)
        self.modes2 = int(modes2)

    def __call__(self, h: jax.Array) -> jax.Array:
        """Apply the convolution to ``h`` of shape ``(n1, n2, in_channels)``."""
        if h.ndim != 3 or h.shape[2] != self.in_channels:
            raise ValueError(
                f"SpectralConv2d expects (n1, n2, {self.in_channels}), got {jnp.shape(h)}"
            )
        n1, n2 = h.shape[:2]
        m1, m2 = self.modes1, self.modes2
        if 2 * m1 > n1 or m2 > n2 // 2 + 1:
            raise ValueError(
                f"SpectralConv2d: modes ({m1}, {m2}) need n1 >= {2 * m1} and "
                f"n2 >= {2 * m2 - 2}, got ({n1}, {n2})"
            )
        h_hat = jnp.fft.rfft2(h, axes=(0, 1))
        w_pos = self.weight_pos_real + 1j * self.weight_pos_imag
        w_neg = self.weight_neg_real + 1j * self.weight_neg_imag
        y_pos = jnp.einsum("abi,abio->abo", h_hat[:m1, :m2], w_pos)
        y_neg = jnp.einsum("abi,abio->abo", h_hat[n1 - m1 :, :m2], w_neg)
        y_hat = jnp.zeros((n1, n2 // 2 + 1, self.out_channels), y_pos.dtype)
        y_hat = y_hat.at[:m1, :m2].set(y_pos).at[n1 - m1 :, :m2].set(y_neg)
        return jnp.fft.irfft2(y_hat, s=(n1, n2), axes=(0, 1)).astype(h.dtype)


def _pointwise(layer: eqx.nn.Linear, h: jax.Array) -> jax.Array:
    """Apply ``layer`` to the channel vector at every grid point of ``h`` ``(..., c)``."""
    flat = h.reshape(-1, h.shape[-1])
    return jax.vmap(layer)(flat).reshape(*h.shape[:-1], -1)


def _grid(shape: tuple[int, ...], dtype) -> jax.Array:
    """Uniform coordinates in ``[0, 1]`` (end points included) on a grid, ``(*shape, ndim)``."""
    axes = [jnp.linspace(0.0, 1.0, n, dtype=dtype) for n in shape]
    return jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)


class FNO(eqx.Module):
    """A Fourier neural operator on a uniform 1-D or 2-D grid, channels last.

    Shapes: ``a`` is ``(n, in_channels)`` (``ndim=1``) or ``(n1, n2, in_channels)``
    (``ndim=2``); the output has the same grid shape with ``out_channels`` channels. One
    input function is one call; use ``jax.vmap`` for a batch.

    Attributes:
        lifting: point-wise ``eqx.nn.Linear`` ``(in_channels [+ ndim]) -> width``.
        spectral: the :class:`SpectralConv1d` / :class:`SpectralConv2d` layers ``R_l``.
        skips: the point-wise ``eqx.nn.Linear`` skips ``W_l``, ``width -> width``.
        projection: two point-wise ``eqx.nn.Linear``: ``width -> projection_width ->
            out_channels`` with ``activation`` between them.
        activation: the element-wise activation (static).
        ndim, in_channels, out_channels: static sizes.
        grid: append the grid coordinates to the input channels (static).
    """

    lifting: eqx.nn.Linear
    spectral: tuple[eqx.Module, ...]
    skips: tuple[eqx.nn.Linear, ...]
    projection: tuple[eqx.nn.Linear, eqx.nn.Linear]
    activation: Callable[[jax.Array], jax.Array] = eqx.field(static=True)
    ndim: int = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    grid: bool = eqx.field(static=True)

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        out_channels: int,
        modes: int | tuple[int, int],
        width: int = 32,
        num_layers: int = 4,
        projection_width: int = 128,
        activation: Callable[[jax.Array], jax.Array] = jax.nn.gelu,
        grid: bool = True,
        *,
        key: jax.Array,
    ) -> None:
        if ndim not in (1, 2):
            raise ValueError(f"FNO supports ndim 1 or 2, got {ndim!r}")
        _check_widths(
            [
                ("in_channels", in_channels),
                ("out_channels", out_channels),
                ("width", width),
                ("num_layers", num_layers),
                ("projection_width", projection_width),
            ]
        )
        modes = (modes,) * ndim if isinstance(modes, int) else tuple(modes)
        if len(modes) != ndim:
            raise ValueError(f"FNO(ndim={ndim}) needs {ndim} mode counts, got {modes!r}")
        keys = jax.random.split(key, 2 * num_layers + 3)
        lift_in = in_channels + (ndim if grid else 0)
        self.lifting = eqx.nn.Linear(lift_in, width, key=keys[0])
        if ndim == 1:
            self.spectral = tuple(
                SpectralConv1d(width, width, modes[0], key=k) for k in keys[1 : num_layers + 1]
            )
        else:
            self.spectral = tuple(
                SpectralConv2d(width, width, *modes, key=k) for k in keys[1 : num_layers + 1]
            )
        self.skips = tuple(
            eqx.nn.Linear(width, width, key=k) for k in keys[num_layers + 1 : 2 * num_layers + 1]
        )
        self.projection = (
            eqx.nn.Linear(width, projection_width, key=keys[-2]),
            eqx.nn.Linear(projection_width, out_channels, key=keys[-1]),
        )
        self.activation = activation
        self.ndim = int(ndim)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.grid = bool(grid)

    def __call__(self, a: jax.Array) -> jax.Array:
        """Map one input function ``(*grid, in_channels)`` to ``(*grid, out_channels)``."""
        if a.ndim != self.ndim + 1 or a.shape[-1] != self.in_channels:
            raise ValueError(
                f"FNO (ndim={self.ndim}) expects one function of shape (*grid, "
                f"{self.in_channels}) with {self.ndim} grid axes, got {jnp.shape(a)}; use "
                "jax.vmap for batches"
            )
        if self.grid:
            a = jnp.concatenate([a, _grid(a.shape[:-1], a.dtype)], axis=-1)
        h = _pointwise(self.lifting, a)
        last = len(self.spectral) - 1
        for i, (conv, skip) in enumerate(zip(self.spectral, self.skips)):
            h = conv(h) + _pointwise(skip, h)
            if i < last:
                h = self.activation(h)
        h = self.activation(_pointwise(self.projection[0], h))
        return _pointwise(self.projection[1], h)


def fno1d(
    in_channels: int = 1,
    out_channels: int = 1,
    modes: int = 16,
    width: int = 32,
    num_layers: int = 4,
    projection_width: int = 128,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.gelu,
    grid: bool = True,
    *,
    key: jax.Array,
) -> FNO:
    """A 1-D FNO: ``(n, in_channels) -> (n, out_channels)`` on a uniform grid of ``n`` points.

    ``modes`` is the number of lowest Fourier modes kept per layer (needs
    ``n >= 2 · modes - 2``); the other arguments are documented on :class:`FNO`.
    """
    return FNO(
        1,
        in_channels,
        out_channels,
        modes,
        width=width,
        num_layers=num_layers,
        projection_width=projection_width,
        activation=activation,
        grid=grid,
        key=key,
    )


def fno2d(
    in_channels: int = 1,
    out_channels: int = 1,
    modes: int | tuple[int, int] = 12,
    width: int = 32,
    num_layers: int = 4,
    projection_width: int = 128,
    activation: Callable[[jax.Array], jax.Array] = jax.nn.gelu,
    grid: bool = True,
    *,
    key: jax.Array,
) -> FNO:
    """A 2-D FNO: ``(n1, n2, in_channels) -> (n1, n2, out_channels)`` on a uniform grid.

    ``modes`` (an int or ``(modes1, modes2)``) keeps ``modes1`` positive and ``modes1``
    negative frequencies along the first axis and ``modes2`` along the second.
    """
    return FNO(
        2,
        in_channels,
        out_channels,
        modes,
        width=width,
        num_layers=num_layers,
        projection_width=projection_width,
        activation=activation,
        grid=grid,
        key=key,
    )
