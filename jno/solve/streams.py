"""Named PRNG streams: the crux seed is split once, and every consumer draws from its own.

``key_streams(seed)`` splits ``PRNGKey(seed)`` into one independent key per stream. Streams
are only ever appended: with JAX's partitionable threefry (the default) ``split(key, n)[:m]``
does not depend on ``n``, so a new stream leaves every existing key unchanged. Within a
stream, keys are derived by ``fold_in`` with the consumer's index (the step, the block, the
point set), so no two consumers ever share a key (``tests/test_streams.py`` enumerates them):

=============  ===========================================================================
stream         consumers
=============  ===========================================================================
``noise``      the observation noise, drawn once when the crux is built (``jno.noise``)
``redraw``     noise redrawn at step ``i`` (``redraw=True``): ``fold_in(redraw, i)``
``jitter``     block ``b``'s dispersed chain starts: ``split(fold_in(jitter, b), K)``
``adapt``      block ``b``'s warm-up (window adaptation, tuners): ``split(fold_in(adapt, b), K)``
``kernel``     block ``b``'s kernel states at their starts: ``split(fold_in(kernel, b), K)``
``init``       block ``b``'s log-density initializer: ``fold_in(init, b)``
``ensemble``   ensemble block ``b``'s member starts: ``fold_in(ensemble, b)``
``step``       block ``b`` at step ``i``: ``split(fold_in(fold_in(step, i), b), K)``
``batch``      point set ``j``'s subsample at step ``i``: ``fold_in(fold_in(batch, i), j)``
``posterior``  block ``b``'s end-of-solve draws (VI's ``q``): ``fold_in(posterior, b)``
``restart``    attempt ``r`` at a new start of block ``b``: ``fold_in(fold_in(restart, b), r)``
``resample``   new collocation points at step ``i`` (adaptive resampling): ``fold_in(resample, i)``
``balance``    loss balancers' random draws at step ``i``: ``fold_in(balance, i)``
``dataset``    dataset ``d`` of a batched solve: its own streams, split from
               ``fold_in(dataset, d)`` as a seed's are (:func:`dataset_streams`)
``simulate``   simulated parameters and data (calibration checks): ``fold_in(simulate, s)``
=============  ===========================================================================
"""

from __future__ import annotations

from typing import NamedTuple

import jax


class KeyStreams(NamedTuple):
    """One PRNG key per consumer family (see the module docstring)."""

    noise: jax.Array
    redraw: jax.Array
    jitter: jax.Array
    adapt: jax.Array
    kernel: jax.Array
    init: jax.Array
    ensemble: jax.Array
    step: jax.Array
    batch: jax.Array
    posterior: jax.Array
    restart: jax.Array
    resample: jax.Array
    balance: jax.Array
    dataset: jax.Array
    simulate: jax.Array


def key_streams(seed: int) -> KeyStreams:
    """Split ``PRNGKey(seed)`` once into the named streams."""
    keys = jax.random.split(jax.random.PRNGKey(seed), len(KeyStreams._fields))
    return KeyStreams(*keys)


def step_keys(streams: KeyStreams, index, block: int, population: int) -> jax.Array:
    """``(population, 2)`` keys of block ``block`` at global step ``index``."""
    key = jax.random.fold_in(jax.random.fold_in(streams.step, index), block)
    return jax.random.split(key, population)


def batch_key(streams: KeyStreams, index, pointset: int) -> jax.Array:
    """The key of point set ``pointset``'s subsample at step ``index``."""
    return jax.random.fold_in(jax.random.fold_in(streams.batch, index), pointset)


def redraw_key(streams: KeyStreams, index) -> jax.Array:
    """The key of the noise redrawn at step ``index``."""
    return jax.random.fold_in(streams.redraw, index)


def jitter_keys(streams: KeyStreams, block: int, population: int) -> jax.Array:
    return jax.random.split(jax.random.fold_in(streams.jitter, block), population)


def adapt_keys(streams: KeyStreams, block: int, population: int) -> jax.Array:
    return jax.random.split(jax.random.fold_in(streams.adapt, block), population)


def kernel_keys(streams: KeyStreams, block: int, population: int) -> jax.Array:
    return jax.random.split(jax.random.fold_in(streams.kernel, block), population)


def init_key(streams: KeyStreams, block: int) -> jax.Array:
    return jax.random.fold_in(streams.init, block)


def ensemble_key(streams: KeyStreams, block: int) -> jax.Array:
    return jax.random.fold_in(streams.ensemble, block)


def posterior_key(streams: KeyStreams, block: int) -> jax.Array:
    return jax.random.fold_in(streams.posterior, block)


def restart_keys(streams: KeyStreams, block: int, attempt: int, population: int) -> jax.Array:
    key = jax.random.fold_in(jax.random.fold_in(streams.restart, block), attempt)
    return jax.random.split(key, population)


def resample_key(streams: KeyStreams, index) -> jax.Array:
    """The key of the collocation points resampled at step ``index``."""
    return jax.random.fold_in(streams.resample, index)


def balance_key(streams: KeyStreams, index) -> jax.Array:
    """The key of a loss balancer's random draws at step ``index``."""
    return jax.random.fold_in(streams.balance, index)


def dataset_key(streams: KeyStreams, dataset: int) -> jax.Array:
    """The key of dataset ``dataset`` of a batched solve."""
    return jax.random.fold_in(streams.dataset, dataset)


def dataset_streams(streams: KeyStreams, dataset) -> KeyStreams:
    """The key streams of dataset ``dataset`` of a batched solve: ``dataset_key`` split into
    the named streams as :func:`key_streams` splits a seed's key. ``dataset`` may be traced
    (``jax.vmap`` over the dataset index). ``crux.condition(..., dataset=d)`` puts a single
    solve on these streams, so it reproduces the ``d``-th inference of ``crux.solve_batch``."""
    key = jax.random.fold_in(streams.dataset, dataset)
    return KeyStreams(*jax.random.split(key, len(KeyStreams._fields)))


def simulate_key(streams: KeyStreams, simulation: int) -> jax.Array:
    """The key of simulation ``simulation`` (parameters from the prior, then data)."""
    return jax.random.fold_in(streams.simulate, simulation)
