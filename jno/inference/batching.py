r"""Epochs, mini-batches and the ``lax.scan`` training driver.

An epoch visits the data once. With mini-batches of size :math:`B < N` it is a
fresh uniform permutation of :math:`\{0,\dots,N-1\}` cut into :math:`\lfloor N/B
\rfloor` batches of exactly :math:`B` indices (the last :math:`N \bmod B`
indices of the permutation are left out of that epoch, so every step has the
same shape). Each batch is then a uniformly random :math:`B`-subset, hence

.. math::

    \mathbb{E}_B\Bigl[\tfrac{N}{B}\textstyle\sum_{i\in B}\log p(y_i\mid x_i,\theta)\Bigr]
    = \textstyle\sum_{i=1}^N \log p(y_i\mid x_i,\theta),

which is why a mini-batch step uses ``scale = N / B``.

Keys (what :func:`scan_epochs` does with its ``key``, so that a Python loop can
reproduce it exactly)::

    epoch_keys = jax.random.split(key, num_epochs)
    perm_key, step_key = jax.random.split(epoch_keys[t])
    batches = epoch_batches(perm_key, N, B)              # (N // B, B)
    step_keys = jax.random.split(step_key, N // B)       # one per step

With full batches (``batch_size`` ``None`` or ``>= N``) the data are used in
their given order, one step per epoch, with key ``step_key`` and ``scale = 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

PyTree = Any
Step = Callable[[PyTree, PyTree, PyTree, jax.Array, float], tuple[PyTree, jax.Array]]


def num_data(x: PyTree, y: PyTree) -> int:
    """The common leading size ``N`` of every array in ``x`` and ``y``."""
    sizes = {leaf.shape[0] for leaf in jax.tree.leaves((x, y))}
    if len(sizes) != 1:
        raise ValueError(
            f"x and y must share one leading (data) axis; got leading sizes {sorted(sizes)}"
        )
    return sizes.pop()


def resolve_batch_size(n: int, batch_size: int | None) -> int:
    """``batch_size`` clipped to ``n``; ``None`` means the full batch ``n``."""
    if batch_size is None:
        return n
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be None or an int >= 1, got {batch_size!r}")
    return min(batch_size, n)


def epoch_batches(key: jax.Array, n: int, batch_size: int) -> jax.Array:
    """Index batches of one epoch: a permutation of ``range(n)`` cut into rows.

    Args:
        key: PRNG key of the epoch's permutation.
        n: number of data points ``N``.
        batch_size: ``B`` with ``1 <= B <= N``.

    Returns:
        Integer array of shape ``(N // B, B)``; row ``j`` indexes batch ``j``.
    """
    num_batches = n // batch_size
    return jr.permutation(key, n)[: num_batches * batch_size].reshape(num_batches, batch_size)


def scan_epochs(
    step: Step,
    state: PyTree,
    x: PyTree,
    y: PyTree,
    key: jax.Array,
    *,
    num_epochs: int,
    batch_size: int | None = None,
) -> tuple[PyTree, jax.Array]:
    """Run ``num_epochs`` epochs of ``step`` inside ``lax.scan``.

    Args:
        step: ``(state, x_batch, y_batch, key, scale) -> (state, losses (E,))``.
        state: initial state; its non-array leaves are held out of the scan
            carry and must be left unchanged by ``step``.
        x: inputs, arrays (or a pytree of arrays) with leading axis ``N``.
        y: targets with the same leading axis ``N``.
        key: PRNG key, used as described in the module docstring.
        num_epochs: number of epochs ``T >= 0``.
        batch_size: mini-batch size; ``None`` or ``>= N`` gives full batches.

    Returns:
        ``(final_state, losses)`` with ``losses`` of shape ``(E, T)``: the mean of
        each member's step losses within each epoch.
    """
    if not isinstance(num_epochs, int) or num_epochs < 0:
        raise ValueError(f"num_epochs must be an int >= 0, got {num_epochs!r}")
    n = num_data(x, y)
    b = resolve_batch_size(n, batch_size)
    scale = n / b
    dynamic, static = eqx.partition(state, eqx.is_array)

    def take(tree: PyTree, idx: jax.Array) -> PyTree:
        return jax.tree.map(lambda leaf: leaf[idx], tree)

    def run_step(dyn: PyTree, xb: PyTree, yb: PyTree, k: jax.Array) -> tuple[PyTree, jax.Array]:
        new_state, losses = step(eqx.combine(dyn, static), xb, yb, k, scale)
        return eqx.filter(new_state, eqx.is_array), losses

    def epoch(dyn: PyTree, epoch_key: jax.Array) -> tuple[PyTree, jax.Array]:
        perm_key, step_key = jr.split(epoch_key)
        if b == n:
            return run_step(dyn, x, y, step_key)
        batches = epoch_batches(perm_key, n, b)

        def batch_step(d: PyTree, inputs: tuple[jax.Array, jax.Array]):
            idx, k = inputs
            return run_step(d, take(x, idx), take(y, idx), k)

        dyn, losses = jax.lax.scan(batch_step, dyn, (batches, jr.split(step_key, batches.shape[0])))
        return dyn, jnp.mean(losses, axis=0)

    dynamic, losses = jax.lax.scan(epoch, dynamic, jr.split(key, num_epochs))
    return eqx.combine(dynamic, static), losses.T


def _is_count(v: Any) -> bool:
    """A Python/NumPy integer or a 0-d integer array: an epoch count, never a data set."""
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return getattr(v, "ndim", None) == 0 and jnp.issubdtype(getattr(v, "dtype", None), jnp.integer)


def run_arguments(where: str, args: tuple, kwargs: dict) -> tuple[Any, Any, int, int | None]:
    """``(x, y, num_epochs, batch_size)`` from the arguments of a runner's ``run``.

    Two positional orders are accepted and told apart by where the epoch count (an int) is:
    pyrox's / NumPyro's ``run(seed, num_epochs, x, y)`` and jno's ``run(seed, x, y,
    num_epochs)``; ``batch_size`` may follow either. Keywords ``x=``, ``y=``,
    ``num_epochs=``, ``batch_size=`` fill what the positions leave open.
    """
    unknown = set(kwargs) - {"x", "y", "num_epochs", "batch_size"}
    if unknown:
        raise TypeError(f"{where}: unexpected keyword argument(s) {sorted(unknown)}")
    args = list(args)
    if len(args) > 4:
        raise TypeError(f"{where}: too many positional arguments ({len(args) + 1} with seed)")
    if args and _is_count(args[0]):
        names = ["num_epochs", "x", "y", "batch_size"]  # pyrox / NumPyro order
    else:  # data is never a bare int, so an int first means the epoch count comes first
        names = ["x", "y", "num_epochs", "batch_size"]  # jno's order
    got = dict(zip(names, args))
    for k, v in kwargs.items():
        if k in got:
            raise TypeError(f"{where}: got {k!r} both by position and by keyword")
        got[k] = v
    missing = [k for k in ("x", "y", "num_epochs") if k not in got]
    if missing:
        raise TypeError(
            f"{where}: missing {', '.join(missing)}; call run(seed, num_epochs, x, y) "
            "(pyrox/NumPyro order) or run(seed, x, y, num_epochs)"
        )
    num_epochs = got["num_epochs"]
    if not _is_count(num_epochs):
        raise TypeError(
            f"{where}: num_epochs must be an int, got {type(num_epochs).__name__}; call "
            "run(seed, num_epochs, x, y) (pyrox/NumPyro order) or run(seed, x, y, num_epochs)"
        )
    if int(num_epochs) < 1:
        raise ValueError(f"{where}: num_epochs must be >= 1, got {int(num_epochs)}")
    return got["x"], got["y"], int(num_epochs), got.get("batch_size")
