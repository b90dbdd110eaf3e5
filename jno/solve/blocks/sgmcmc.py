"""Stochastic-gradient MCMC: blackjax kernels whose factory takes ``grad_estimator`` first
(SGLD, SGHMC).

The gradient estimator is the gradient of the block's log-density on the step's inputs
(all points, or the ``batch_size`` subsample with likelihoods scaled by ``N/n``). These
kernels return no info object: ``posterior_diagnostics`` is ``None``.
"""

from __future__ import annotations

import blackjax
import jax

from ...family import first_parameter, register_family
from ..state import BlockState
from .mcmc import SampledBlock, check_kernel_kwargs, one_of

#: blackjax's SG-MCMC kernels, by identity (``csgld`` takes ``logdensity_estimator`` first;
#: the others, and a user's own, are claimed by their first parameter ``grad_estimator``).
SG_KERNELS = (blackjax.sgld, blackjax.sghmc, blackjax.sgnht, blackjax.csgld)
STEP_ARGS = ("step_size", "temperature")


@register_family
class SGMCMCBlock(SampledBlock):
    """SG-MCMC: the state is the bare position; no tuner (``step_size=`` is required)."""

    family = "sg"
    priority = 5
    diagnostics = None

    @classmethod
    def claims(cls, factory) -> bool:
        return one_of(factory, SG_KERNELS) or first_parameter(factory) == "grad_estimator"

    @classmethod
    def validate(cls, where: str, settings) -> None:
        check_kernel_kwargs(where, settings, extra=STEP_ARGS)
        if "step_size" not in settings.kernel_kwargs:
            raise ValueError(
                f"{where}: .bayesian({settings.name}, ...) needs step_size=: SG-MCMC kernels "
                "have no adaptation; pass e.g. step_size=1e-4."
            )

    @classmethod
    def schema(cls, settings) -> str:
        return "none (kernel API has no info object)"

    def _algorithm(self, logdensity):
        kw = {k: v for k, v in self.settings.kernel_kwargs.items() if k not in STEP_ARGS}
        grad = jax.grad(logdensity)
        return self.settings.factory(lambda position, minibatch: grad(position), **kw)

    def init(self, key, position, objective, tuned):
        return self._algorithm(self.log_posterior(objective)).init(position)

    def step(self, key, state: BlockState, objective):
        kw = self.settings.kernel_kwargs
        alg = self._algorithm(self.log_posterior(objective))
        new = alg.step(key, state.kernel, 0, kw["step_size"], kw.get("temperature", 1.0))
        return BlockState(new, state.tuned), {}

    def position(self, kernel_state):
        return kernel_state
