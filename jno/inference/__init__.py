"""Deep ensembles, free of the DSL: functional primitives and the runners built on them.

Layer 1, the primitives (bring your own loop, optimiser and log-joint):
:func:`ensemble_init`, :func:`ensemble_loss`, :func:`ensemble_step`,
:func:`ensemble_predict`, with :class:`EnsembleState` / :class:`EnsembleResult`.

Layer 2, runners with ``init`` / ``update`` / ``fit`` / ``run`` (``run`` is one
``lax.scan``): :class:`EnsembleMAP` and :class:`EnsembleVI` (mean-field Gaussian
members), and the one-shots :func:`ensemble_map`, :func:`ensemble_vi`.

:func:`from_numpyro` turns a NumPyro model into a log-joint split into likelihood and
prior (NumPyro is imported only when it is called).

A log-joint is ``log_joint(params, x, y) -> (loglik, logprior)``, two scalars.
"""

from jno.inference.batching import epoch_batches, scan_epochs
from jno.inference.map import EnsembleMAP, ensemble_map
from jno.inference.numpyro_adapter import from_numpyro
from jno.inference.state import EnsembleResult, EnsembleState, ensemble_init
from jno.inference.step import ensemble_loss, ensemble_predict, ensemble_step
from jno.inference.vi import EnsembleVI, MeanFieldGaussian, ensemble_vi

__all__ = [
    "EnsembleMAP",
    "EnsembleResult",
    "EnsembleState",
    "EnsembleVI",
    "MeanFieldGaussian",
    "ensemble_init",
    "ensemble_loss",
    "ensemble_map",
    "ensemble_predict",
    "ensemble_step",
    "ensemble_vi",
    "epoch_batches",
    "from_numpyro",
    "scan_epochs",
]
