# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A Bayesian last layer on a PINN (pattern B)
#
# We solve the Poisson problem
#
# $$
# u''(x) = -\pi^2 \sin(\pi x), \qquad u(0) = u(1) = 0, \qquad x \in [0, 1],
# $$
#
# whose solution is $u(x) = \sin(\pi x)$, with a small tanh network
# $u_\theta(x) = w^\top h_\phi(x) + b$. The hidden layers $h_\phi$ (the **body**) are
# trained by Adam; the output layer $\theta_{\text{head}} = (w, b)$ (the **head**) is
# *sampled* with stochastic-gradient Langevin dynamics (SGLD). This is "pattern B" of
# `docs/vi_masks_lora.md`: one model, a mask that selects the head, a global optimizer for
# everything outside the mask:
#
# ```python
# net.optimizer(optax.adam(schedule))                 # the body (every leaf outside the mask)
# net.mask(head_mask).bayesian(blackjax.sgld, ...)    # the head
# ```
#
# ## What is sampled
#
# The PDE residual and the boundary values get calibrated Gaussian likelihoods,
# `pde.gaussian(std=σ_pde)` and `bc.gaussian(std=σ_bc)`, and the head an $N(0, 10^2)$ prior.
# At every step the head chains take one SGLD step on
#
# $$
# \log p(\theta_{\text{head}} \mid \phi) =
#   -\tfrac12 \sum_i \frac{r_{\text{pde}}(x_i)^2}{\sigma_{\text{pde}}^2}
#   -\tfrac12 \sum_{j} \frac{u(x_j)^2}{\sigma_{\text{bc}}^2}
#   + \log p(\theta_{\text{head}}) + \text{const},
# $$
#
# with the body $\phi$ held at its current value. Because $u$ is *linear* in the head, this
# conditional posterior is exactly Gaussian for a fixed body, which gives us an independent
# reference to check the sampler against at the end.
#
# ## The body gradient with K chains: Monte-Carlo EM
#
# With `num_chains=K` there are K head chains but one body. Each step the body takes one Adam
# step on the loss **averaged over the K chains' heads**,
#
# $$
# \nabla_\phi \; \frac1K \sum_{k=1}^K L\big(\phi, \theta^{(k)}_{\text{head}}\big)
# \;\approx\; \nabla_\phi \, \mathbb{E}_{p(\theta_{\text{head}} \mid \phi)}
#   \big[L(\phi, \theta_{\text{head}})\big],
# $$
#
# a Monte-Carlo estimate of the expected loss under the current head posterior: stochastic
# (Monte-Carlo) EM, where the E-step is "run the head chains" and the M-step is "one
# optimiser step for the body". More chains give a less noisy body gradient. With K = 1 the
# body would chase the noise of a single chain.
#
# ## Two settings that matter
#
# * **The body must stop moving before the draws are kept.** `posterior_samples` holds the
#   full network at every draw, but the leaves outside the mask are the *final* body: each
#   kept head draw is paired with the body at the end of the solve. A head drawn while the
#   body was different does not belong with the final body, so we decay the body's learning
#   rate to zero by the end of `warmup` (a cosine schedule). The kept draws are then all
#   conditional on one body. Section 5 shows what a constant learning rate does.
# * **The SGLD step size.** SGLD is the Euler discretisation of Langevin dynamics and is
#   stable only for `step_size` below about 2 / (largest curvature of −log p). Here that
#   curvature is about 1.5·10⁵ (tight boundary likelihood, second derivatives of tanh
#   features), so we take `step_size = 3e-7`. Directions with small curvature mix slowly,
#   but those barely change $u$ (they are combinations of features whose second derivative
#   and boundary values almost cancel), so the predictive band is still right. Vanilla SGLD
#   on a whole network rarely concentrates (PITFALLS 13); sampling only a linear head is
#   what makes it work here.

# %%
import os
import time
from pathlib import Path

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import optax

import jno

# JNO_TUTORIAL_SIZE=small runs every cell with fewer steps and chains (tutorials/README.md);
# the numbers quoted in the text are those of the full size.
SIZE = os.environ.get("JNO_TUTORIAL_SIZE", "full")
if SIZE not in ("full", "small"):
    raise ValueError(f"JNO_TUTORIAL_SIZE must be 'full' or 'small', got {SIZE!r}")
SMALL = SIZE == "small"
OUT = Path(os.environ.get("JNO_OUTPUT_DIR", "outputs"))
OUT.mkdir(parents=True, exist_ok=True)


def show(fig):
    """Draw ``fig`` below the cell in Jupyter (inline backend); a script only saves it."""
    if "inline" in matplotlib.get_backend():
        plt.show()
    else:
        plt.close(fig)


SIGMA_PDE = 0.5  # std of the PDE-residual likelihood (the source has amplitude π² ≈ 9.9)
SIGMA_BC = 0.005  # std of the boundary-value likelihood
PRIOR_SIGMA = 10.0
K = 2 if SMALL else 4  # head chains
WARMUP, KEEP, THIN = (1000, 100, 2) if SMALL else (4000, 200, 10)
PRINT_RATE = WARMUP // 4
STEP_SIZE = 3e-7
LR = 1e-2

