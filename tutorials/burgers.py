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
# uniformly spread collocation points resolve badly. The recipe:
#
# 1. float64 (`jax_enable_x64`), in which the recipe was measured;
# 2. the initial and boundary conditions built into the output,
#    $u = -\sin(\pi x) + t (1 - x^2) N(x, t)$, so the residual is the only loss;
# 3. Adam, then `.optimizer(optax.lbfgs())` and a second `crux.solve`;
# 4. in both, the interior points move every `EVERY` steps to where the residual is large:
#    `crux.solve(n, resample=jno.sampling.rad(x, every=EVERY))`.
#
# The reference is the exact solution from the Cole–Hopf transform, computed below by
# Gauss–Hermite quadrature. `JNO_TUTORIAL_STEPS` sets the L-BFGS steps; the default (6000)
# runs in about two minutes on two CPU cores and reaches a relative L2 error of 4.7e-3
# (measured; benchmarks/README.md compares fixed points and a hand-written jax + optax
# program at 8000 steps). `JNO_TUTORIAL_SIZE=small` runs every cell in seconds, with fewer
# points and steps and a correspondingly larger error (tutorials/README.md).

# %%
import os
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jno  # noqa: E402
from jno.solve.resample import ps_key  # noqa: E402

SIZE = os.environ.get("JNO_TUTORIAL_SIZE", "full")
if SIZE not in ("full", "small"):
    raise ValueError(f"JNO_TUTORIAL_SIZE must be 'full' or 'small', got {SIZE!r}")
SMALL = SIZE == "small"
ADAM_STEPS = 200 if SMALL else 1000
LBFGS_STEPS = int(os.environ.get("JNO_TUTORIAL_STEPS", 200 if SMALL else 6000))
EVERY = 100 if SMALL else 500
POINTS = 500 if SMALL else 2000
OUTPUT_DIR = Path(os.environ.get("JNO_OUTPUT_DIR", "outputs"))
NU = 0.01 / np.pi
TIMES = (0.25, 0.5, 0.75)


def show(fig):
    """Draw ``fig`` below the cell in Jupyter (inline backend); a script only saves it."""
    if "inline" in matplotlib.get_backend():
        plt.show()
    else:
        plt.close(fig)


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
# 2000 interior points drawn uniformly in space-time (`sample=`, seeded by the domain), an
# 8 × 20 tanh MLP $N$ on $(x, t)$ (Raissi et al.'s size) and the hard-constrained $u$.

# %%
dom = jno.domain(constructor=jno.domain.line(0.01, x_range=(-1, 1)), time=(0.0, 1.0, 2))
x, t = dom.variable("interior", sample=POINTS)
net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=20, num_layers=8, key=jax.random.PRNGKey(0)), name="u")
net.optimizer(optax.adam(1e-3))

u = -jno.np.sin(jno.np.pi * x) + t * (1 - x**2) * net(jno.np.concat([x, t], axis=-1))
pde = jno.diff(u, t) + u * jno.diff(u, x) - NU * jno.diff(u, x, order=2)
crux = jno.core([pde.mse.name("pde")], seed=0)

# %% [markdown]
# RAD (Wu et al. 2023, `k = 1, c = 1`: a pool of 10 N uniform candidates, N of them drawn
# with probability $\propto \varepsilon / \overline{\varepsilon} + 1$, $\varepsilon = |r|$)
# every `EVERY` steps, under Adam and then under L-BFGS. The new points keep their count, so
# nothing recompiles. Adam keeps its moments across a move; L-BFGS starts afresh after each
# move (its curvature pairs describe the old points).

# %%
rad = jno.sampling.rad(x, every=EVERY)
crux.solve(ADAM_STEPS, print_rate=EVERY, resample=rad)
net.optimizer(optax.lbfgs())
crux.solve(LBFGS_STEPS, print_rate=EVERY, resample=rad)

# %% [markdown]
# ## Error against the exact solution

# %%
xs = np.linspace(-1, 1, 256)
points = np.concatenate([np.stack([xs, np.full_like(xs, s)], 1) for s in TIMES])
exact = np.concatenate([cole_hopf(xs, s) for s in TIMES])
raw = np.asarray(jax.vmap(net.module)(jnp.asarray(points)))[:, 0]
pred = -np.sin(np.pi * points[:, 0]) + points[:, 1] * (1 - points[:, 0] ** 2) * raw
error = float(np.linalg.norm(pred - exact) / np.linalg.norm(exact))
print(f"relative L2 error at t = {TIMES}: {error:.3e}")

# %% [markdown]
# Where RAD left the interior points (the solve state holds the live coordinates): they
# crowd around the front at $x = 0$ for $t \gtrsim 0.3$.

# %%
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
show(fig)

RESULTS = {"error": error, "coords": coords, "points": points, "pred": pred}
