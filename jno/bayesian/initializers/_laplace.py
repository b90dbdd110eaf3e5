"""Laplace warm start: MAP by optax, then the curvature of -log p at the MAP."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import optax
from jax.flatten_util import ravel_pytree

from ._base import (
    BayesianInitializer,
    GradCounter,
    LogDensityFn,
    PyTree,
    check_num_chains,
    is_traced,
    unravel_starts,
)

logger = logging.getLogger(__name__)


def minimize(
    objective: Callable[[jax.Array], jax.Array],
    x0: jax.Array,
    optimizer: optax.GradientTransformationExtraArgs,
    num_steps: int,
    gtol: float,
    ftol: float,
) -> tuple[jax.Array, jax.Array]:
    """Minimise ``objective`` over a flat vector with an optax optimizer.

    Iterates ``x_{k+1} = x_k + update(∇f(x_k))`` and stops at the first of: ``‖∇f(x_k)‖₂ ≤
    gtol``; ``|f(x_{k-1}) - f(x_k)| ≤ ftol · max(|f(x_{k-1})|, |f(x_k)|, 1)`` (the objective
    has stopped changing, e.g. at float32 resolution); ``num_steps`` updates. The optimizer
    is called with ``value``, ``grad`` and ``value_fn`` keyword arguments, so line-search
    optimizers such as ``optax.lbfgs()`` work; when the optimizer state caches the value and
    gradient of the accepted point (``optax.lbfgs`` does), they are reused.

    Args:
        objective: ``(D,) -> scalar``.
        x0: ``(D,)`` start.
        optimizer: an optax transformation accepting extra arguments.
        num_steps: maximum number of updates.
        gtol: gradient-norm tolerance.
        ftol: relative objective-change tolerance.

    Returns:
        ``(x, converged)``: the final ``(D,)`` point and whether a tolerance (not the step
        budget) stopped the search.
    """
    opt_state = optimizer.init(x0)
    if optax.tree.get(opt_state, "value", None) is not None:
        value_and_grad = optax.value_and_grad_from_state(objective)
    else:

        def value_and_grad(x: jax.Array, state: optax.OptState) -> tuple[jax.Array, jax.Array]:
            del state
            return jax.value_and_grad(objective)(x)

    def converged(carry: tuple) -> jax.Array:
        _, _, value, grad, previous, _ = carry
        scale = jnp.maximum(jnp.maximum(jnp.abs(previous), jnp.abs(value)), 1.0)
        return (jnp.linalg.norm(grad) <= gtol) | (jnp.abs(previous - value) <= ftol * scale)

    def not_done(carry: tuple) -> jax.Array:
        return (carry[-1] < num_steps) & ~converged(carry)

    def step_fn(carry: tuple) -> tuple:
        x, state, value, grad, _, step = carry
        updates, state = optimizer.update(
            grad, state, x, value=value, grad=grad, value_fn=objective
        )
        x_new = optax.apply_updates(x, updates)
        value_new, grad_new = value_and_grad(x_new, state=state)
        return x_new, state, value_new, grad_new, value, step + 1

    value0, grad0 = jax.value_and_grad(objective)(x0)
    init = (x0, opt_state, value0, grad0, jnp.full_like(value0, jnp.nan), jnp.asarray(0))
    final = jax.lax.while_loop(not_done, step_fn, init)
    return final[0], converged(final)


def hessian_diagonal(
    objective: Callable[[jax.Array], jax.Array], x: jax.Array, batch_size: int
) -> jax.Array:
    """Exact diagonal of the Hessian of ``objective`` at ``x`` without forming it.

    ``H_ii = e_iᵀ H e_i`` where ``H e_i`` is a Hessian-vector product, computed
    forward-over-reverse: ``∇f`` is linearised once at ``x`` (``jax.linearize``) and the
    linear map is applied to ``batch_size`` unit vectors at a time. Peak extra memory is
    ``O(batch_size · D)``; no ``D×D`` array is built. Cost: ``D`` Hessian-vector products.

    Args:
        objective: ``(D,) -> scalar``.
        x: ``(D,)`` point.
        batch_size: unit vectors per vectorised chunk.

    Returns:
        ``(D,)`` array ``diag(∇²f(x))``.
    """
    dim = x.shape[0]
    _, hvp = jax.linearize(jax.grad(objective), x)

    def diagonal_entry(i: jax.Array) -> jax.Array:
        return hvp(jax.nn.one_hot(i, dim, dtype=x.dtype))[i]

    return jax.lax.map(diagonal_entry, jnp.arange(dim), batch_size=batch_size)


@dataclasses.dataclass
class Laplace(BayesianInitializer):
    r"""Warm starts and a mass matrix from a Laplace (Gaussian) approximation at the MAP.

    With ``f(θ) = -log p(θ)`` on the raveled position ``θ ∈ R^D``:

    1. ``θ* = argmin f`` by ``optimizer`` from the current position (stopping rules in
       :func:`minimize`; a warning is logged when the step budget ran out first). The
       default optimizer is ``optax.lbfgs()`` (zoom line search): on the smooth, often
       ill-conditioned posteriors of physics-informed models it converges in far fewer
       gradient evaluations than a first-order method and needs no learning rate.
    2. ``H = ∇²f(θ*) + δ I`` with ``δ = damping``, and ``p(θ) ≈ N(θ*, H⁻¹)``
       (MacKay 1992; Daxberger et al. 2021 §2).

    ``hessian="diag"`` keeps only ``diag(H)``, computed exactly by ``D`` Hessian-vector
    products in chunks (:func:`hessian_diagonal`; memory ``O(hvp_batch_size · D)``, no
    ``D×D`` array), and uses ``N(θ*, diag(H)⁻¹)``: ``inverse_mass_matrix = 1 / diag(H)``,
    shape ``(D,)``. ``1 / H_ii`` is the conditional variance of ``θ_i``; with correlated
    parameters it is smaller than the marginal variance ``(H⁻¹)_ii``.

    ``hessian="full"`` forms ``H`` (``D×D`` via ``jax.hessian``; small ``D`` only), its
    Cholesky factor ``H = L Lᵀ`` and ``H⁻¹``. ``inverse_mass_matrix`` is ``diag(H⁻¹)``
    (the marginal variances, ``(D,)``) or, with ``dense_imm=True``, the dense ``(D, D)``
    ``H⁻¹``, which blackjax's HMC and NUTS accept as an inverse mass matrix.

    Starts: ``θ*`` for ``K == 1``; for ``K > 1``, ``K`` i.i.d. draws from the approximation,
    ``θ* + diag(H)^{-1/2} z`` (``"diag"``) or ``θ* + L⁻ᵀ z`` (``"full"``), ``z ~ N(0, I_D)``.

    :attr:`last_num_grad_evals` counts the gradients spent by the MAP search; the curvature
    step adds ``D`` Hessian-vector products (both modes; ``jax.hessian`` is forward-over-
    reverse too).

    Args:
        optimizer: optax transformation for the MAP search; ``None`` for ``optax.lbfgs()``.
        num_steps: maximum optimizer updates.
        hessian: ``"diag"`` or ``"full"``.
        gtol: gradient-norm tolerance of the MAP search.
        ftol: relative objective-change tolerance of the MAP search; ``None`` means ``1e-7``
            (about float32 resolution) with the default L-BFGS, whose accepted steps decrease
            ``f`` monotonically, and ``0`` (off) with a user optimizer, whose steps need not.
        damping: ``δ ≥ 0`` added to the Hessian diagonal, for flat or non-convex directions.
        dense_imm: with ``hessian="full"``, return the dense ``(D, D)`` inverse Hessian.
        hvp_batch_size: unit vectors per vectorised Hessian-vector-product chunk (``"diag"``).

    Raises:
        ValueError: when called outside a JAX transformation, if the damped Hessian is not
            positive definite at the optimum found (or the search diverged); increase
            ``damping`` or add a prior. Under a transformation the check (and the
            non-convergence warning) cannot run and non-finite values pass through.
    """

    optimizer: optax.GradientTransformation | None = None
    num_steps: int = 500
    hessian: Literal["diag", "full"] = "diag"
    gtol: float = 1e-6
    ftol: float | None = None
    damping: float = 0.0
    dense_imm: bool = False
    hvp_batch_size: int = 64

    def __post_init__(self) -> None:
        if self.hessian not in ("diag", "full"):
            raise ValueError(f"hessian must be 'diag' or 'full', got {self.hessian!r}")
        if self.dense_imm and self.hessian != "full":
            raise ValueError("dense_imm=True needs hessian='full'")
        if self.damping < 0:
            raise ValueError(f"damping must be >= 0, got {self.damping}")

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
        if self.optimizer is None:
            # a few ulps of the working precision: L-BFGS can cycle between float-adjacent
            # points whose objectives differ by 2 ulp (≈ 2.4e-7 relative in float32)
            optimizer, ftol = optax.lbfgs(), 10 * float(jnp.finfo(flat0.dtype).eps)
        else:
            optimizer, ftol = optax.with_extra_args_support(self.optimizer), 0.0
        if self.ftol is not None:
            ftol = self.ftol

        def neg_logdensity(x: jax.Array) -> jax.Array:
            return -logdensity_fn(unravel(x))

        @jax.jit
        def run(x0: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
            x_map, converged = minimize(
                lambda x: -counted_logdensity(unravel(x)),
                x0,
                optimizer,
                self.num_steps,
                self.gtol,
                ftol,
            )
            dim = x_map.shape[0]
            if self.hessian == "diag":
                precision = hessian_diagonal(neg_logdensity, x_map, self.hvp_batch_size)
                variances = 1.0 / (precision + self.damping)
                inverse_mass_matrix = variances

                def deviation(z: jax.Array) -> jax.Array:
                    return z * jnp.sqrt(variances)

            else:
                identity = jnp.eye(dim, dtype=x_map.dtype)
                hess = jax.hessian(neg_logdensity)(x_map)
                hess = 0.5 * (hess + hess.T) + self.damping * identity
                chol = jnp.linalg.cholesky(hess)
                covariance = jsl.cho_solve((chol, True), identity)
                variances = jnp.diag(covariance)
                inverse_mass_matrix = covariance if self.dense_imm else variances

                def deviation(z: jax.Array) -> jax.Array:
                    # Cov(L^{-T} z) = L^{-T} L^{-1} = (L L^T)^{-1} = H^{-1}.
                    return jsl.solve_triangular(chol.T, z.T, lower=False).T

            if num_chains == 1:
                starts = x_map
            else:
                noise = jax.random.normal(rng_key, (num_chains, dim), x_map.dtype)
                starts = x_map + deviation(noise)
            positive_definite = jnp.all(jnp.isfinite(variances) & (variances > 0))
            return starts, inverse_mass_matrix, converged, positive_definite

        flat_starts, inverse_mass_matrix, converged, positive_definite = run(flat0)
        self.last_num_grad_evals = counter.total(flat_starts)
        if not is_traced(positive_definite):
            if not bool(positive_definite):
                raise ValueError(
                    "laplace: the Hessian of -log density at the optimum is not positive "
                    "definite (or the MAP search diverged); increase `damping`, add a prior, "
                    "or check the log-density."
                )
            if not bool(converged):
                logger.warning(
                    "laplace: the MAP search used all num_steps=%d updates without meeting "
                    "gtol=%g or ftol=%g; the Gaussian approximation may be centred off the mode.",
                    self.num_steps,
                    self.gtol,
                    ftol,
                )
        return (
            unravel_starts(flat_starts, unravel, num_chains),
            {"inverse_mass_matrix": inverse_mass_matrix},
        )


laplace = Laplace
