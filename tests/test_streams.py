"""Named key streams: no two consumers of a solve ever draw from the same key (PITFALLS 14)."""

import jax
import jax.numpy as jnp
import numpy as np

from jno.solve import streams as st


def _rows(keys) -> list[tuple]:
    data = np.asarray(jax.random.key_data(keys) if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
                      else keys)
    return [tuple(r) for r in data.reshape(-1, data.shape[-1])]


def test_no_two_consumers_share_a_key():
    s = st.key_streams(0)
    blocks, chains, steps, pointsets = 3, 4, 3000, 3
    idx = jnp.arange(steps)
    # the roots (never used directly, except noise's, which is the noise draw's key)
    keys = {"stream roots": _rows(jnp.stack(list(s)))}
    keys["redraw"] = _rows(jax.vmap(lambda i: st.redraw_key(s, i))(idx))
    for b in range(blocks):
        keys[f"step b{b}"] = _rows(jax.vmap(lambda i, b=b: st.step_keys(s, i, b, chains))(idx))
        keys[f"jitter b{b}"] = _rows(st.jitter_keys(s, b, chains))
        keys[f"adapt b{b}"] = _rows(st.adapt_keys(s, b, chains))
        keys[f"kernel b{b}"] = _rows(st.kernel_keys(s, b, chains))
        keys[f"init b{b}"] = _rows(st.init_key(s, b)[None])
        keys[f"ensemble b{b}"] = _rows(st.ensemble_key(s, b)[None])
        keys[f"posterior b{b}"] = _rows(st.posterior_key(s, b)[None])
        for r in range(1, 11):
            keys[f"restart b{b} r{r}"] = _rows(st.restart_keys(s, b, r, chains))
    for j in range(pointsets):
        keys[f"batch p{j}"] = _rows(jax.vmap(lambda i, j=j: st.batch_key(s, i, j))(idx))
    everything = [k for rows in keys.values() for k in rows]
    # the per-step streams reuse the fold-in indices 0..2999 of other streams: that is where
    # the old fold_in(key, 1000 + b) scheme collided
    assert len(everything) == len(set(everything)), "two consumers share a key"
    assert len(everything) > steps * blocks * chains


def test_streams_depend_on_the_seed_only():
    a, b, c = st.key_streams(3), st.key_streams(3), st.key_streams(4)
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        assert not np.array_equal(np.asarray(x), np.asarray(z))
