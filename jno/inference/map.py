r"""Deep-ensemble MAP: ``init`` / ``update`` / ``fit`` / ``run`` around the primitives.

Every member :math:`e` minimises, from its own random start,

.. math::

    \mathcal{L}(\theta_e) = -\frac{N}{|B|}\sum_{i\in B}\log p(y_i\mid x_i,\theta_e)
        \;-\; w\,\log p(\theta_e),

so that, treating the converged members as an equally weighted mixture of point
masses :math:`q(\theta) = \frac1E\sum_e \delta(\theta-\hat\theta_e)`, the posterior
predictive is approximated by :math:`\frac1E\sum_e p(y^*\mid x^*,\hat\theta_e)`
(Lakshminarayanan et al., 2017). :math:`w` is ``prior_weight``: 0 gives an
ensemble of maximum-likelihood fits, 1 an ensemble of MAP fits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import optax

from jno.inference.batching import run_arguments, scan_epochs
from jno.inference.state import EnsembleResult, EnsembleState, ensemble_init
from jno.inference.step import LogJoint, ensemble_step

PyTree = Any


class EnsembleMAP(eqx.Module):
    """An ensemble of MAP (or, with ``prior_weight=0``, MLE) fits.

    Attributes:
        log_joint: ``(params, x, y) -> (loglik, logprior)`` for one member.
        init_fn: ``key -> params`` for one member.
        optimizer: optax transformation shared by the members.
        ensemble_size: number of members ``E``.
        prior_weight: weight ``w >= 0`` of the log-prior.

    Example::

        runner = EnsembleMAP(log_joint, init_mlp, optax.adam(5e-3), ensemble_size=16)
        result = runner.run(jax.random.PRNGKey(0), x, y, num_epochs=1500)
        preds = ensemble_predict(result.params, predict_fn, x_test)   # (16, N_test)
    """

    log_joint: LogJoint
    init_fn: Callable[[jax.Array], PyTree]
    optimizer: optax.GradientTransformation
    ensemble_size: int = eqx.field(default=16, static=True)
    prior_weight: float = eqx.field(default=1.0, static=True)

    def __check_init__(self) -> None:
        if not isinstance(self.ensemble_size, int) or self.ensemble_size < 1:
            raise ValueError(
                f"EnsembleMAP: ensemble_size must be an int >= 1, got {self.ensemble_size!r}"
            )
        if self.prior_weight < 0:
            raise ValueError(f"EnsembleMAP: prior_weight must be >= 0, got {self.prior_weight}")

    def init(self, seed: jax.Array) -> EnsembleState:
        """Stacked initial state; member ``e`` uses ``jax.random.split(seed, E)[e]``."""
        return ensemble_init(
            self.init_fn, self.optimizer, ensemble_size=self.ensemble_size, seed=seed
        )

    def update(
        self, state: EnsembleState, x: PyTree, y: PyTree, *, scale: float = 1.0
    ) -> tuple[EnsembleState, jax.Array]:
        """One step of every member on the batch ``(x, y)``; losses have shape ``(E,)``.

        Deterministic, so it takes no key; pass ``scale = N / |B|`` when ``(x, y)`` is a
        mini-batch of a data set of size ``N``.
        """
        return ensemble_step(
            state,
            x,
            y,
            log_joint=self.log_joint,
            optimizer=self.optimizer,
            prior_weight=self.prior_weight,
            scale=scale,
        )

    def fit(
        self,
        state: EnsembleState,
        x: PyTree,
        y: PyTree,
        key: jax.Array,
        num_epochs: int,
        batch_size: int | None = None,
    ) -> tuple[EnsembleState, jax.Array]:
        """Continue training ``state`` for ``num_epochs`` epochs in one compiled ``lax.scan``.

        ``key`` draws the mini-batches as documented in :mod:`jno.inference.batching`;
        ``batch_size`` ``None`` or ``>= N`` trains on the full batch.

        Returns:
            ``(final_state, losses)`` with ``losses`` of shape ``(E, num_epochs)``.
        """
        return _fit(self, state, x, y, key, num_epochs, batch_size)

    def run(self, seed: jax.Array, *args: Any, **kwargs: Any) -> EnsembleResult:
        """Initialise and train; ``seed`` splits into ``(init_key, data_key)``.

        Called as ``run(seed, num_epochs, x, y, batch_size=None)`` (pyrox's and NumPyro's
        order) or ``run(seed, x, y, num_epochs, batch_size=None)``; an int right after
        ``seed`` is the epoch count (see :func:`~jno.inference.batching.run_arguments`).

        Equivalent to ``init(init_key)`` followed by ``fit(state, x, y, data_key, ...)``,
        i.e. to a Python loop over :meth:`update` on the batches of
        :func:`~jno.inference.batching.epoch_batches`.
        """
        x, y, num_epochs, batch_size = run_arguments("EnsembleMAP.run", args, kwargs)
        init_key, data_key = jax.random.split(seed)
        state, losses = self.fit(self.init(init_key), x, y, data_key, num_epochs, batch_size)
        return EnsembleResult(params=state.params, losses=losses)


@eqx.filter_jit
def _fit(
    runner: EnsembleMAP,
    state: EnsembleState,
    x: PyTree,
    y: PyTree,
    key: jax.Array,
    num_epochs: int,
    batch_size: int | None,
) -> tuple[EnsembleState, jax.Array]:
    def step(s: EnsembleState, xb: PyTree, yb: PyTree, _key: jax.Array, scale: float):
        return runner.update(s, xb, yb, scale=scale)

    return scan_epochs(step, state, x, y, key, num_epochs=num_epochs, batch_size=batch_size)


def ensemble_map(
    log_joint: LogJoint,
    init_fn: Callable[[jax.Array], PyTree],
    x: PyTree,
    y: PyTree,
    *,
    optimizer: optax.GradientTransformation,
    num_epochs: int,
    seed: jax.Array,
    ensemble_size: int = 16,
    prior_weight: float = 1.0,
    batch_size: int | None = None,
) -> EnsembleResult:
    """One-shot :class:`EnsembleMAP` fit: ``EnsembleMAP(...).run(seed, x, y, ...)``."""
    runner = EnsembleMAP(
        log_joint, init_fn, optimizer, ensemble_size=ensemble_size, prior_weight=prior_weight
    )
    return runner.run(seed, x, y, num_epochs, batch_size)
