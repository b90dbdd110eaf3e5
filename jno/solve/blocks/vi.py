"""Mean-field variational inference: blackjax's ``meanfield_vi`` as a block.

``q(θ) = Π_i N(μ_i, exp(ρ_i)²)`` is fitted by maximising the ELBO with the configured optax
optimizer, one step per solve step. ``μ`` starts at the model's value
(``init_mu_at_position``) and ``ρ`` at ``init_log_std``. The ELBO of every step goes to the
history (``history.elbo``); after the solve, ``posterior_draws`` i.i.d. draws from ``q`` are
the model's ``posterior_samples`` ``(1, N, *param)``; there are no per-step diagnostics.
"""

from __future__ import annotations

import blackjax
import jax
import jax.numpy as jnp

from ...family import register_family
from ...trace.config import BayesSettings
from ..state import BlockState
from .base import SamplingBlock


@register_family
class MeanFieldVIBlock(SamplingBlock):
    """One mean-field VI fit (a block of its own per ``.vi`` call)."""

    family = "vi"
    priority = 10
    records = False
    variational = True
    diagnostics = None
    metrics = ("elbo",)

    @classmethod
    def claims(cls, factory) -> bool:
        return factory is blackjax.meanfield_vi

    @classmethod
    def validate(cls, where: str, settings) -> None:
        if isinstance(settings, BayesSettings):
            raise ValueError(
                f"{where}: .bayesian(blackjax.meanfield_vi, ...): VI is configured with "
                ".vi(blackjax.meanfield_vi, optimizer=...)."
            )

    def describe(self) -> str:
        s = self.settings
        return (
            f"Model {self.label}: mean-field VI via '{s.name}' (num_samples={s.num_samples}, "
            f"posterior_draws={s.posterior_draws}, likelihood_scale={s.likelihood_scale:g}, "
            "diagnostics=none (track the ELBO in history.elbo))"
        )

    def _algorithm(self, logdensity):
        s = self.settings
        return s.factory(logdensity, s.optimizer, num_samples=s.num_samples, **s.factory_kwargs)

    def init(self, key, position, objective, tuned):
        s = self.settings
        state = self._algorithm(self.log_posterior(objective)).init(position)
        mu = position if s.init_mu_at_position else state.mu
        rho = jax.tree.map(lambda p: jnp.full_like(p, s.init_log_std), position)
        return state._replace(mu=mu, rho=rho, opt_state=s.optimizer.init((mu, rho)))

    def step(self, key, state: BlockState, objective):
        new, info = self._algorithm(self.log_posterior(objective)).step(key, state.kernel)
        # blackjax's MFVIInfo.elbo holds the minimised objective E_q[log q - log p] = -ELBO
        return BlockState(new, state.tuned), {"elbo": -info.elbo}

    def position(self, kernel_state):
        return kernel_state.mu

    @property
    def keep(self) -> int:
        return self.settings.posterior_draws

    def posterior(self, key, state: BlockState, recorded):
        """``posterior_draws`` i.i.d. draws from the fitted ``q`` of chain 0: ``(1, N, ...)``."""
        q = jax.tree.map(lambda a: a[0], state.kernel)
        draws = self._algorithm(lambda p: 0.0).sample(key, q, self.settings.posterior_draws)
        return jax.tree.map(lambda a: a[None], draws)