# %% [markdown]
# ## 1. The problem and the network
#
# `interior` holds the 51 grid nodes (the ends included), `boundary` the two ends. The
# network has two hidden layers of 16 tanh units; its output layer (16 weights and a bias)
# is the head.

# %%
dom = jno.domain(constructor=jno.domain.line(mesh_size=0.02))
x, _ = dom.variable("interior")
xb, _ = dom.variable("boundary")
x_test_np = np.linspace(0.0, 1.0, 201)[:, None]  # test points, most of them between the nodes
x_test, _ = jno.domain(constructor=jno.domain.points(x_test_np)).variable("interior")


def head_mask_of(module):
    """True on the output layer's weight and bias, False on every other leaf."""
    everything_false = jax.tree.map(lambda _: False, module)
    head_true = jax.tree.map(lambda _: True, module.output_layer)
    return eqx.tree_at(lambda m: m.output_layer, everything_false, replace=head_true)


def build(learning_rate):
    net = jno.nn.wrap(
        jno.nn.mlp(1, 1, hidden_dims=16, num_layers=2, key=jax.random.PRNGKey(0)), name="u"
    )
    net.optimizer(learning_rate)
    net.mask(head_mask_of(net.module)).bayesian(
        blackjax.sgld,
        step_size=STEP_SIZE,
        warmup=WARMUP,
        keep=KEEP,
        thin=THIN,
        num_chains=K,
        prior=jno.bayesian.priors.gaussian(sigma=PRIOR_SIGMA),
    )
    u = net(x)
    pde = jno.diff(u, x, order=2) + jno.np.pi**2 * jno.np.sin(jno.np.pi * x)
    bc = net(xb)
    crux = jno.core([pde.gaussian(std=SIGMA_PDE).name("pde"), bc.gaussian(std=SIGMA_BC).name("bc")])
    return net, crux


# %% [markdown]
# ## 2. Solve
#
# `crux.solve()` runs `warmup + keep·thin = 6000` steps. During the first 4000 the body
# learns (its learning rate decays from 1e-2 to 0) and the head chains are burnt in; then
# every 10th step of each chain is kept.

# %%
schedule = optax.cosine_decay_schedule(LR, decay_steps=WARMUP, alpha=0.0)
net, crux = build(optax.adam(schedule))
t0 = time.perf_counter()
history = crux.solve(print_rate=PRINT_RATE)
wall = time.perf_counter() - t0
samples = net.posterior_samples
print(f"solve: {wall:.1f} s; head weight draws {samples.output_layer.weight.shape}")

# %% [markdown]
# ## 3. The predictive band
#
# `crux.eval([net(x_test)])` evaluates the network at every kept draw: shape
# `(K, KEEP, 201, 1)`. The 95 % band is the 2.5 % and 97.5 % quantiles over all
# `K·KEEP` draws.

# %%
u_draws = crux.eval([net(x_test)])[..., 0].reshape(K * KEEP, -1)
lo, median, hi = np.percentile(u_draws, [2.5, 50.0, 97.5], axis=0)
exact = np.sin(np.pi * x_test_np[:, 0])
coverage = float(np.mean((exact >= lo) & (exact <= hi)))
rel_l2 = float(np.linalg.norm(median - exact) / np.linalg.norm(exact))
print(f"coverage of sin(πx): {coverage:.3f}   rel. L2 error of the median: {rel_l2:.2e}")
print(f"mean band width: {np.mean(hi - lo):.4f}")

# %% [markdown]
# ## 4. An independent check: the exact conditional posterior of the head
#
# For the final body, write $u(x) = \psi(x)^\top \theta_{\text{head}}$ with
# $\psi(x) = (h_\phi(x), 1)$. The likelihoods are Gaussian in $\theta_{\text{head}}$:
#
# $$
# \Sigma^{-1} = \frac{\Psi''^\top \Psi''}{\sigma_{\text{pde}}^2}
#   + \frac{\Psi_b^\top \Psi_b}{\sigma_{\text{bc}}^2} + \frac{I}{10^2}, \qquad
# \mu = \Sigma \, \frac{\Psi''^\top f}{\sigma_{\text{pde}}^2}, \quad f = -\pi^2 \sin(\pi x),
# $$
#
# so the predictive at a test point is $N(\psi^\top\mu, \psi^\top\Sigma\psi)$. We compute it
# in float64 with numpy and compare it with the SGLD band.


