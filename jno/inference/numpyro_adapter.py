r"""Use a NumPyro model as an ensemble log-joint.

NumPyro's ``log_density`` returns the *total* :math:`\log p(\theta, y\mid x)`. To
temper the prior, the ensemble needs it split:

.. math::

    \underbrace{\sum_{k\,\in\,\text{observed}} \log p(y_k\mid x, \theta)}_{\text{loglik}}
    \;+\; \underbrace{\sum_{k\,\in\,\text{latent}} \log p(\theta_k\mid\dots)}_{\text{logprior}},

which :func:`from_numpyro` does by substituting ``params`` into the model, tracing
it (``numpyro.handlers.substitute`` + ``trace``, via
``numpyro.infer.util.compute_log_probs``, so site scales and masks count as in
``log_density``) and grouping the sites by their ``is_observed`` flag. With
``prior_weight=1`` the two parts add up to ``log_density``.

NumPyro is imported only when the adapter is called, so ``jno.inference`` works
without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jno.inference.step import LogJoint


def from_numpyro(model: Callable[..., Any]) -> LogJoint:
    """Wrap ``model(x, y)`` as ``log_joint(params, x, y) -> (loglik, logprior)``.

    Args:
        model: a NumPyro model called as ``model(x, y)``, with ``y`` passed as the
            ``obs`` of its likelihood site(s).

    Returns:
        A log-joint for :func:`~jno.inference.ensemble_step` and friends; ``params`` is
        a dict mapping every latent sample site's name to its value.

    Raises:
        ImportError: when NumPyro is not installed (at call time).
        ValueError: when the model has a latent sample site missing from ``params``.
    """
    try:
        from numpyro import handlers
        from numpyro.infer.util import compute_log_probs
    except ImportError as err:
        raise ImportError(
            "from_numpyro needs NumPyro; install it with `pip install jno[numpyro]`"
        ) from err

    def log_joint(params: dict[str, jax.Array], x: Any, y: Any) -> tuple[jax.Array, jax.Array]:
        seeded = handlers.seed(model, rng_seed=0)
        log_probs, model_trace = compute_log_probs(seeded, (x, y), {}, params)
        missing = sorted(
            name
            for name, site in model_trace.items()
            if site["type"] == "sample" and not site["is_observed"] and name not in params
        )
        if missing:
            raise ValueError(
                f"from_numpyro: latent site(s) {missing} have no value in params; "
                "give init_fn a key for every latent sample site of the model"
            )
        loglik = jnp.zeros(())
        logprior = jnp.zeros(())
        for name, value in log_probs.items():
            if model_trace[name]["is_observed"]:
                loglik = loglik + value
            else:
                logprior = logprior + value
        return loglik, logprior

    return log_joint
