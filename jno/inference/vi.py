r"""An ensemble of mean-field Gaussian variational posteriors.

Member :math:`e` is a diagonal Gaussian over the inexact-array leaves of the
parameters, :math:`q_e(\theta) = \mathcal{N}(\theta\mid\mu_e,\operatorname{diag}\sigma_e^2)`
with :math:`\sigma_e = \exp(\rho_e)`; :math:`\mu_e` starts at ``init_fn(k_e)`` and
:math:`\rho_e` at ``log_std_init``. Non-inexact leaves (activation functions, integer
arrays) are not random and are copied from the initial parameters.

With the same log-joint contract as :class:`~jno.inference.EnsembleMAP`, each
member maximises the reparameterised evidence lower bound

.. math::

    \mathrm{ELBO}_\beta(\mu,\rho) = \mathbb{E}_{\varepsilon}\bigl[\,c\,\ell(\theta)
        + \beta\log p(\theta)\bigr] + \beta\,\mathbb{H}[q],
    \qquad \theta = \mu + e^{\rho}\odot\varepsilon,\ \varepsilon\sim\mathcal{N}(0,I),

estimated with ``num_particles`` draws of :math:`\varepsilon`; the entropy
:math:`\mathbb{H}[q] = \sum_j \bigl(\rho_j + \tfrac12\log(2\pi e)\bigr)` is exact.
Because :math:`\mathbb{E}_q[\log p(\theta)] + \mathbb{H}[q] = -\mathrm{KL}(q\,\|\,p)`,
``kl_weight`` :math:`\beta` multiplies the whole KL term, i.e. the prior's
cross-entropy *and* the entropy: :math:`\beta = 1` is the standard ELBO, and
:math:`\mathrm{ELBO}_\beta/\beta` is the standard ELBO of the tempered posterior
:math:`p(\theta\mid\mathcal{D}) \propto p(\mathcal{D}\mid\theta)^{c/\beta}p(\theta)`.
:math:`c` is ``scale`` (``N/|B|`` for mini-batches). The loss minimised is
:math:`-\mathrm{ELBO}_\beta`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jax.flatten_util import ravel_pytree

from jno.inference.batching import run_arguments, scan_epochs
from jno.inference.state import EnsembleResult, EnsembleState, ensemble_init
from jno.inference.step import LogJoint, ensemble_predict, member_update

PyTree = Any
_HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)


class MeanFieldGaussian(NamedTuple):
    """Variational parameters of one member (or, stacked, of the ensemble).

    Attributes:
        loc: the mean :math:`\\mu`, a full parameter pytree (non-array leaves included).
        log_scale: :math:`\\rho = \\log\\sigma`, the inexact-array part of ``loc``
            (``eqx.filter(loc, eqx.is_inexact_array)``) with matching shapes.
    """

    loc: PyTree
    log_scale: PyTree


def sample_params(q: MeanFieldGaussian, key: jax.Array) -> PyTree:
    """One reparameterised draw :math:`\\theta = \\mu + e^{\\rho}\\odot\\varepsilon` from ``q``.

    All weights are drawn in one call on the flattened vector (one RNG kernel to
    compile, whatever the number of leaves).
    """
    mean, static = eqx.partition(q.loc, eqx.is_inexact_array)
    flat_mean, unravel = ravel_pytree(mean)
    flat_log_scale, _ = ravel_pytree(q.log_scale)
    eps = jr.normal(key, flat_mean.shape, flat_mean.dtype)
    return eqx.combine(unravel(flat_mean + jnp.exp(flat_log_scale) * eps), static)


def entropy(q: MeanFieldGaussian) -> jax.Array:
    """Exact entropy :math:`\\sum_j (\\rho_j + \\tfrac12\\log 2\\pi e)` of one member."""
    return sum(
        (jnp.sum(r) + r.size * _HALF_LOG_2PI_E for r in jax.tree.leaves(q.log_scale)),
        start=jnp.zeros(()),
    )


class EnsembleVI(eqx.Module):
    """An ensemble of mean-field Gaussian posteriors fitted by the reparameterised ELBO.

    Attributes:
        log_joint: ``(params, x, y) -> (loglik, logprior)`` for one parameter draw.
        init_fn: ``key -> params``; gives each member's initial mean.
        optimizer: optax transformation acting on ``(loc, log_scale)``.
        ensemble_size: number of members ``E``.
        kl_weight: :math:`\\beta \\ge 0`, the weight of :math:`\\mathrm{KL}(q\\,\\|\\,p)`
            (module docstring); ``0`` drops both the prior and the entropy term.
        num_particles: Monte-Carlo draws per member per step.
        log_std_init: initial :math:`\\rho` (log standard deviation) of every weight.

    Example::

        vi = EnsembleVI(log_joint, init_mlp, optax.adam(5e-3), ensemble_size=8)
        result = vi.run(jax.random.PRNGKey(0), x, y, num_epochs=2000)
        preds = vi.predict(result.params, predict_fn, x_test,
                           key=jax.random.PRNGKey(1), num_samples=32)   # (8 * 32, N)
    """

    log_joint: LogJoint
    init_fn: Callable[[jax.Array], PyTree]
    optimizer: optax.GradientTransformation
    ensemble_size: int = eqx.field(default=16, static=True)
    kl_weight: float = eqx.field(default=1.0, static=True)
    num_particles: int = eqx.field(default=1, static=True)
    log_std_init: float = eqx.field(default=-3.0, static=True)

    def __check_init__(self) -> None:
        for name in ("ensemble_size", "num_particles"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"EnsembleVI: {name} must be an int >= 1, got {value!r}")
        if self.kl_weight < 0:
            raise ValueError(f"EnsembleVI: kl_weight must be >= 0, got {self.kl_weight}")

    def init(self, seed: jax.Array) -> EnsembleState:
        """Stacked initial state; member ``e``'s mean is ``init_fn(split(seed, E)[e])``."""

        def init_member(key: jax.Array) -> MeanFieldGaussian:
            loc = self.init_fn(key)
            log_scale = jax.tree.map(
                lambda a: jnp.full_like(a, self.log_std_init),
                eqx.filter(loc, eqx.is_inexact_array),
            )
            return MeanFieldGaussian(loc=loc, log_scale=log_scale)

        return ensemble_init(
            init_member, self.optimizer, ensemble_size=self.ensemble_size, seed=seed
        )

    def loss(
        self, q: MeanFieldGaussian, x: PyTree, y: PyTree, key: jax.Array, scale: float = 1.0
    ) -> jax.Array:
        """Monte-Carlo estimate of :math:`-\\mathrm{ELBO}_\\beta` for one member."""
        use_kl = self.kl_weight != 0

        def particle(k: jax.Array) -> jax.Array:
            loglik, logprior = self.log_joint(sample_params(q, k), x, y)
            value = scale * loglik
            if use_kl:
                value = value + self.kl_weight * logprior
            return value

        expected = jnp.mean(jax.vmap(particle)(jr.split(key, self.num_particles)))
        if use_kl:
            expected = expected + self.kl_weight * entropy(q)
        return -expected

    def update(
        self, state: EnsembleState, x: PyTree, y: PyTree, key: jax.Array, *, scale: float = 1.0
    ) -> tuple[EnsembleState, jax.Array]:
        """One ELBO step of every member; member ``e`` uses ``split(key, E)[e]``.

        Returns:
            ``(new_state, losses)`` with ``losses`` (the negative ELBO estimates before the
            step) of shape ``(E,)``.
        """

        loss = functools.partial(self.loss, scale=scale)

        def member(q, opt_state, xb, yb, k):
            return member_update(loss, self.optimizer, q, opt_state, xb, yb, k)

        axes = (eqx.if_array(0), eqx.if_array(0), None, None, 0)
        q, opt_state, losses = eqx.filter_vmap(member, in_axes=axes)(
            state.params, state.opt_state, x, y, jr.split(key, self.ensemble_size)
        )
        return EnsembleState(params=q, opt_state=opt_state), losses

    def fit(
        self,
        state: EnsembleState,
        x: PyTree,
        y: PyTree,
        key: jax.Array,
        num_epochs: int,
        batch_size: int | None = None,
    ) -> tuple[EnsembleState, jax.Array]:
        """Continue training for ``num_epochs`` epochs in one compiled ``lax.scan``.

        ``key`` draws mini-batches and the per-step Monte-Carlo keys as documented in
        :mod:`jno.inference.batching`. Returns ``(final_state, losses (E, num_epochs))``.
        """
        return _fit(self, state, x, y, key, num_epochs, batch_size)

    def run(self, seed: jax.Array, *args: Any, **kwargs: Any) -> EnsembleResult:
        """Initialise and train; ``seed`` splits into ``(init_key, data_key)``.

        Called as ``run(seed, num_epochs, x, y, batch_size=None)`` (pyrox's and NumPyro's
        order) or ``run(seed, x, y, num_epochs, batch_size=None)``; an int right after
        ``seed`` is the epoch count (see :func:`~jno.inference.batching.run_arguments`).

        Returns:
            :class:`EnsembleResult` whose ``params`` is the stacked :class:`MeanFieldGaussian`.
        """
        x, y, num_epochs, batch_size = run_arguments("EnsembleVI.run", args, kwargs)
        init_key, data_key = jr.split(seed)
        state, losses = self.fit(self.init(init_key), x, y, data_key, num_epochs, batch_size)
        return EnsembleResult(params=state.params, losses=losses)

    def sample(self, params: MeanFieldGaussian, key: jax.Array, num_samples: int) -> PyTree:
        """Draw ``S = num_samples`` parameter sets from every member.

        Returns:
            Stacked parameters with leading axis ``E * S`` (member-major: rows
            ``e*S ... e*S + S - 1`` come from member ``e``), ready for
            :func:`~jno.inference.ensemble_predict`.
        """

        def member(q: MeanFieldGaussian, k: jax.Array) -> PyTree:
            return eqx.filter_vmap(lambda kk: sample_params(q, kk))(jr.split(k, num_samples))

        num_members = jax.tree.leaves(params.log_scale)[0].shape[0]
        draws = eqx.filter_vmap(member)(params, jr.split(key, num_members))
        return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]) if eqx.is_array(a) else a, draws)

    def predict(
        self,
        params: MeanFieldGaussian,
        predict_fn: Callable[[PyTree, jax.Array], jax.Array],
        x: jax.Array,
        *,
        key: jax.Array,
        num_samples: int = 16,
    ) -> jax.Array:
        """Predictions of ``num_samples`` draws per member, shape ``(E * S, N)``."""
        return ensemble_predict(self.sample(params, key, num_samples), predict_fn, x)


