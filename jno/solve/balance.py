"""Loss balancing: constraint weights that adapt inside the compiled step.

A balancer is an optax-like pair ``init(num_constraints) -> state`` and
``update(state, params, *, losses_fn, residuals_fn, key, step) -> state``; ``state.weights``
``(C,)`` multiplies the per-constraint losses of the trained (optax) models'
objective ``Σ_k λ_k L_k`` (user factors such as ``10 * bc.mse`` are part of ``L_k``). The
state is ``SolveState.balance``, so it is part of the solve
state (continuation, checkpoints); the weights are recorded in the history as
``"weight:<constraint>"`` at every step.

``jno.core(constraints, weights=jno.balance.grad_norm(alpha=0.1, every=10))``.

Balancers reweight the optax loss only: a crux with a Bayesian (``.bayesian``/``.vi``) or
ensemble model is refused (:func:`check`), so no log-density is ever reweighted.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ..trace.pointset import default_float


class BalanceState(NamedTuple):
    """``weights (C,)``; ``first``/``previous`` ``(C,)`` losses at the first and the last
    update (ReLoBRaLo's lookback; zeros for the other balancers); ``started`` whether an
    update has run."""

    weights: jax.Array
    first: jax.Array
    previous: jax.Array
    started: jax.Array


def _init(num_constraints: int) -> BalanceState:
    ones = jnp.ones((num_constraints,), default_float())
    zeros = jnp.zeros((num_constraints,), default_float())
    return BalanceState(ones, zeros, zeros, jnp.zeros((), bool))


def _flat_abs(tree) -> jax.Array:
    """``(C, P)`` absolute values of a per-constraint gradient pytree (leading axis C)."""
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))
    return jnp.concatenate([jnp.abs(a.reshape(a.shape[0], -1)) for a in leaves], axis=1)


class Balancer:
    """Base class: ``every`` steps (global step index ``i % every == 0``) the weights are
    recomputed by :meth:`new_weights`; in between they are held."""

    name = "balancer"

    def __init__(self, every: int):
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(
                f"jno.balance.{self.name}: every must be a positive int, got {every!r}"
            )
        self.every = every

    def init(self, num_constraints: int) -> BalanceState:
        return _init(num_constraints)

    def update(self, state: BalanceState, params, *, losses_fn, residuals_fn, key, step):
        """The state for step ``step``: ``losses_fn(params) -> (C,)``, ``residuals_fn(params)
        -> [(scale_k, r_k (n_k, ...))]``; ``key`` from the ``balance`` stream."""

        def recompute(s):
            return self.new_state(s, params, losses_fn, residuals_fn, key)

        return jax.lax.cond(step % self.every == 0, recompute, lambda s: s, state)

    def new_state(self, state, params, losses_fn, residuals_fn, key) -> BalanceState:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"jno.balance.{self.name}({fields})"


class GradNorm(Balancer):
    """Learning-rate annealing (Wang, Teng & Perdikaris 2021, Algorithm 1).

    With ``g_k = ∇_θ L_k`` over every trained parameter and ``r`` the reference constraint:
    ``λ̂_k = max_θ |g_r| / mean_θ |λ_k g_k|`` (the weighted loss's gradient, as in the
    paper's Algorithm 1 and code) and ``λ_k ← (1 - α) λ_k + α λ̂_k``; ``λ_r = 1``.
    """

    name = "grad_norm"

    def __init__(self, alpha: float = 0.1, every: int = 10, reference: int = 0):
        super().__init__(every)
        if not 0 < alpha <= 1:
            raise ValueError(f"jno.balance.grad_norm: alpha must be in (0, 1], got {alpha!r}")
        if not isinstance(reference, int) or reference < 0:
            raise ValueError(
                f"jno.balance.grad_norm: reference must be a constraint index, got {reference!r}"
            )
        self.alpha = float(alpha)
        self.reference = reference

    def new_state(self, state, params, losses_fn, residuals_fn, key):
        grads = _flat_abs(jax.jacrev(losses_fn)(params))
        target = jnp.max(grads[self.reference]) / (state.weights * jnp.mean(grads, axis=1))
        weights = (1 - self.alpha) * state.weights + self.alpha * target
        weights = weights.at[self.reference].set(1.0)
        return state._replace(weights=weights, started=jnp.ones((), bool))


class NTKTrace(Balancer):
    """NTK-trace weights (Wang, Yu & Perdikaris 2022, Algorithm 1).

    For constraint ``k = c_k · reduce(r_k)`` the NTK block is ``K_k = J_k J_kᵀ`` with
    ``J_k = ∂(√c_k r_k)/∂θ`` over its ``n_k`` points, ``tr K_k = c_k Σ_i |∂r_k(x_i)/∂θ|²``,
    and ``λ_k = Σ_j tr K_j / tr K_k``. ``per_point=True`` uses ``tr K_k / n_k`` instead
    (jaxpi's variant, insensitive to the point counts).
    """

    name = "ntk_trace"

    def __init__(self, every: int = 100, per_point: bool = False):
        super().__init__(every)
        self.per_point = bool(per_point)

    def new_state(self, state, params, losses_fn, residuals_fn, key):
        traces = []
        for k in range(state.weights.shape[0]):

            def flat(p, k=k):
                scale, r = residuals_fn(p)[k]
                return jnp.sqrt(scale) * jnp.reshape(r, (-1,))

            jac = jax.jacrev(flat)(params)
            sq = _flat_abs(jac) ** 2
            trace = jnp.sum(sq)
            traces.append(trace / sq.shape[0] if self.per_point else trace)
        traces = jnp.stack(traces)
        weights = jnp.sum(traces) / traces
        return state._replace(weights=weights, started=jnp.ones((), bool))


class ReLoBRaLo(Balancer):
    """Relative loss balancing with random lookback (Bischof & Kraus 2021).

    With ``m`` constraints, ``bal(t', t)_k = m · softmax_k(L_k(t) / (T L_k(t')))``:
    ``λ(t) = α (ρ λ(t-1) + (1 - ρ) bal(0, t)) + (1 - α) bal(t-1, t)``, ``ρ ~ Bernoulli(E[ρ])``
    drawn from the ``balance`` stream at each update. The first update sets ``L(0)`` and
    ``λ = 1``. ``t-1`` is the previous update (``every`` steps earlier).
    """

    name = "relobralo"

    def __init__(
        self,
        alpha: float = 0.999,
        expected_rho: float = 0.999,
        temperature: float = 0.1,
        every: int = 1,
    ):
        super().__init__(every)
        for label, v in (("alpha", alpha), ("expected_rho", expected_rho)):
            if not 0 <= v <= 1:
                raise ValueError(f"jno.balance.relobralo: {label} must be in [0, 1], got {v!r}")
        if not temperature > 0:
            raise ValueError(
                f"jno.balance.relobralo: temperature must be positive, got {temperature!r}"
            )
        self.alpha = float(alpha)
        self.expected_rho = float(expected_rho)
        self.temperature = float(temperature)

    def balance(self, now, then):
        m = now.shape[0]
        tiny = jnp.finfo(now.dtype).tiny
        return m * jax.nn.softmax(now / (self.temperature * then + tiny))

    def new_state(self, state, params, losses_fn, residuals_fn, key):
        losses = jax.lax.stop_gradient(losses_fn(params))
        rho = jax.random.bernoulli(key, self.expected_rho).astype(losses.dtype)
        hist = rho * state.weights + (1 - rho) * self.balance(losses, state.first)
        weights = self.alpha * hist + (1 - self.alpha) * self.balance(losses, state.previous)
        weights = jnp.where(state.started, weights, jnp.ones_like(weights))
        first = jnp.where(state.started, state.first, losses)
        return BalanceState(weights, first, losses, jnp.ones((), bool))


def grad_norm(alpha: float = 0.1, every: int = 10, reference: int = 0) -> GradNorm:
    """Learning-rate annealing by gradient statistics (:class:`GradNorm`); ``alpha`` is the
    paper's moving-average weight of the new estimate (jaxpi's ``momentum = 1 - alpha``)."""
    return GradNorm(alpha, every, reference)


def ntk_trace(every: int = 100, per_point: bool = False) -> NTKTrace:
    """NTK-trace weights (:class:`NTKTrace`)."""
    return NTKTrace(every, per_point)


def relobralo(
    alpha: float = 0.999, expected_rho: float = 0.999, temperature: float = 0.1, every: int = 1
) -> ReLoBRaLo:
    """Relative loss balancing with random lookback (:class:`ReLoBRaLo`)."""
    return ReLoBRaLo(alpha, expected_rho, temperature, every)


def check(balancer, program, plan) -> None:
    """Refuse a balancer that is not one, or one that would reweight a log-density or an
    ensemble's loss (raised at ``jno.core`` and at solve start)."""
    if balancer is None:
        return
    if not isinstance(balancer, Balancer):
        raise TypeError(
            f"jno.core(weights=...): expected a balancer such as jno.balance.grad_norm(), "
            f"jno.balance.ntk_trace() or jno.balance.relobralo(), got {type(balancer).__name__}"
        )
    others = [b for b in plan.blocks if b is not plan.optax]
    if others:
        kind = "an ensemble" if others[0].population == "members" else "a Bayesian (sampled)"
        raise ValueError(
            f"jno.core(weights={balancer!r}): model(s) {others[0].label} are {kind} block; "
            "loss balancing reweights only the loss of trained (optax) models and would "
            "silently change a log-density or an ensemble's loss. Remove weights=, or fix "
            "constant weights in the constraints (e.g. 10 * bc.mse)."
        )
    if plan.optax is None:
        raise ValueError(
            f"jno.core(weights={balancer!r}): no model is trained by optax, so there is no "
            "loss to balance; remove weights=."
        )
    if isinstance(balancer, GradNorm) and balancer.reference >= len(program.constraints):
        raise ValueError(
            f"jno.balance.grad_norm(reference={balancer.reference}): the crux has "
            f"{len(program.constraints)} constraints; pass the index of the residual loss."
        )


