"""The initializer protocol and the helpers the built-in initializers share."""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any
LogDensityFn = Callable[[PyTree], jax.Array]


class BayesianInitializer(abc.ABC):
    """Base class of the log-density-aware initializers accepted by ``Model.initialize``.

    An initializer runs once, at the start of ``solve()``, with the log-density of the
    Bayesian parameters it initialises (already restricted to the masked subset for
    ``.mask(M).bayesian()``). It returns warm chain starts and, optionally, kernel settings.

    The contract is the single method :meth:`__call__`; the class attribute
    ``requires_logdensity = True`` is what ``Model.initialize`` detects. Any object with that
    attribute and a call of the same signature is accepted; subclassing is a convenience.

    Attributes:
        last_num_grad_evals: gradient evaluations of the log-density spent by the most recent
            call, or ``None`` when unknown (not yet called, a subclass that does not count,
            or a call made under a JAX transformation, where the count cannot be read back).
    """

    requires_logdensity: ClassVar[bool] = True
    last_num_grad_evals: int | None = None

    @abc.abstractmethod
    def __call__(
        self,
        rng_key: jax.Array,
        logdensity_fn: LogDensityFn,
        position: PyTree,
        num_chains: int,
    ) -> tuple[PyTree, dict[str, jax.Array]]:
        """Compute warm chain starts from the log-density.

        Args:
            rng_key: PRNG key (typed ``jax.random.key`` or raw ``PRNGKey``).
            logdensity_fn: ``position -> scalar``, the unnormalised log posterior
                ``log p(θ | data)``.
            position: the current position ``θ₀``, a pytree of float arrays with no chain axis.
            num_chains: ``K ≥ 1``.

        Returns:
            ``(new_position, extra_kwargs_update)``. ``new_position`` has the structure,
            shapes and dtypes of ``position`` when ``K == 1``; for ``K > 1`` every leaf gains
            a leading axis of length ``K`` (one start per chain). ``extra_kwargs_update`` is
            merged into the kernel's keyword arguments, e.g.
            ``{"inverse_mass_matrix": (D,) array}`` with ``D`` the length of
            ``jax.flatten_util.ravel_pytree(position)[0]`` (blackjax's convention: the mass
            matrix acts on the raveled position). It may be empty.
        """


def check_num_chains(num_chains: int) -> int:
    """Return ``num_chains`` as an ``int``, raising ``ValueError`` unless it is ``≥ 1``."""
    if isinstance(num_chains, bool) or int(num_chains) != num_chains or num_chains < 1:
        raise ValueError(f"num_chains must be a positive integer, got {num_chains!r}")
    return int(num_chains)


def is_traced(tree: PyTree) -> bool:
    """True when any leaf of ``tree`` is a JAX tracer (the call runs under jit/vmap/grad)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def unravel_starts(
    flat_starts: jax.Array, unravel: Callable[[jax.Array], PyTree], num_chains: int
) -> PyTree:
    """Map raveled starts back to the position's pytree.

    Args:
        flat_starts: ``(D,)`` when ``num_chains == 1``, else ``(K, D)``.
        unravel: the inverse of ``ravel_pytree`` for one position.
        num_chains: ``K``.

    Returns:
        One position (``K == 1``) or a pytree whose leaves have a leading ``(K,)`` axis.
    """
    if num_chains == 1:
        return unravel(flat_starts)
    return jax.vmap(unravel)(flat_starts)


class GradCounter:
    """Counts the reverse-mode gradient evaluations of a log-density.

    :meth:`wrap` returns the log-density composed with an identity "tap" on its input whose
    custom VJP fires a host callback. One callback is issued per backward pass through the
    tap; under ``vmap`` the callback argument carries the batch, so a batch of ``B``
    gradients adds ``B``. Forward-only evaluations are not counted. The count is exact for
    computations executed eagerly (possibly under an internal ``jit``); :meth:`total`
    returns ``None`` when the caller itself is being traced, since the callbacks then run
    later, outside the initializer.
    """

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()  # callbacks may run concurrently on runtime threads

    def wrap(self, logdensity_fn: LogDensityFn) -> LogDensityFn:
        """Return ``logdensity_fn`` with gradient evaluations counted."""

        @jax.custom_vjp
        def tap(x: PyTree) -> PyTree:
            return x

        def tap_fwd(x: PyTree) -> tuple[PyTree, jax.Array]:
            # A scalar that depends on x, so that it is batched exactly when x is.
            marker = sum(jnp.sum(leaf) for leaf in jax.tree.leaves(x))
            return x, marker

        def tap_bwd(marker: jax.Array, cotangent: PyTree) -> tuple[PyTree]:
            jax.debug.callback(self._add, marker)
            return (cotangent,)

        tap.defvjp(tap_fwd, tap_bwd)
        return lambda position: logdensity_fn(tap(position))

    def _add(self, marker: np.ndarray) -> None:
        with self._lock:
            self._count += int(np.size(marker))

    def total(self, outputs: PyTree) -> int | None:
        """Gradient evaluations so far, or ``None`` if ``outputs`` are tracers."""
        if is_traced(outputs):
            return None
        jax.effects_barrier()
        return self._count