@eqx.filter_jit
def _fit(
    runner: EnsembleVI,
    state: EnsembleState,
    x: PyTree,
    y: PyTree,
    key: jax.Array,
    num_epochs: int,
    batch_size: int | None,
) -> tuple[EnsembleState, jax.Array]:
    def step(s: EnsembleState, xb: PyTree, yb: PyTree, k: jax.Array, scale: float):
        return runner.update(s, xb, yb, k, scale=scale)

    return scan_epochs(step, state, x, y, key, num_epochs=num_epochs, batch_size=batch_size)


def ensemble_vi(
    log_joint: LogJoint,
    init_fn: Callable[[jax.Array], PyTree],
    x: PyTree,
    y: PyTree,
    *,
    optimizer: optax.GradientTransformation,
    num_epochs: int,
    seed: jax.Array,
    ensemble_size: int = 16,
    kl_weight: float = 1.0,
    num_particles: int = 1,
    log_std_init: float = -3.0,
    batch_size: int | None = None,
) -> EnsembleResult:
    """One-shot :class:`EnsembleVI` fit: ``EnsembleVI(...).run(seed, x, y, ...)``."""
    runner = EnsembleVI(
        log_joint,
        init_fn,
        optimizer,
        ensemble_size=ensemble_size,
        kl_weight=kl_weight,
        num_particles=num_particles,
        log_std_init=log_std_init,
    )
    return runner.run(seed, x, y, num_epochs, batch_size)