# %%
def exact_conditional_band(body):
    def psi(xx):
        h = xx
        for layer in body.layers:
            h = body.activation(layer(h))
        return jnp.concatenate([h, jnp.ones(1)])

    f64 = lambda a: np.asarray(a, np.float64)
    nodes = jnp.asarray(dom.points("interior"))
    ends = jnp.asarray(dom.points("boundary"))
    psi_dd = f64(jax.vmap(jax.jacfwd(jax.jacfwd(psi)))(nodes))[:, :, 0, 0]
    psi_b = f64(jax.vmap(psi)(ends))
    psi_t = f64(jax.vmap(psi)(jnp.asarray(x_test_np, jnp.float32)))
    source = -(np.pi**2) * np.sin(np.pi * f64(nodes)[:, 0])
    prec = (
        psi_dd.T @ psi_dd / SIGMA_PDE**2
        + psi_b.T @ psi_b / SIGMA_BC**2
        + np.eye(psi_t.shape[1]) / PRIOR_SIGMA**2
    )
    cov = np.linalg.inv(prec)
    mean = cov @ psi_dd.T @ source / SIGMA_PDE**2
    return psi_t @ mean, np.sqrt(np.einsum("ni,ij,nj->n", psi_t, cov, psi_t))


ref_mean, ref_sd = exact_conditional_band(net.module)
sd_ratio = float(np.mean(u_draws.std(axis=0) / ref_sd))
mean_err_in_sd = float(np.mean(np.abs(u_draws.mean(axis=0) - ref_mean) / ref_sd))
print(f"SGLD std / exact conditional std (mean over x): {sd_ratio:.2f}")
print(f"|SGLD mean - exact conditional mean| / exact std (mean over x): {mean_err_in_sd:.2f}")
print(
    f"exact conditional mean vs sin(πx), rel. L2: "
    f"{np.linalg.norm(ref_mean - exact) / np.linalg.norm(exact):.1e}"
)

# %% [markdown]
# The SGLD band agrees with the exact conditional posterior to about 10 % in width, and its
# mean is within a fraction of a posterior standard deviation of the exact one.
#
# ## 5. What a body that keeps moving does
#
# Same problem, but the body keeps a constant learning rate `1e-2` while the head draws are
# kept. Each kept head was drawn under the body of its own step, but `posterior_samples`
# pairs all of them with the final body. Adam keeps moving the body by about the learning
# rate per step even at a minimum (it normalises a gradient that is then mostly chain noise),
# so the band is far wider than the exact conditional one and its median is biased.

# %%
net_c, crux_c = build(optax.adam(LR))
crux_c.solve(print_rate=PRINT_RATE)
u_c = crux_c.eval([net_c(x_test)])[..., 0].reshape(K * KEEP, -1)
ref_mean_c, ref_sd_c = exact_conditional_band(net_c.module)
lo_c, median_c, hi_c = np.percentile(u_c, [2.5, 50.0, 97.5], axis=0)
constant_lr = {
    "coverage": float(np.mean((exact >= lo_c) & (exact <= hi_c))),
    "rel_l2_median": float(np.linalg.norm(median_c - exact) / np.linalg.norm(exact)),
    "sd_ratio": float(np.mean(u_c.std(axis=0) / ref_sd_c)),
}
print(f"constant learning rate: {constant_lr}")

# %% [markdown]
# ## 6. Figure and results

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
xt = x_test_np[:, 0]
ax = axes[0]
# the 2.5 % / 97.5 % quantiles and the median of u_draws: the lo, hi and median above
jno.plot.predictive_band(
    xt, u_draws, level=0.95, center="median", truth=exact, ax=ax, label="SGLD head"
)
ax.set_xlabel("x")
ax.set_ylabel("u")
ax.set_title("Bayesian last layer (pattern B)")
ax.legend(loc="lower center")
ax = axes[1]
jno.plot.predictive_band(
    xt,
    u_c - exact,
    level=0.95,
    center="median",
    ax=ax,
    color="C1",
    label="constant body lr − exact",
)
jno.plot.predictive_band(
    xt, u_draws - exact, level=0.95, center="median", ax=ax, color="C0", label="SGLD − exact"
)
ax.plot(xt, ref_mean - exact + 1.96 * ref_sd, "C3", lw=1.2, label="exact conditional ±1.96σ")
ax.plot(xt, ref_mean - exact - 1.96 * ref_sd, "C3", lw=1.2)
ax.axhline(0.0, color="k", lw=0.8)
ax.set_xlabel("x")
ax.set_ylabel("u − sin(πx)")
ax.set_ylim(-0.1, 0.1)
ax.set_title("band minus the exact solution (clipped at ±0.1)")
ax.legend(loc="lower center", fontsize=8)
fig.tight_layout()
figure = OUT / "bayesian_last_layer_pinn.png"
fig.savefig(figure, dpi=120)
show(fig)

RESULTS = {
    "coverage": coverage,
    "rel_l2_median": rel_l2,
    "band_width_mean": float(np.mean(hi - lo)),
    "exact_band_width_mean": float(np.mean(2 * 1.96 * ref_sd)),
    "sd_ratio_vs_exact_conditional": sd_ratio,
    "mean_err_in_exact_sd": mean_err_in_sd,
    "constant_lr": constant_lr,
    "wall_time_s": wall,
    "figure": str(figure),
}
for key, value in RESULTS.items():
    print(f"{key:>32}: {value}")
