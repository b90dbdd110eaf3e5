"""A linear model with two nearly collinear features (posterior correlation about -0.99): the
sampler tests' hard Gaussian posterior, with its closed form in float64 numpy."""

import numpy as np

import jno

SIGMA, PRIOR = 0.1, 10.0


def collinear_problem(factory, *, mesh=0.02, **kw):
    """Sample ``θ`` of ``y = θ0 f0 + θ1 f1 + ε`` (``f1 = f0 + 0.1 sin πx``) with
    ``.bayesian(factory, **kw)``; returns ``(crux, θ, exact mean (2,), exact covariance
    (2, 2))`` under the default ``N(0, 10²)`` prior."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=mesh))
    x, _ = dom.variable("interior")
    f0, f1 = x, x + 0.1 * jno.np.sin(jno.np.pi * x)
    target = 1.0 * f0 - 0.5 * f1 + jno.noise.gaussian(std=SIGMA)
    th = jno.np.parameter((2,), name="theta")
    th.bayesian(factory, **kw)
    residual = th[0] * f0 + th[1] * f1 - target
    crux = jno.core([residual.gaussian(std=SIGMA)], seed=1)
    crux.solve(print_rate=500)
    xs = np.asarray(dom.points("interior")[:, 0], np.float64)
    phi = np.stack([xs, xs + 0.1 * np.sin(np.pi * xs)], axis=1)
    y = np.asarray(crux.eval([target])[:, 0], np.float64)
    cov = np.linalg.inv(phi.T @ phi / SIGMA**2 + np.eye(2) / PRIOR**2)
    mean = cov @ phi.T @ y / SIGMA**2
    return crux, th, mean, cov