def check_causal(program, plan) -> None:
    """A ``causal_mse`` constraint may not enter a sampled log-density: its weights carry no
    gradient, so HMC-type kernels would follow the gradient of another function."""
    from ..lower.causal import causal_nodes
    from ..lower.evaluate import GraphPlan

    sampled = {m.model.uid: blk for blk in plan.sampling for m in blk.members}
    for name, c in zip(program.names, program.constraints):
        if not causal_nodes(c):
            continue
        for m in GraphPlan([c]).models:
            if m.uid in sampled:
                raise ValueError(
                    f"jno.core: constraint '{name}' uses .causal_mse, whose slice weights are "
                    f"held constant (stop_gradient), and model {m.where} is sampled "
                    "(.bayesian/.vi), so its log-density would not be a density; use .mse "
                    "or .gaussian(std=...) in the Bayesian stage."
                )


def constraint_residuals(program) -> list:
    """``[(c_k, r_k)]``: each constraint as a constant factor times a reduction (``.mse``,
    ``.mean``, ``.causal_mse``, ...) of the residual node ``r_k``."""
    out = []
    for name, c in zip(program.names, program.constraints):
        scale, node = 1.0, c
        if getattr(node, "fn", None) is jnp.multiply and len(node.args) == 2:
            consts = [a for a in node.args if a.constant is not None]
            rest = [a for a in node.args if a.constant is None]
            if len(consts) == 1 and len(rest) == 1:
                scale, node = float(consts[0].constant), rest[0]
        if node.residual is None or node.calibrated:  # a loss reduction, not a likelihood
            raise ValueError(
                f"jno.balance.ntk_trace: constraint '{name}' is not a constant times a "
                "reduction of a residual (e.g. r.mse or 10 * r.mse), so its NTK block is not "
                "defined; use grad_norm() or relobralo() for it."
            )
        out.append((scale, node.residual))
    return out


def residuals_of(program, params: dict, inputs: dict) -> list:
    """``[(c_k, r_k values (n_k, ...))]`` at ``params`` on ``inputs``."""
    from ..lower.evaluate import Evaluator, GraphPlan

    pairs = constraint_residuals(program)
    plan = GraphPlan([r for _, r in pairs])
    ev = Evaluator(plan, program.statics, params, inputs)
    return [(c, ev.value(r)) for c, r in pairs]


def history_metrics(records, names, n: int):
    """``(name, values (n,))`` of the recorded weights of a chunk (``"weight:<constraint>"``)
    from its :class:`~jno.solve.records.ChunkRecord`."""
    if records.balance_weights is None:
        return
    w = jax.device_get(records.balance_weights)
    for k, name in enumerate(names):
        yield f"weight:{name}", w[:n, k]
