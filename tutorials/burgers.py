# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Burgers' equation: Adam, then L-BFGS, with residual-based adaptive points (RAD)
#
# $u_t + u u_x = \nu u_{xx}$ with $\nu = 0.01/\pi$ on $[-1, 1] \times [0, 1]$,
# $u(x, 0) = -\sin(\pi x)$ and $u(\pm 1, t) = 0$ (Raissi, Perdikaris & Karniadakis 2019).
# A shock-like front forms at $x = 0$ (its slope reaches $152$ at $t \approx 0.51$), which
# uniformly spread collocation points resolve badly. The standard recipe:
#
# 1. Adam on the residual, moving the interior points every `EVERY` steps to where the
#    residual is large: `crux.solve(n, resample=jno.sampling.rad(x, every=EVERY))`;
# 2. `.optimizer(optax.lbfgs())` and a second `crux.solve`, on the last points.
#
# The reference is the exact solution from the Cole–Hopf transform, computed below by
# Gauss–Hermite quadrature. `JNO_TUTORIAL_STEPS` sets the Adam steps (L-BFGS gets half as
# many); the default runs in about a minute on two CPU cores and is far from converged
# (see benchmarks/README.md for larger budgets).

# %%
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jno

ADAM_STEPS = int(os.environ.get("JNO_TUTORIAL_STEPS", 1000))
LBFGS_STEPS = ADAM_STEPS // 2
EVERY = 250
OUTPUT_DIR = Path(os.environ.get("JNO_OUTPUT_DIR", "outputs"))
NU = 0.01 / np.pi
TIMES = (0.25, 0.5, 0.75)


# %% [markdown]
# ## The exact solution
#
# With $u = -2\nu\,\partial_x \log\theta$ the equation becomes the heat equation for
# $\theta$, so
# $u(x,t) = -\int \sin(\pi(x-\eta))\, f(x-\eta)\, e^{-\eta^2/4\nu t}\,d\eta \big/
# \int f(x-\eta)\, e^{-\eta^2/4\nu t}\,d\eta$ with $f(y) = e^{-\cos(\pi y)/2\pi\nu}$.
# Substituting $\eta = \sqrt{4\nu t}\, z$ gives Gauss–Hermite integrals; the exponents are
# shifted by their maximum before `exp` ($1/2\pi\nu = 50$).


# %%
def cole_hopf(x, t, nodes=100):
    z, w = np.polynomial.hermite.hermgauss(nodes)
    y = np.asarray(x, np.float64)[..., None] - np.sqrt(4 * NU * t) * z
    a = -np.cos(np.pi * y) / (2 * np.pi * NU) + np.log(w)
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return -(np.sin(np.pi * y) * e).sum(-1) / e.sum(-1)


# %% [markdown]
# ## The PINN
#
# A space-time grid of $48 \times 25$ interior points, a 4 × 20 tanh MLP on $(x, t)$, the
# residual, the initial and the boundary conditions as three mean-squared losses.

# %%
dom = jno.domain(constructor=jno.domain.line(2 / 47, x_range=(-1, 1)), time=(0.0, 1.0, 25))
x, t = dom.variable("interior")
x0, t0 = dom.variable("initial")
xb, tb = dom.variable("boundary")
net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=20, num_layers=4, key=jax.random.PRNGKey(0)), name="u")
net.optimizer(optax.adam(1e-3))

u = net(jno.np.concat([x, t], axis=-1))
pde = jno.diff(u, t) + u * jno.diff(u, x) - NU * jno.diff(u, x, order=2)
ic = net(jno.np.concat([x0, t0], axis=-1)) + jno.np.sin(jno.np.pi * x0)
bc = net(jno.np.concat([xb, tb], axis=-1))
crux = jno.core([pde.mse.name("pde"), ic.mse.name("ic"), bc.mse.name("bc")], seed=0)

# %% [markdown]
# Adam with RAD (Wu et al. 2023, `k = 1, c = 1`: a pool of 10 N uniform candidates, N of
# them drawn with probability $\propto \varepsilon / \overline{\varepsilon} + 1$,
# $\varepsilon = |r|$), then L-BFGS with the points fixed: a moving objective would
# invalidate the curvature pairs L-BFGS keeps.

# %%
crux.solve(ADAM_STEPS, print_rate=EVERY, resample=jno.sampling.rad(x, every=EVERY))
net.optimizer(optax.lbfgs())
crux.solve(LBFGS_STEPS, print_rate=EVERY)

# %% [markdown]
# ## Error against the exact solution

# %%
xs = np.linspace(-1, 1, 256)
points = np.concatenate([np.stack([xs, np.full_like(xs, s)], 1) for s in TIMES])
exact = np.concatenate([cole_hopf(xs, s) for s in TIMES])
pred = np.asarray(jax.vmap(net.module)(jnp.asarray(points, jnp.float32)))[:, 0]
error = float(np.linalg.norm(pred - exact) / np.linalg.norm(exact))
print(f"relative L2 error at t = {TIMES}: {error:.3e}")

# %% [markdown]
# Where RAD left the interior points (the solve state holds the live coordinates): they
# crowd around the front at $x = 0$ for $t \gtrsim 0.3$.

# %%
import matplotlib.pyplot as plt  # noqa: E402

from jno.solve.resample import ps_key  # noqa: E402

coords = np.asarray(crux.solver.state.inputs[ps_key(x.pointset)]["coords"])
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for i, s in enumerate(TIMES):
    sl = slice(i * xs.size, (i + 1) * xs.size)
    axes[0].plot(xs, exact[sl], "k-", lw=1, label="Cole-Hopf" if i == 0 else None)
    axes[0].plot(xs, pred[sl], "--", label=f"PINN, t = {s}")
axes[0].set_xlabel("x")
axes[0].set_ylabel("u")
axes[0].set_title(f"relative L2 error {error:.2e}")
axes[0].legend()
axes[1].scatter(coords[:, 0], coords[:, 1], s=2)
axes[1].set_xlabel("x")
axes[1].set_ylabel("t")
axes[1].set_title("interior points after RAD")
fig.tight_layout()
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
fig.savefig(OUTPUT_DIR / "burgers.png", dpi=120)

RESULTS = {"error": error, "coords": coords, "points": points, "pred": pred}
