"""Microcanonical Langevin Monte Carlo (Robnik et al. 2023): ``.bayesian(blackjax.mclmc)``.

MCLMC moves at fixed speed along isokinetic Langevin dynamics with partial momentum refresh
on the scale ``L``. It is unadjusted (no Metropolis step): its bias is controlled by the
energy-error variance per dimension, which blackjax's tuner
(``mclmc_find_L_and_step_size``) drives to ``desired_energy_var`` (default 5e-4) while it
estimates ``L``, ``step_size`` and a diagonal preconditioner. With ``adapt=True`` the tuner
runs during warm-up, every chain on its own; otherwise pass ``L=`` and ``step_size=``.

This module is the whole family: it registers itself, and the solve layer knows it only
through the block protocol.
"""

from __future__ import annotations

import blackjax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ...family import Tuner, register_family
from ...trace.pointset import default_float
from ..state import BlockState
from .base import inverse_mass_matrix, positive_variances
from .mcmc import SampledBlock, check_kernel_kwargs

TUNED = ("L", "step_size", "inverse_mass_matrix")
TUNER_ARGS = ("desired_energy_var", "diagonal_preconditioning", "num_effective_samples")


@register_family
class MCLMCBlock(SampledBlock):
    """``blackjax.mclmc`` with its own tuner."""

    family = "mclmc"
    priority = 10
    tuner = Tuner.OWN
    dense_metric = False
    diagnostics = ("energy_change",)

    @classmethod
    def claims(cls, factory) -> bool:
        return factory is blackjax.mclmc

    @classmethod
    def validate(cls, where: str, settings) -> None:
        check_kernel_kwargs(where, settings, extra=TUNER_ARGS)
        missing = [k for k in ("L", "step_size") if k not in settings.kernel_kwargs]
        if missing and not cls.adapts(settings):
            raise ValueError(
                f"{where}: .bayesian(blackjax.mclmc, adapt=False) needs {' and '.join(missing)}"
                "=; or keep adapt=True with warmup > 0 to let the MCLMC tuner choose them."
            )

    @classmethod
    def schema(cls, settings) -> str:
        return "energy_change"

    def tuning(self, position) -> dict:
        dim = ravel_pytree(position)[0].shape[0]
        kw = self.settings.kernel_kwargs
        imm = kw.get("inverse_mass_matrix")
        return {
            "L": jnp.asarray(kw.get("L", jnp.sqrt(dim)), default_float()),
            "step_size": jnp.asarray(kw.get("step_size", 0.25 * jnp.sqrt(dim)), default_float()),
            "inverse_mass_matrix": inverse_mass_matrix(imm, dim, f"model(s) {self.label}"),
        }

    def _kernel(self, logdensity, tuned):
        kw = {
            k: v
            for k, v in self.settings.kernel_kwargs.items()
            if k not in TUNED and k not in TUNER_ARGS
        }
        return blackjax.mclmc(logdensity, **tuned, **kw)

    def init(self, key, position, objective, tuned):
        return self._kernel(self.log_posterior(objective), tuned).init(position, key)

    def step(self, key, state: BlockState, objective):
        logdensity = self.log_posterior(objective)
        new, out = self.step_cached(self._kernel(logdensity, state.tuned), key, state, logdensity)
        out["num_integration_steps"] = jnp.ones((), jnp.int32)  # one integrator step a draw
        return new, out

    def adapt(self, key, state: BlockState, objective, num_steps: int):
        """blackjax's three-stage MCLMC tuner over ``num_steps`` integrator steps."""
        kw = self.settings.kernel_kwargs
        fractions = (0.1, 0.1, 0.1)
        base_kernel = blackjax.mcmc.mclmc.build_kernel(
            desired_energy_var=kw.get("desired_energy_var", 5e-4)
        )
        start = state.tuned["inverse_mass_matrix"]

        def kernel(rng_key, state, logdensity_fn, inverse_mass_matrix, L, step_size):
            return base_kernel(
                rng_key=rng_key,
                state=state,
                logdensity_fn=logdensity_fn,
                inverse_mass_matrix=positive_variances(inverse_mass_matrix, start),
                L=L,
                step_size=step_size,
            )

        kstate, params, used = blackjax.mclmc_find_L_and_step_size(
            mclmc_kernel=kernel,
            num_steps=max(int(num_steps / sum(fractions)), 1),
            state=state.kernel,
            rng_key=key,
            logdensity_fn=self.log_posterior(objective),
            frac_tune1=fractions[0],
            frac_tune2=fractions[1],
            frac_tune3=fractions[2],
            desired_energy_var=kw.get("desired_energy_var", 5e-4),
            diagonal_preconditioning=kw.get("diagonal_preconditioning", True),
            num_effective_samples=kw.get("num_effective_samples", 150),
        )
        tuned = {
            "L": jnp.asarray(params.L, default_float()),
            "step_size": jnp.asarray(params.step_size, default_float()),
            "inverse_mass_matrix": positive_variances(
                jnp.broadcast_to(
                    jnp.asarray(params.inverse_mass_matrix, default_float()), start.shape
                ),
                start,
            ),
        }
        return BlockState(kstate, tuned), jnp.asarray(used, default_float())
