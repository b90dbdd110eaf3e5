# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Loss balancing: the Helmholtz problem of Wang, Teng & Perdikaris (2021)
#
# $\Delta u + u = q$ on $[-1, 1]^2$ with $u = 0$ on the boundary and the exact solution
# $u = \sin(\pi x)\sin(4\pi y)$. The residual's gradient is much larger than the boundary
# loss's (the source has size $(4\pi)^2 \approx 158$), so with the constraints weighted
# equally Adam fits the PDE and neglects the boundary: the network finds a wrong solution
# of the PDE. Learning-rate annealing (`jno.balance.grad_norm`) raises the boundary weight
# to `max |∇ L_pde| / mean |∇ L_bc|` (a moving average) during the solve.
#
# This script trains the same network twice at the same budget, prints both errors against
# the exact solution and plots the boundary weight's history
# (`crux.history.metrics["weight:bc"]`). `JNO_TUTORIAL_STEPS` sets the Adam steps (default
# 20000); `JNO_TUTORIAL_SIZE=small` runs every cell in seconds, on a coarser grid and with
# 300 steps, too few for either solve to converge (tutorials/README.md).

# %%
import os
from pathlib import Path

import jax
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import optax

import jno

SIZE = os.environ.get("JNO_TUTORIAL_SIZE", "full")
if SIZE not in ("full", "small"):
    raise ValueError(f"JNO_TUTORIAL_SIZE must be 'full' or 'small', got {SIZE!r}")
SMALL = SIZE == "small"
STEPS = int(os.environ.get("JNO_TUTORIAL_STEPS", 300 if SMALL else 20000))
MESH = 0.1 if SMALL else 0.05  # grid spacing of the collocation points
OUTPUT_DIR = Path(os.environ.get("JNO_OUTPUT_DIR", "outputs"))
A1, A2 = 1.0, 4.0


def show(fig):
    """Draw ``fig`` below the cell in Jupyter (inline backend); a script only saves it."""
    if "inline" in matplotlib.get_backend():
        plt.show()
    else:
        plt.close(fig)


def solve(weights):
    """Train a 3x50 tanh MLP for STEPS Adam steps; return (relative L2 error, crux)."""
    dom = jno.domain(constructor=jno.domain.rect(MESH, x_range=(-1, 1), y_range=(-1, 1)))
    x, y, _ = dom.variable("interior")
    xb, yb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=50, num_layers=3, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(optax.exponential_decay(1e-3, 1000, 0.9)))
    u = net(jno.np.concat([x, y], axis=-1))
    q = (1 - (A1 * np.pi) ** 2 - (A2 * np.pi) ** 2) * (
        jno.np.sin(A1 * np.pi * x) * jno.np.sin(A2 * np.pi * y)
    )
    pde = jno.np.laplacian(u, [x, y]) + u - q
    bc = net(jno.np.concat([xb, yb], axis=-1))
    crux = jno.core([pde.mse.name("pde"), bc.mse.name("bc")], weights=weights)
    crux.solve(STEPS, print_rate=min(1000, STEPS))
    pts = dom.points("interior")
    exact = (np.sin(A1 * np.pi * pts[:, 0]) * np.sin(A2 * np.pi * pts[:, 1]))[:, None]
    pred = crux.eval([u])
    return float(np.linalg.norm(pred - exact) / np.linalg.norm(exact)), crux


# %%
fixed_error, fixed = solve(None)
balanced_error, balanced = solve(jno.balance.grad_norm(alpha=0.1, every=10))
print(f"relative L2 error, fixed weights:    {fixed_error:.3e}")
print(f"relative L2 error, grad_norm weights: {balanced_error:.3e}")

# %% [markdown]
# The boundary weight rises within the first few hundred steps and then settles; the PDE
# weight is the reference and stays 1.

# %%
steps, w_bc = balanced.history.metrics["weight:bc"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].plot(steps, w_bc)
axes[0].set_xlabel("step")
axes[0].set_ylabel("weight of the boundary loss")
axes[0].set_yscale("log")
axes[0].set_title("grad_norm weight history")
for label, crux in (("fixed", fixed), ("grad_norm", balanced)):
    axes[1].semilogy(crux.history.steps, crux.history.losses["bc"], label=f"bc, {label}")
axes[1].set_xlabel("step")
axes[1].set_ylabel("boundary loss")
axes[1].legend()
fig.tight_layout()
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
fig.savefig(OUTPUT_DIR / "loss_balancing.png", dpi=120)
show(fig)

RESULTS = {"fixed_error": fixed_error, "balanced_error": balanced_error}
