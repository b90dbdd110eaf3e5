"""DeepONet (Lu et al. 2021): learn an operator ``G: u ↦ G(u)`` from input-output pairs.

The input function ``u`` is seen through its values at ``m`` fixed sensors
``(u(x₁), ..., u(x_m))``; the output function is evaluated at any query point ``y``:

    G(u)(y)_o ≈ Σ_{k=1}^{p} b_{o,k}(u(x₁..x_m)) · t_{o,k}(y) + b0_o,     o = 1..num_outputs,

with ``b`` the *branch* net (on the sensor values) and ``t`` the *trunk* net (on ``y``), both
MLPs with ``p · num_outputs`` outputs; the trunk's last layer is followed by the activation
as in the paper. This is the unstacked DeepONet.

Reference:
    L. Lu, P. Jin, G. Pang, Z. Zhang, G. E. Karniadakis, "Learning nonlinear operators via
    DeepONet based on the universal approximation theorem of operators", Nature Machine
    Intelligence 3 (2021) 218-229.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .mlp import MLP, _check_widths, mlp


class DeepONet(eqx.Module):
    """An unstacked DeepONet ``(u (m,), y (d,)) -> (num_outputs,)``.

    Use it per query point (``net(u, y)``, which is what ``jno.nn.wrap`` calls inside
    expressions), or on a whole batch with :meth:`on_grid`.

    Attributes:
        branch: MLP ``(num_sensors,) -> (p · num_outputs,)``.
        trunk: MLP ``(coord_dim,) -> (p · num_outputs,)``; its output passes through
            ``activation`` when ``trunk_activation_last`` is set.
        bias: the output offsets ``b0``, shape ``(num_outputs,)``, zero at start.
        activation: the element-wise activation (static).
        num_sensors, coord_dim, basis_dim, num_outputs: ``m``, ``d``, ``p`` and the number of
            output components (static).
        trunk_activation_last: apply ``activation`` to the trunk output (static).
    """

    branch: MLP
    trunk: MLP
    bias: jax.Array
    activation: Callable[[jax.Array], jax.Array] = eqx.field(static=True)
    num_sensors: int = eqx.field(static=True)
    coord_dim: int = eqx.field(static=True)
    basis_dim: int = eqx.field(static=True)
    num_outputs: int = eqx.field(static=True)
    trunk_activation_last: bool = eqx.field(static=True)

    def __init__(
        self,
        num_sensors: int,
        coord_dim: int = 1,
        basis_dim: int = 40,
        num_outputs: int = 1,
        branch_widths: Sequence[int] = (40, 40),
        trunk_widths: Sequence[int] = (40, 40),
        activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
        trunk_activation_last: bool = True,
        *,
        key: jax.Array,
    ) -> None:
        """Build the branch and trunk MLPs (Glorot-normal weights, zero biases).

        Args:
            num_sensors: ``m``, the number of sensor values of the input function.
            coord_dim: ``d``, the dimension of a query point ``y``.
            basis_dim: ``p``, the number of basis functions per output component.
            num_outputs: number of output components (each gets its own ``p`` branch and
                trunk outputs).
            branch_widths: hidden widths of the branch MLP.
            trunk_widths: hidden widths of the trunk MLP.
            activation: used in both nets.
            trunk_activation_last: apply ``activation`` after the trunk's last layer too.
            key: PRNG key.
        """
        checks = [
            ("num_sensors", num_sensors),
            ("coord_dim", coord_dim),
            ("basis_dim", basis_dim),
            ("num_outputs", num_outputs),
        ]
        _check_widths(checks)
        k_branch, k_trunk = jax.random.split(key)
        width = basis_dim * num_outputs
        self.branch = mlp(
            num_sensors, width, tuple(branch_widths), activation=activation, key=k_branch
        )
        self.trunk = mlp(coord_dim, width, tuple(trunk_widths), activation=activation, key=k_trunk)
        self.bias = jnp.zeros((num_outputs,), jnp.result_type(float))
        self.activation = activation
        self.num_sensors = int(num_sensors)
        self.coord_dim = int(coord_dim)
        self.basis_dim = int(basis_dim)
        self.num_outputs = int(num_outputs)
        self.trunk_activation_last = bool(trunk_activation_last)

    def branch_features(self, u: jax.Array) -> jax.Array:
        """``(m,) -> (num_outputs, p)``: the coefficients ``b_{o,k}(u)``."""
        if jnp.shape(u) != (self.num_sensors,):
            raise ValueError(
                f"DeepONet branch expects the sensor values of one function, shape "
                f"({self.num_sensors},), got {jnp.shape(u)}"
            )
        return self.branch(u).reshape(self.num_outputs, self.basis_dim)

    def trunk_features(self, y: jax.Array) -> jax.Array:
        """``(d,) -> (num_outputs, p)``: the basis values ``t_{o,k}(y)``."""
        y = jnp.atleast_1d(y)
        if jnp.shape(y) != (self.coord_dim,):
            raise ValueError(
                f"DeepONet trunk expects one query point of shape ({self.coord_dim},), got "
                f"{jnp.shape(y)}"
            )
        t = self.trunk(y)
        if self.trunk_activation_last:
            t = self.activation(t)
        return t.reshape(self.num_outputs, self.basis_dim)

    def __call__(self, u: jax.Array, y: jax.Array) -> jax.Array:
        """``G(u)(y)``: sensor values ``(m,)`` and a query point ``(d,)`` -> ``(num_outputs,)``."""
        b = self.branch_features(u)
        t = self.trunk_features(y)
        return jnp.sum(b * t, axis=-1) + self.bias

    def on_grid(self, u: jax.Array, y: jax.Array) -> jax.Array:
        """All pairs at once: ``u`` ``(B, m)`` and ``y`` ``(N, d)`` -> ``(B, N, num_outputs)``.

        Computes the branch once per function and the trunk once per point, then contracts
        over ``p``; equal to ``vmap(vmap(net, (None, 0)), (0, None))(u, y)``.
        """
        b = jax.vmap(self.branch_features)(u)
        t = jax.vmap(self.trunk_features)(y)
        return jnp.einsum("bok,nok->bno", b, t) + self.bias
