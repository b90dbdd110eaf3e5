"""Metropolis-adjusted microcanonical sampling (MAMS; Robnik, Cohn-Gordon and Seljak 2025):
``.bayesian(blackjax.adjusted_mclmc_dynamic)`` and ``.bayesian(blackjax.adjusted_mclmc)``.

MAMS integrates the isokinetic (fixed-speed) dynamics of MCLMC with blackjax's McLachlan
integrator for ``n`` steps of size ``ε`` from a fresh uniformly random unit momentum, then
accepts the end point with probability ``min(1, exp(-ΔH))``, ``ΔH`` the energy error (the
change in ``-log p`` plus the integrator's kinetic-energy change). The Metropolis step makes
it exact, unlike MCLMC, whose bias is only controlled by its step size. The mean trajectory
length is ``L = n̄ · ε`` (``n̄ = L / ε`` integrator steps):

* ``blackjax.adjusted_mclmc_dynamic`` (the recommended kernel) draws ``n`` per transition as
  ``ceil(u · s(n̄))``, ``u ~ U(0, 1)``, with ``s`` chosen so that ``E[n] = n̄``
  (``make_random_trajectory_length_fn(True)``); randomising the length avoids the
  resonances of a fixed one. Its ``integration_steps_fn=`` may be replaced by a
  ``(key, n̄) -> int`` of the user's.
* ``blackjax.adjusted_mclmc`` runs ``n = max(1, ceil(n̄))`` steps every transition (blackjax
  recommends the dynamic kernel; the static one is kept for parity). ``ceil`` forgives a
  relative round-off of 1e-5, so a tuned ``L = n̄ ε`` gives ``n̄`` steps, never ``n̄ + 1``.

**What is tuned.** With ``adapt=True`` and ``warmup > 0``, every chain runs blackjax's
``adjusted_mclmc_find_L_and_step_size`` on its own over the warm-up: dual averaging of ``ε``
towards ``target_acceptance_rate`` (default 0.9, blackjax's value for MAMS), then the
posterior variances from a stretch with ``ε`` held fixed, which become the diagonal inverse
mass matrix (``diagonal_preconditioning=True``, the default), then dual averaging again
under the new preconditioner. Each of the three stages takes a third of the warm-up.
blackjax's tuner does not choose the trajectory length: it ends with ``L = n̄ ε`` for the
``target_num_integration_steps=n̄`` it is given (default 2, blackjax's). A posterior much
longer in one direction than in another, after the diagonal preconditioner, needs a larger
``n̄`` (about its longest sd over its shortest), or the chains random-walk along it. While the
first stage tunes ``ε``, blackjax holds ``L`` at ``n̄`` times the starting step size, so the
warm-up's transitions are long when ``ε`` has to shrink a lot; a smaller ``step_size=`` makes
them cheaper. ``L``, ``step_size`` and ``inverse_mass_matrix`` are per-chain entries of
``BlockState.tuned``; a ``step_size=`` or ``inverse_mass_matrix=`` given with ``adapt=True``
(or an initializer's inverse mass matrix) is where the tuner starts (default: blackjax's
``ε = 0.2 √D`` and the identity). Without adaptation ``L=`` and ``step_size=`` are required.

The isokinetic integrator takes a diagonal inverse mass matrix only (it scales momenta by its
element-wise square root): a ``(D, D)`` matrix is refused.

**Counting gradients.** As everywhere in jno, ``grad_evals`` sums blackjax's
``num_integration_steps``: every transition of sampling (the info field), and every
transition the tuner ran (the total it returns). One McLachlan step evaluates the gradient
twice, so the true number of gradient evaluations is twice the count.

This module is the whole family: it registers itself, and the solve layer knows it only
through the block protocol.
"""

from __future__ import annotations

from collections.abc import Callable

import blackjax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.mclmc_adaptation import MCLMCAdaptationState
from blackjax.base import SamplingAlgorithm
from blackjax.mcmc.adjusted_mclmc_dynamic import make_random_trajectory_length_fn
from jax.flatten_util import ravel_pytree

from ...family import Tuner, register_family
from ...trace.pointset import default_float
from ..state import BlockState
from .base import inverse_mass_matrix, positive_variances
from .mcmc import SampledBlock, check_kernel_kwargs, one_of

