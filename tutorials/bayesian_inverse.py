# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A Bayesian inverse problem, three likelihoods
#
# Recover $(A, B)$ in
#
# $$
# d(x) = A\sin(\pi x) + B\cos(\pi x), \qquad x_i = 0, 0.01, \dots, 1 \;(N = 101),
# $$
#
# from observations $d_i = 3.14\sin(\pi x_i) - 2.71\cos(\pi x_i) + \varepsilon_i$,
# $\varepsilon_i \sim \mathcal N(0, \sigma^2)$ with $\sigma = 0.1$: the quick example of the
# `.bayesian` guide. We sample $(A, B)$ with 4 NUTS chains under three likelihoods for the
# same residual $r_i = A\sin(\pi x_i) + B\cos(\pi x_i) - d_i$:
#
# | variant | constraint | log-likelihood |
# |---|---|---|
# | `mse` | `r.mse` (the guide's tempered convention, $\lambda = 1$) | $-\lambda\,\frac1N\sum_i r_i^2$ |
# | `gaussian` | `r.gaussian(std=0.1)` | $-\frac{1}{2\sigma^2}\sum_i r_i^2 - N\log(\sigma\sqrt{2\pi})$ |
# | `mse_scaled` | `r.mse` with `likelihood_scale` $\lambda = N/(2\sigma^2)$ | $-\lambda\,\frac1N\sum_i r_i^2$ |
#
# and the default prior $A, B \sim \mathcal N(0, 10^2)$
# (`jno.bayesian.priors.gaussian(sigma=10.0)`).
#
# ## The exact posterior
#
# $-\lambda\frac1N\sum_i r_i^2 = -\frac{1}{2s^2}\sum_i r_i^2$ with $s^2 = N/(2\lambda)$: the
# `.mse` objective *is* a Gaussian likelihood, with noise variance $s^2 = N/(2\lambda)$
# instead of $\sigma^2$. The model is linear in $\theta = (A, B)$,
# $d = \Phi\theta + \varepsilon$ with $\Phi = [\sin(\pi x), \cos(\pi x)]$, so with the prior
# $\mathcal N(0, \tau^2 I)$, $\tau = 10$, the posterior is Gaussian:
#
# $$
# \Sigma_{\text{post}} = \Big(\frac{\Phi^\top\Phi}{s^2} + \frac{I}{\tau^2}\Big)^{-1},\qquad
# \mu_{\text{post}} = \Sigma_{\text{post}}\,\frac{\Phi^\top d}{s^2}.
# $$
#
# On this grid the two columns of $\Phi$ are orthogonal, $\sum_i \sin^2(\pi x_i) = 50$ and
# $\sum_i \cos^2(\pi x_i) = 51$, so the posterior std of $A$ is
# $\big(50/s^2 + 1/\tau^2\big)^{-1/2} \approx s/\sqrt{50}$. The `mse` variant
# ($s^2 = N/2 = 50.5$) gives $\operatorname{std}(A) \approx 1$ *whatever the data and the
# noise*, while the data support $\sigma/\sqrt{50} = 0.014$. Choosing $\lambda = N/(2\sigma^2)$
# makes $s = \sigma$, and `mse_scaled` is the same posterior as `gaussian` (the two
# log-densities differ by a constant).

# %%
import os
import time
from pathlib import Path

import blackjax
import jax
import matplotlib
import matplotlib.pyplot as plt
import numpy as np

import jno

# JNO_TUTORIAL_SIZE=small runs every cell with fewer draws (tutorials/README.md); the
# numbers quoted in the text are those of the full size.
SIZE = os.environ.get("JNO_TUTORIAL_SIZE", "full")
if SIZE not in ("full", "small"):
    raise ValueError(f"JNO_TUTORIAL_SIZE must be 'full' or 'small', got {SIZE!r}")
SMALL = SIZE == "small"
OUTPUT_DIR = Path(os.environ.get("JNO_OUTPUT_DIR", "outputs"))
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)


def show(fig):
    """Draw ``fig`` below the cell in Jupyter (inline backend); a script only saves it."""
    if "inline" in matplotlib.get_backend():
        plt.show()
    else:
        plt.close(fig)


SIGMA = 0.1  # observation noise
PRIOR_SIGMA = 10.0  # the default prior N(0, 10²)
A_TRUE, B_TRUE = 3.14, -2.71
WARMUP, KEEP, CHAINS = (100, 100, 2) if SMALL else (500, 1000, 4)
N = 101

# %% [markdown]
# ## One problem, three solves
#
# Each solve builds its own parameters and crux. The observation noise is drawn once from the
# crux seed (`jno.core(..., seed=0)`), so all three see the same data; `crux.eval([target])`
# returns that draw. `init_jitter=0.5` starts the 4 chains at different points so that R-hat
# means something; window adaptation (500 steps) tunes each chain's step size and diagonal
# mass matrix on its own.

# %%
VARIANTS = {
    "mse": ("mse", 1.0),
    "gaussian": ("gaussian", 1.0),
    "mse_scaled": ("mse", N / (2 * SIGMA**2)),
}


