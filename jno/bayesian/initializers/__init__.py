"""Log-density-aware initializers for ``Model.initialize`` (the seed's fourth init shape).

An initializer is any object with the class attribute ``requires_logdensity = True`` and a
method ``__call__(rng_key, logdensity_fn, position, num_chains) -> (new_position,
extra_kwargs_update)``; see :class:`BayesianInitializer`. Built-ins:

* :func:`pathfinder` (:class:`Pathfinder`): L-BFGS path + best-ELBO normal approximation
  (Zhang et al. 2022), through blackjax.
* :func:`laplace` (:class:`Laplace`): optax MAP + Hessian (diagonal or full) at the MAP.
* :func:`svgd` (:class:`SVGD`): Stein variational gradient descent particles, through blackjax.
* :func:`map_pipeline` (:class:`MapPipeline`): multi-start Adam + L-BFGS MAP search, chains
  started in the distinct modes, the curvature at the best mode as mass matrix.

The lowercase names are the classes themselves, so ``jno.bayesian.pathfinder(maxiter=30)``
builds a configured :class:`Pathfinder`.
"""

from ._base import BayesianInitializer
from ._laplace import Laplace, laplace
from ._map_pipeline import MapPipeline, map_pipeline
from ._pathfinder import Pathfinder, pathfinder
from ._svgd import SVGD, svgd

__all__ = [
    "SVGD",
    "BayesianInitializer",
    "Laplace",
    "MapPipeline",
    "Pathfinder",
    "laplace",
    "map_pipeline",
    "pathfinder",
    "svgd",
]
