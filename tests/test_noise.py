"""Observation noise is drawn once from the crux seed and is the same data everywhere
(PITFALLS 4); redrawing is opt-in."""

import numpy as np
import optax

import jno


def build(seed=0, redraw=False):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.001))
    x, _ = dom.variable("interior")
    clean = 2.0 * jno.np.sin(jno.np.pi * x)
    target = clean + jno.noise.gaussian(std=0.1, redraw=redraw)
    a = jno.np.parameter((1,), name="a").optimizer(optax.sgd(0.0))
    crux = jno.core([(a * x - target).mse], seed=seed)
    return crux, clean, target


def test_noise_is_gaussian_fixed_and_reproducible():
    crux, clean, target = build()
    eps = crux.eval([target]) - crux.eval([clean])
    assert abs(eps.std() - 0.1) < 0.1 * 4 / np.sqrt(2 * eps.size)
    assert abs(eps.mean()) < 4 * 0.1 / np.sqrt(eps.size)
    # the loss the solver sees uses the same draw: with a = 0 the loss is mean(target²)
    h = crux.solve(3, print_rate=3)
    np.testing.assert_allclose(h.total_loss, np.mean(crux.eval([target]) ** 2), rtol=1e-5)
    again, _, target2 = build()
    np.testing.assert_array_equal(crux.eval([target]), again.eval([target2]))
    other, _, target3 = build(seed=1)
    assert not np.allclose(crux.eval([target]), other.eval([target3]))


def test_redraw_is_opt_in():
    crux, _, _ = build(redraw=True)
    h = crux.solve(3, print_rate=3)
    assert len(set(np.round(h.total_loss, 7))) == 3  # a is held, the data change each step