def solve_variant(likelihood: str, scale: float):
    π = jno.np.pi
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))
    x, _ = dom.variable("interior")
    target = A_TRUE * jno.np.sin(π * x) + B_TRUE * jno.np.cos(π * x) + jno.noise.gaussian(std=SIGMA)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0), 2)
    a = jno.np.parameter((1,), key=k1, name="A")
    b = jno.np.parameter((1,), key=k2, name="B")
    for p in (a, b):
        p.bayesian(
            blackjax.nuts,
            warmup=WARMUP,
            keep=KEEP,
            num_chains=CHAINS,
            init_jitter=0.5,
            likelihood_scale=scale,
        )
    residual = a * jno.np.sin(π * x) + b * jno.np.cos(π * x) - target
    constraint = residual.gaussian(std=SIGMA) if likelihood == "gaussian" else residual.mse
    crux = jno.core([constraint], seed=0)
    t0 = time.perf_counter()
    crux.solve(progress=False)
    elapsed = time.perf_counter() - t0
    xs = dom.points("interior")[:, 0]
    data = crux.eval([target])[:, 0]
    chains = {
        "A": np.asarray(a.posterior_samples)[..., 0],  # (K, N_keep)
        "B": np.asarray(b.posterior_samples)[..., 0],
    }
    divergent = int(np.sum(a.posterior_diagnostics["is_divergent"]))
    return xs, data, chains, divergent, elapsed


runs = {name: solve_variant(*spec) for name, spec in VARIANTS.items()}
xs, data = runs["gaussian"][0], runs["gaussian"][1]
for name, (_, d, *_rest) in runs.items():
    assert np.array_equal(d, data), f"{name} saw different data"
print(f"{N} points, data drawn once: d[:3] = {data[:3]}")


# %% [markdown]
# ## Exact posteriors
#
# The conjugate formulas above, in float64, for the noise variance each variant implies.


# %%
def exact_posterior(xs, data, noise_var, prior_sigma=PRIOR_SIGMA):
    phi = np.stack([np.sin(np.pi * xs), np.cos(np.pi * xs)], axis=1).astype(np.float64)
    cov = np.linalg.inv(phi.T @ phi / noise_var + np.eye(2) / prior_sigma**2)
    mean = cov @ phi.T @ data.astype(np.float64) / noise_var
    return mean, np.sqrt(np.diag(cov))


NOISE_VAR = {
    name: (SIGMA**2 if lik == "gaussian" else N / (2 * scale))
    for name, (lik, scale) in VARIANTS.items()
}
EXACT = {name: exact_posterior(xs, data, v) for name, v in NOISE_VAR.items()}
for name, (mean, std) in EXACT.items():
    print(
        f"{name:11s} noise variance {NOISE_VAR[name]:8.4g}: exact mean {mean.round(4)}, "
        f"std {std.round(4)}"
    )

# %% [markdown]
# ## Posterior table
#
# Per variant and parameter: the sample mean, standard deviation and 90 % interval over all
# $4 \times 1000$ draws, rank-normalised split R-hat (`jno.bayesian.rhat`), bulk ESS
# (`jno.bayesian.ess`), the Monte-Carlo standard error of the mean
# $\text{MCSE} = \text{std}/\sqrt{\text{ESS}}$, and the exact mean, std and 90 % interval
# ($\mu \pm 1.645\,\text{std}$). "z" is (mean − exact mean) / MCSE: about $\mathcal N(0,1)$
# when the sampler is right.

# %%
Z90 = 1.6448536269514722
RESULTS: dict = {
    "xs": xs,
    "data": data,
    "sigma": SIGMA,
    "prior_sigma": PRIOR_SIGMA,
    "noise_var": NOISE_VAR,
    "variants": {},
}
header = (
    f"{'variant':11s}{'':3s}{'mean':>9s}{'std':>9s}{'5%':>9s}{'95%':>9s}{'R-hat':>8s}"
    f"{'ESS':>7s}{'z':>7s} | {'exact mean':>10s}{'exact std':>10s}{'exact 5%':>10s}"
    f"{'exact 95%':>10s}"
)
print(header)
print("-" * len(header))
for name, (_, _, chains, divergent, elapsed) in runs.items():
    mean, std = EXACT[name]
    rows = {}
    for i, pname in enumerate(("A", "B")):
        c = chains[pname]
        lo, hi = np.quantile(c, [0.05, 0.95])
        ess = float(jno.bayesian.ess(c))
        row = dict(
            mean=float(c.mean()),
            std=float(c.std()),
            q05=float(lo),
            q95=float(hi),
            rhat=float(jno.bayesian.rhat(c)),
            ess=ess,
            mcse=float(c.std() / np.sqrt(ess)),
            exact_mean=float(mean[i]),
            exact_std=float(std[i]),
            exact_q05=float(mean[i] - Z90 * std[i]),
            exact_q95=float(mean[i] + Z90 * std[i]),
        )
        row["z"] = (row["mean"] - row["exact_mean"]) / row["mcse"]
        rows[pname] = row
        print(
            f"{name if i == 0 else '':11s}{pname:3s}{row['mean']:9.4f}{row['std']:9.4f}"
            f"{row['q05']:9.4f}{row['q95']:9.4f}{row['rhat']:8.4f}{row['ess']:7.0f}"
            f"{row['z']:7.2f} | {row['exact_mean']:10.4f}{row['exact_std']:10.4f}"
            f"{row['exact_q05']:10.4f}{row['exact_q95']:10.4f}"
        )
    RESULTS["variants"][name] = {
        **rows,
        "divergent": divergent,
        "seconds": elapsed,
        "chains": chains,
    }
