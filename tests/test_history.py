"""History records, callbacks and plotting."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import optax  # noqa: E402

import jno  # noqa: E402


def test_history_losses_callbacks_and_plot():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    a = jno.np.parameter((1,), name="a", init=0.0).optimizer(optax.sgd(1.0))
    r1 = (a - 1.0) * x
    crux = jno.core([r1.mse.name("fit"), 0.5 * (a * 0.0 + x).mse])
    seen = []
    h = crux.solve(25, print_rate=10, callbacks=[seen.append])
    assert [s.step for s in seen] == [10, 20, 25]
    assert h.names == ["fit", "mse_1"]
    assert h.steps.tolist() == list(range(25))
    # loss of `fit` at step 0 with a = 0 is mean(x²); the weighted constant is 0.5 mean(x²)
    xs = dom.points("interior")[:, 0]
    np.testing.assert_allclose(h.losses["fit"][0], np.mean(xs**2), rtol=1e-6)
    np.testing.assert_allclose(h.losses["mse_1"], 0.5 * np.mean(xs**2), rtol=1e-6)
    np.testing.assert_allclose(h.total_loss, h.losses["fit"] + h.losses["mse_1"], rtol=1e-6)
    assert h.losses["fit"][-1] < 1e-3 * h.losses["fit"][0]
    assert h.wall_time > 0
    ax = h.plot()
    assert len(ax.lines) == 3
