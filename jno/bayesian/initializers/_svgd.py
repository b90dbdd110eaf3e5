"""Stein variational gradient descent warm start (Liu & Wang 2016) via blackjax."""

from __future__ import annotations

import dataclasses

import blackjax
import jax
import jax.numpy as jnp
import optax
from blackjax.vi.svgd import rbf_kernel, update_median_heuristic
from jax.flatten_util import ravel_pytree

from ._base import (
    BayesianInitializer,
    LogDensityFn,
    PyTree,
    check_num_chains,
    unravel_starts,
)


@dataclasses.dataclass
class SVGD(BayesianInitializer):
    r"""Warm starts (and a diagonal mass matrix) from a set of SVGD particles.

    ``n = max(num_particles, K)`` particles ``x_j ∈ R^D`` (raveled positions) start at
    ``θ₀ + init_scale · ε_j``, ``ε_j ~ N(0, I_D)``, and follow ``num_steps`` updates of
    ``optimizer`` along the Stein direction (Liu & Wang 2016, §3)

        ``φ(x_i) = (1/n) Σ_j [k(x_j, x_i) ∇log p(x_j) + ∇_{x_j} k(x_j, x_i)]``,

    with the RBF kernel ``k(x, y) = exp(-‖x - y‖² / h)`` whose bandwidth is reset every step
    by the median heuristic ``h = median_{i<j} ‖x_i - x_j‖² / log n`` (blackjax's
    ``rbf_kernel`` and ``update_median_heuristic``).

    Outputs:

    * ``K > 1``: the first ``K`` particles (the particles are exchangeable), ``(K, D)``
      before unraveling.
    * ``K == 1``: the particle with the highest log-density (a point in a high-density
      region even when the particles straddle several modes, where their mean need not be).
    * ``{"inverse_mass_matrix": (D,)}``, the per-dimension particle variance, when
      ``n ≥ imm_min_particles``; otherwise no mass matrix is returned. The relative standard
      error of a variance from ``n`` Gaussian draws is ``√(2 / (n - 1))`` (≈ 37 % at 16).

    Finite-particle SVGD with one isotropic bandwidth under-estimates variances, the more so
    as ``D / n`` grows (measured on a diagonal Gaussian with 64 particles: about 5 % low at
    ``D = 1``, 8-10 % at ``D = 2``, 15-22 % at ``D = 3``), and it leaves the spread along
    directions much narrower than the bandwidth poorly determined. The mass matrix is a
    starting point for window adaptation, not a posterior estimate.

    Cost: ``n`` gradients and ``O(n² D)`` kernel work per step; :attr:`last_num_grad_evals`
    is set to the total ``n · num_steps`` (known in advance, so no counting overhead).

    Args:
        num_steps: SVGD updates.
        optimizer: optax transformation applied to ``-φ``; ``None`` for Adam with a cosine
            learning-rate decay from ``0.1`` to ``1e-4`` over ``num_steps`` (large early
            moves, then settling at posterior widths far below ``0.1``).
        num_particles: minimum number of particles ``n`` (at least 2; ``n ≥ K`` always).
        init_scale: standard deviation of the initial jitter around ``θ₀``.
        imm_min_particles: smallest ``n`` for which a mass matrix is returned.
    """

    num_steps: int = 500
    optimizer: optax.GradientTransformation | None = None
    num_particles: int = 8
    init_scale: float = 0.1
    imm_min_particles: int = 16

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if self.num_particles < 2:
            raise ValueError(f"num_particles must be >= 2, got {self.num_particles}")
        if self.init_scale <= 0:
            raise ValueError(f"init_scale must be > 0, got {self.init_scale}")

    def __call__(
        self,
        rng_key: jax.Array,
        logdensity_fn: LogDensityFn,
        position: PyTree,
        num_chains: int,
    ) -> tuple[PyTree, dict[str, jax.Array]]:
        """See :meth:`BayesianInitializer.__call__`."""
        num_chains = check_num_chains(num_chains)
        flat0, unravel = ravel_pytree(position)
        num_particles = max(self.num_particles, num_chains)
        optimizer = self.optimizer
        if optimizer is None:
            optimizer = optax.adam(optax.cosine_decay_schedule(0.1, self.num_steps, alpha=1e-3))

        def logdensity_flat(x: jax.Array) -> jax.Array:
            return logdensity_fn(unravel(x))

        algorithm = blackjax.svgd(
            jax.grad(logdensity_flat),
            optimizer,
            kernel=rbf_kernel,
            update_kernel_parameters=update_median_heuristic,
        )

        return_imm = num_particles >= self.imm_min_particles

        @jax.jit
        def run(x0: jax.Array) -> tuple[jax.Array, jax.Array | None]:
            jitter = jax.random.normal(rng_key, (num_particles, x0.shape[0]), x0.dtype)
            state = update_median_heuristic(
                algorithm.init(x0 + self.init_scale * jitter, {"length_scale": 1.0})
            )
            state = jax.lax.fori_loop(0, self.num_steps, lambda _, s: algorithm.step(s), state)
            particles = state.particles
            if num_chains == 1:
                starts = particles[jnp.argmax(jax.vmap(logdensity_flat)(particles))]
            else:
                starts = particles[:num_chains]
            return starts, jnp.var(particles, axis=0) if return_imm else None

        flat_starts, particle_variance = run(flat0)
        self.last_num_grad_evals = num_particles * self.num_steps
        extra = {"inverse_mass_matrix": particle_variance} if return_imm else {}
        return unravel_starts(flat_starts, unravel, num_chains), extra


svgd = SVGD