print()
for name, v in RESULTS["variants"].items():
    print(
        f"{name:11s} {v['divergent']} divergent of {CHAINS * KEEP}, solve {v['seconds']:.1f} s "
        "(compilation included)"
    )

# %% [markdown]
# ## Figure: histograms against the exact densities
#
# One row per variant. The `mse` histograms are about 70 times wider than the other two
# (look at the axes): the sampler is right in every row — each histogram follows the exact
# density of its own likelihood — but only the calibrated likelihoods answer the question
# "what do 101 observations with $\sigma = 0.1$ say about $A$ and $B$?".

# %%
fig, axes = plt.subplots(len(runs), 2, figsize=(10, 8))
for r, (name, v) in enumerate(RESULTS["variants"].items()):
    for col, pname in enumerate(("A", "B")):
        ax = axes[r, col]
        row = v[pname]
        c = v["chains"][pname].ravel()
        ax.hist(c, bins=60, density=True, alpha=0.5, color="C0", label=f"NUTS, {CHAINS} chains")
        grid = np.linspace(
            row["exact_mean"] - 4.5 * row["exact_std"],
            row["exact_mean"] + 4.5 * row["exact_std"],
            300,
        )
        dens = np.exp(-0.5 * ((grid - row["exact_mean"]) / row["exact_std"]) ** 2) / (
            row["exact_std"] * np.sqrt(2 * np.pi)
        )
        ax.plot(grid, dens, "k", lw=1.5, label="exact posterior")
        ax.axvline(
            A_TRUE if pname == "A" else B_TRUE, color="C3", ls="--", lw=1, label="true value"
        )
        ax.set_title(
            f"{pname}, {name}: std {row['std']:.4f} (exact {row['exact_std']:.4f})", fontsize=9
        )
        if r == 0 and col == 0:
            ax.legend(fontsize=7)
fig.tight_layout()
FIGURE_PATH = OUTPUT_DIR / "bayesian_inverse.png"
fig.savefig(FIGURE_PATH, dpi=100)
show(fig)
RESULTS["figure"] = str(FIGURE_PATH)
print(f"figure: {FIGURE_PATH}")

# %% [markdown]
# Rank plots of the `gaussian` run (`jno.plot.rank`): the draws of all four chains are ranked
# together and each chain's ranks binned; chains that sample the same distribution give flat
# histograms at the dashed line.

# %%
fig = jno.plot.rank(RESULTS["variants"]["gaussian"]["chains"])
RANK_PATH = OUTPUT_DIR / "bayesian_inverse_rank.png"
fig.savefig(RANK_PATH, dpi=80)
show(fig)
print(f"rank plots (gaussian): {RANK_PATH}")

# %% [markdown]
# ## Reading the table
#
# * **`mse` (λ = 1)** samples its own posterior correctly — mean and std agree with the exact
#   values for noise variance $N/2 = 50.5$ — but that posterior says $A = 3.1 \pm 1.0$: the
#   objective $-\frac1N\sum r_i^2$ is a Gaussian likelihood with noise standard deviation
#   $\sqrt{N/2} \approx 7.1$, seventy times the real $\sigma = 0.1$, so the std of $A$ is
#   $\approx 1$ where the data support $0.014$. Its 90 % interval is useless as an error bar.
# * **`gaussian`** (`r.gaussian(std=0.1)`) is the calibrated likelihood: std $0.014$, and the
#   sample means sit within a few MCSE of the exact conjugate mean.
# * **`mse_scaled`**: the same `.mse` constraint with `likelihood_scale` $= N/(2\sigma^2) =
#   5050$ turns $-\lambda\,\text{mean}(r^2)$ into $-\sum r_i^2/(2\sigma^2)$: the same posterior
#   as `gaussian`, up to a constant. Use it when a code path must stay on `.mse`.
#
# Rule: use `.gaussian(std=σ)` when you know the noise level (σ may also be a sampled
# `Parameter`); keep `.mse` with λ = 1 for optimisation, where only the minimiser matters.

# %%
for name in ("gaussian", "mse_scaled"):
    for pname in ("A", "B"):
        row = RESULTS["variants"][name][pname]
        print(
            f"{name:11s} {pname}: |mean - exact| = {abs(row['z']):.2f} MCSE, "
            f"std / exact std = {row['std'] / row['exact_std']:.3f}"
        )