#: the two MAMS kernels this family runs (compared by identity)
MAMS_KERNELS = (blackjax.adjusted_mclmc_dynamic, blackjax.adjusted_mclmc)
#: ``.bayesian`` keywords that go to the tuner, not to the kernel
TUNER_ARGS = ("target_acceptance_rate", "diagonal_preconditioning", "target_num_integration_steps")
#: per-chain kernel arguments (``L`` is not a kernel keyword: it sets the trajectory length)
TUNED = ("L", "step_size", "inverse_mass_matrix")
#: kernel keywords this family derives from ``L / step_size``; the user gives ``L=`` instead
TRAJECTORY_ARGS = ("integration_steps_params", "num_integration_steps")
#: blackjax's recommended acceptance rate for MAMS
DEFAULT_TARGET = 0.9
#: blackjax's default mean number of integrator steps per transition the tuner pins
#: ``L / step_size`` to
DEFAULT_STEPS_PER_TRAJECTORY = 2.0


@register_family
class AdjustedMCLMCBlock(SampledBlock):
    """``blackjax.adjusted_mclmc_dynamic`` / ``blackjax.adjusted_mclmc`` (MAMS) with blackjax's
    own tuner of ``L``, ``step_size`` and a diagonal preconditioner (see the module
    docstring)."""

    family = "mams"
    priority = 10  # asked before MCMCBlock, whose signature rule claims these factories too
    tuner = Tuner.OWN
    dense_metric = False
    diagnostics = ("is_divergent", "acceptance_rate", "energy", "num_integration_steps")

    @classmethod
    def claims(cls, factory) -> bool:
        return one_of(factory, MAMS_KERNELS)

    @classmethod
    def validate(cls, where: str, settings) -> None:
        check_kernel_kwargs(where, settings, extra=TUNER_ARGS + ("L",))
        kw = settings.kernel_kwargs
        call = f".bayesian({settings.name}"
        for name in TRAJECTORY_ARGS:
            if name in kw:
                raise ValueError(
                    f"{where}: {call}, {name}=...): the number of integrator steps is "
                    "L / step_size; give L= (with step_size=, or keep adapt=True to tune them)."
                )
        rate = kw.get("target_acceptance_rate", DEFAULT_TARGET)
        if isinstance(rate, bool) or not (isinstance(rate, (int, float)) and 0.0 < rate < 1.0):
            raise ValueError(
                f"{where}: {call}, target_acceptance_rate={rate!r}): give a number between 0 "
                f"and 1 (blackjax recommends {DEFAULT_TARGET} for MAMS)."
            )
        steps = kw.get("target_num_integration_steps", DEFAULT_STEPS_PER_TRAJECTORY)
        if isinstance(steps, bool) or not (isinstance(steps, (int, float)) and steps > 1.1):
            raise ValueError(
                f"{where}: {call}, target_num_integration_steps={steps!r}): give a number above "
                f"1.1 (blackjax's floor; default {DEFAULT_STEPS_PER_TRAJECTORY:g}, more for "
                "posteriors much longer in one direction than in another)."
            )
        diagonal = kw.get("diagonal_preconditioning", True)
        if not isinstance(diagonal, bool):
            raise TypeError(
                f"{where}: {call}, diagonal_preconditioning={diagonal!r}): give True (tune a "
                "diagonal inverse mass matrix) or False (keep the given one)."
            )
        if np.ndim(kw.get("inverse_mass_matrix")) > 1:
            raise ValueError(
                f"{where}: {call}, inverse_mass_matrix=<{np.ndim(kw['inverse_mass_matrix'])}-D "
                "array>): the isokinetic integrator takes a scalar or a (D,) diagonal only."
            )
        missing = [k for k in ("L", "step_size") if k not in kw]
        if missing and not cls.adapts(settings):
            raise ValueError(
                f"{where}: {call}) without tuning (adapt=False or warmup=0) needs "
                f"{' and '.join(missing)}=; or keep adapt=True with warmup > 0 to let the MAMS "
                "tuner choose them."
            )

    @property
    def dynamic(self) -> bool:
        """Whether the number of integrator steps is drawn anew every transition."""
        return self.settings.factory is blackjax.adjusted_mclmc_dynamic

    @property
    def steps_per_trajectory(self) -> float:
        """The mean number of integrator steps per transition the tuner keeps."""
        return float(
            self.settings.kernel_kwargs.get(
                "target_num_integration_steps", DEFAULT_STEPS_PER_TRAJECTORY
            )
        )

    def tuning(self, position) -> dict:
        dim = ravel_pytree(position)[0].shape[0]
        kw = self.settings.kernel_kwargs
        step_size = jnp.asarray(kw.get("step_size", 0.2 * np.sqrt(dim)), default_float())
        imm = kw.get("inverse_mass_matrix")
        return {
            "L": jnp.asarray(kw.get("L", self.steps_per_trajectory * step_size), default_float()),
            "step_size": step_size,
            "inverse_mass_matrix": inverse_mass_matrix(imm, dim, f"model(s) {self.label}"),
        }

    def algorithm(self, logdensity: Callable, step_size, imm, mean_steps) -> SamplingAlgorithm:
        """The kernel with step size ``step_size``, diagonal inverse mass matrix ``imm`` and
        ``mean_steps = L / step_size`` integrator steps per transition (on average for the
        dynamic kernel)."""
        kw = {
            k: v
            for k, v in self.settings.kernel_kwargs.items()
            if k not in TUNED and k not in TUNER_ARGS
        }
        if self.dynamic:
            kw.setdefault("integration_steps_fn", make_random_trajectory_length_fn(True))
            steps = (mean_steps,)
        else:  # blackjax's deterministic length, forgiving the round-off of (n̄ ε) / ε
            steps = (jnp.maximum(jnp.ceil(mean_steps * (1 - 1e-5)), 1).astype(jnp.int32),)
        return self.settings.factory(
            logdensity,
            step_size=step_size,
            inverse_mass_matrix=imm,
            integration_steps_params=steps,
            **kw,
        )

    def _tuned_algorithm(self, logdensity: Callable, tuned: dict) -> SamplingAlgorithm:
        return self.algorithm(
            logdensity,
            tuned["step_size"],
            tuned["inverse_mass_matrix"],
            tuned["L"] / tuned["step_size"],
        )

    def init(self, key, position, objective, tuned):
        # the dynamic kernel keeps ``key`` as the seed of its trajectory lengths
        return self._tuned_algorithm(self.log_posterior(objective), tuned).init(position, key)

    def step(self, key, state: BlockState, objective):
        logdensity = self.log_posterior(objective)
        kernel = self._tuned_algorithm(logdensity, state.tuned)
        return self.step_cached(kernel, key, state, logdensity)

    def adapt(self, key, state: BlockState, objective, num_steps: int):
        """blackjax's MAMS tuner over ``num_steps`` transitions (three equal stages, at least
        one transition each), started from ``state.tuned``. Returns the tuned state and the
        integrator steps the tuner ran (its own count, every transition included)."""
        kw = self.settings.kernel_kwargs
        start = state.tuned

        def tuner_kernel(
            rng_key, state, logdensity_fn, step_size, inverse_mass_matrix, integration_steps_params
        ):
            (mean_steps,) = integration_steps_params
            imm = positive_variances(inverse_mass_matrix, start["inverse_mass_matrix"])
            kernel = self.algorithm(logdensity_fn, step_size, imm, mean_steps)
            return kernel.step(rng_key, state)

        kstate, params, used = blackjax.adjusted_mclmc_find_L_and_step_size(
            mclmc_kernel=tuner_kernel,
            logdensity_fn=self.log_posterior(objective),
            num_steps=max(num_steps, 3),
            state=state.kernel,
            rng_key=key,
            target=kw.get("target_acceptance_rate", DEFAULT_TARGET),
            frac_tune1=1 / 3,
            frac_tune2=1 / 3,
            frac_tune3=0.0,
            diagonal_preconditioning=kw.get("diagonal_preconditioning", True),
            params=MCLMCAdaptationState(
                start["L"], start["step_size"], start["inverse_mass_matrix"]
            ),
            target_num_integration_steps=self.steps_per_trajectory,
        )
        tuned = {
            "L": jnp.asarray(params.L, default_float()),
            "step_size": jnp.asarray(params.step_size, default_float()),
            "inverse_mass_matrix": positive_variances(
                jnp.broadcast_to(
                    jnp.asarray(params.inverse_mass_matrix, default_float()),
                    start["inverse_mass_matrix"].shape,
                ),
                start["inverse_mass_matrix"],
            ),
        }
        return BlockState(kstate, tuned), jnp.asarray(used, default_float())
