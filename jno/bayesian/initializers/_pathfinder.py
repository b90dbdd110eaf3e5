"""Pathfinder warm start (Zhang et al. 2022) on top of blackjax's implementation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from blackjax.vi import pathfinder as bj_pathfinder
from jax.flatten_util import ravel_pytree

from ._base import (
    BayesianInitializer,
    GradCounter,
    LogDensityFn,
    PyTree,
    check_num_chains,
    unravel_starts,
)


@dataclasses.dataclass
class Pathfinder(BayesianInitializer):
    r"""Warm starts and a diagonal mass matrix from a Pathfinder normal approximation.

    L-BFGS minimises ``f(θ) = -log p(θ)`` from the current position. At every iterate
    ``θ_l`` of the path, the L-BFGS curvature pairs define an inverse-Hessian estimate
    ``Σ_l = diag(α_l) + β_l γ_l β_lᵀ`` (``D×D`` in factored form, ``β_l`` is ``(D, 2m)``
    with ``m = maxcor``) and the normal ``q_l = N(μ_l, Σ_l)`` with the quasi-Newton centre
    ``μ_l = θ_l + Σ_l ∇log p(θ_l)``. The iterate whose ``q_l`` has the largest Monte-Carlo
    ELBO (``num_samples`` draws) is kept; call it ``q = N(μ, Σ)``.

    Outputs, for ``D`` = raveled size of the position:

    * ``K == 1``: the start is ``μ`` (the centre of ``q``, i.e. the best-ELBO iterate plus
      one quasi-Newton step: the MAP estimate of the path).
    * ``K > 1``: ``K`` i.i.d. draws from ``q``, shape ``(K, D)`` before unraveling, so the
      chains start over-dispersed at the scale of the posterior.
    * ``{"inverse_mass_matrix": (D,)}``: the per-dimension sample variance of
      ``num_samples`` further draws from ``q``.

    The centre ``μ`` is computed here rather than by blackjax: in blackjax 1.7.1
    ``bfgs_sample`` receives the gradient of ``-log p`` where Algorithm 4 of the paper uses
    ``∇log p``, which reflects the Newton step and shifts every draw away from the mode. We
    therefore draw the zero-mean part from blackjax (its covariance is unaffected) and add
    ``μ`` ourselves. The best-ELBO selection inside blackjax still uses its own centres;
    near convergence the step is small and the selection is unaffected in practice.

    Cost: one gradient per L-BFGS iterate plus the line-search evaluations (counted exactly
    in :attr:`last_num_grad_evals`, including the one gradient used to form ``μ``), plus
    ``(maxiter + 1) · num_samples`` forward log-density evaluations for the ELBO estimates,
    and ``O(D · maxcor²)`` linear algebra per iterate.

    Args:
        maxiter: maximum L-BFGS iterations (path length).
        num_samples: draws per ELBO estimate, and the number ``M`` of draws from the chosen
            ``q`` used for the variance.
        maxcor: L-BFGS history size ``m``.
        ftol: stop when the relative decrease of ``f`` falls below this.
        gtol: stop when ``‖∇f‖₂`` falls below this.
        maxls: maximum line-search steps per iteration.
    """

    maxiter: int = 30
    num_samples: int = 200
    maxcor: int = 10
    ftol: float = 1e-5
    gtol: float = 1e-8
    maxls: int = 1000

    def __call__(
        self,
        rng_key: jax.Array,
        logdensity_fn: LogDensityFn,
        position: PyTree,
        num_chains: int,
    ) -> tuple[PyTree, dict[str, jax.Array]]:
        """See :meth:`BayesianInitializer.__call__`."""
        num_chains = check_num_chains(num_chains)
        counter = GradCounter()
        counted_logdensity = counter.wrap(logdensity_fn)
        flat0, unravel = ravel_pytree(position)
        key_fit, key_imm, key_starts = jax.random.split(rng_key, 3)

        def logdensity_flat(x: jax.Array) -> jax.Array:
            return counted_logdensity(unravel(x))

        @jax.jit
        def run(x0: jax.Array) -> tuple[jax.Array, jax.Array]:
            state, _ = bj_pathfinder.approximate(
                key_fit,
                logdensity_flat,
                x0,
                self.num_samples,
                maxiter=self.maxiter,
                maxcor=self.maxcor,
                ftol=self.ftol,
                gtol=self.gtol,
                maxls=self.maxls,
            )
            grad_logp = jax.grad(logdensity_flat)(state.position)
            centre = (
                state.position
                + state.alpha * grad_logp
                + state.beta @ (state.gamma @ (state.beta.T @ grad_logp))
            )
            # Zero gradient: blackjax then draws from N(state.position, Σ); re-centre at μ.
            centred = state._replace(grad_position=jnp.zeros_like(state.grad_position))

            def draw(key: jax.Array, n: int) -> jax.Array:
                return bj_pathfinder.sample(key, centred, n)[0] - state.position + centre

            inverse_mass_matrix = jnp.var(draw(key_imm, self.num_samples), axis=0)
            starts = centre if num_chains == 1 else draw(key_starts, num_chains)
            return starts, inverse_mass_matrix

        flat_starts, inverse_mass_matrix = run(flat0)
        self.last_num_grad_evals = counter.total(flat_starts)
        return (
            unravel_starts(flat_starts, unravel, num_chains),
            {"inverse_mass_matrix": inverse_mass_matrix},
        )


pathfinder = Pathfinder
