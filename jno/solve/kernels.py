"""Build blackjax kernels for a Bayesian block and read their diagnostics.

Everything here runs inside ``jit``: a kernel is rebuilt from its factory around the current
log-density closure at every step (cheap: it is only Python closures at trace time).
"""

from __future__ import annotations

import inspect

import blackjax
import jax
import jax.numpy as jnp
from blackjax.adaptation.base import get_filter_adapt_info_fn
from jax.flatten_util import ravel_pytree

from ..trace.config import BayesSettings, VISettings, is_hmc_family
from ..trace.pointset import default_float

DIAGNOSTIC_FIELDS = ("is_divergent", "acceptance_rate", "energy")
COUNTED = ("num_integration_steps",)  # summed into the solver's gradient-evaluation count


def position_of(kstate):
    """The position inside any kernel state (NamedTuple, dict, or a bare position for SG)."""
    if isinstance(kstate, dict) and "position" in kstate:
        return kstate["position"]
    if hasattr(kstate, "mu") and hasattr(kstate, "rho"):  # mean-field VI: q's mean
        return kstate.mu
    if hasattr(kstate, "position"):
        return kstate.position
    return kstate


def logdensity_of(kstate):
    if isinstance(kstate, dict):
        return kstate.get("logdensity")
    return getattr(kstate, "logdensity", None)


def accepts(factory, name: str) -> bool:
    """Whether ``factory`` takes keyword ``name`` (blackjax's generated APIs: its kernel)."""
    target = factory
    if not _has_explicit_params(factory) and hasattr(factory, "build_kernel"):
        try:
            target = factory.build_kernel()
        except TypeError:
            return True
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def _has_explicit_params(f) -> bool:
    try:
        return list(inspect.signature(f).parameters) != ["args", "kwargs"]
    except (TypeError, ValueError):
        return False


def default_tuning(settings: BayesSettings, position) -> dict:
    """Per-chain tunable kernel arguments before adaptation: step size and, for the HMC
    family, the inverse mass matrix (identity of the raveled position's size)."""
    tuned = {}
    if settings.family == "full" and is_hmc_family(settings.factory):
        dim = ravel_pytree(position)[0].shape[0]
        tuned["step_size"] = jnp.asarray(
            settings.kernel_kwargs.get("step_size", 1.0), default_float()
        )
        imm = settings.kernel_kwargs.get("inverse_mass_matrix")
        tuned["inverse_mass_matrix"] = (
            jnp.ones((dim,), default_float()) if imm is None else jnp.asarray(imm, default_float())
        )
    return tuned


class BlockKernel:
    """``init(position)`` / ``step(key, state)`` of one block for given tuned arguments."""

    def __init__(self, settings: BayesSettings, logdensity_fn, tuned: dict):
        kw = dict(settings.kernel_kwargs)
        kw.update(tuned)
        self.family = settings.family
        if settings.family == "full":
            alg = settings.factory(logdensity_fn, **kw)
            self.init = alg.init
            self._step = alg.step
        else:
            step_size = kw.pop("step_size")
            temperature = kw.pop("temperature", 1.0)
            grad_fn = jax.grad(logdensity_fn)
            alg = settings.factory(lambda position, minibatch: grad_fn(position), **kw)
            self.init = alg.init
            self._step = lambda key, state: alg.step(key, state, 0, step_size, temperature)

    def step(self, key, state):
        out = self._step(key, state)
        if self.family == "sg":
            return out, None
        return out


class VIKernel:
    """Mean-field VI as a block "kernel": ``init(position)`` builds ``q`` around the position,
    ``step(key, state)`` is one ELBO optimisation step and reports the ELBO."""

    def __init__(self, settings: VISettings, logdensity_fn):
        self.settings = settings
        self.alg = settings.factory(
            logdensity_fn,
            settings.optimizer,
            num_samples=settings.num_samples,
            **settings.factory_kwargs,
        )

    def init(self, position):
        state = self.alg.init(position)
        mu = position if self.settings.init_mu_at_position else state.mu
        rho = jax.tree.map(lambda p: jnp.full_like(p, self.settings.init_log_std), position)
        return state._replace(mu=mu, rho=rho, opt_state=self.settings.optimizer.init((mu, rho)))

    def step(self, key, state):
        new, info = self.alg.step(key, state)
        # blackjax's MFVIInfo.elbo holds the minimised objective E_q[log q - log p] = -ELBO
        return new, {"elbo": -info.elbo}

    def sample(self, key, state, n: int):
        return self.alg.sample(key, state, n)


def make_kernel(settings, logdensity_fn, tuned: dict):
    """The block kernel for MCMC settings or a :class:`VIKernel` for VI settings."""
    if isinstance(settings, VISettings):
        return VIKernel(settings, logdensity_fn)
    return BlockKernel(settings, logdensity_fn, tuned)


def capture_info(info, new_state) -> dict:
    """The diagnostics kept per step: the seed's fields when the info has them, every scalar
    field of a custom kernel's info otherwise, plus ``nonfinite`` (a non-finite log-density,
    counted as a divergence)."""
    out = {}
    if info is not None:
        fields = (
            info._asdict() if hasattr(info, "_asdict") else (info if isinstance(info, dict) else {})
        )
        known = {k: fields[k] for k in DIAGNOSTIC_FIELDS + COUNTED if k in fields}
        if known:
            out.update(known)
        else:
            out.update(
                {k: v for k, v in fields.items() if hasattr(v, "shape") and jnp.ndim(v) == 0}
            )
    ld = logdensity_of(new_state)
    if ld is not None:
        out["nonfinite"] = ~jnp.isfinite(ld)
    return {k: jnp.asarray(v) for k, v in out.items()}


def diagnostic_schema(settings: BayesSettings) -> str:
    if settings.family == "sg":
        return "none (kernel API has no info object)"
    if is_hmc_family(settings.factory):
        return ", ".join(DIAGNOSTIC_FIELDS)
    if settings.name == "mala":
        return "acceptance_rate"
    return "fields of the kernel's info"


def window_adapt(
    settings: BayesSettings, logdensity_fn, key, position, tuned: dict, num_steps: int
):
    """Run blackjax window adaptation for ``num_steps`` steps from ``position``.

    Returns the adapted kernel state and ``{step_size, inverse_mass_matrix}``.
    """
    kw = {
        k: v
        for k, v in settings.kernel_kwargs.items()
        if k not in ("step_size", "inverse_mass_matrix")
    }
    wa = blackjax.window_adaptation(
        settings.factory,
        logdensity_fn,
        initial_step_size=tuned["step_size"],
        initial_inverse_mass_matrix=tuned["inverse_mass_matrix"],
        adaptation_info_fn=get_filter_adapt_info_fn(info_keys={"num_integration_steps"}),
        **kw,
    )
    (state, params), info = wa.run(key, position, num_steps=num_steps)
    tuned = {
        "step_size": jnp.asarray(params["step_size"], default_float()),
        "inverse_mass_matrix": jnp.asarray(params["inverse_mass_matrix"], default_float()),
    }
    steps = getattr(info.info, "num_integration_steps", None)
    grads = jnp.sum(steps) if steps is not None else jnp.asarray(num_steps)
    return state, tuned, grads
