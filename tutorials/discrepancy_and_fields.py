# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Model discrepancy and unknown coefficient fields
#
# Two ways a physical model can be "not just a few numbers":
#
# 1. **the physics is incomplete** — the model misses a term, and fitting its coefficients as
#    if it were exact gives confident, wrong answers. A Kennedy–O'Hagan *discrepancy* term
#    $\delta \sim \mathcal{GP}(0, k)$, marginalised in closed form by the correlated Gaussian
#    likelihood `r.gaussian(std=σ, cov=kernel)`, makes the error bars honest again;
# 2. **the unknown is a function** — a diffusivity $\kappa(x)$ rather than a constant. A
#    Gaussian random field in its truncated Karhunen–Loève expansion (`jno.fields.grf`) turns
#    it into a handful of coefficients with a $\mathcal N(0, I)$ prior, sampled by NUTS through
#    a finite-difference solver wrapped by `jno.forward_model`.

# %%
import logging
import os
import time
from pathlib import Path

import blackjax
import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.pyplot as plt
import numpy as np

import jno

logging.getLogger("jno").setLevel(logging.WARNING)
# JNO_TUTORIAL_SIZE=small runs every cell with fewer draws and chains (tutorials/README.md);
# the numbers quoted in the text are those of the full size.
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


WARMUP, KEEP, CHAINS = (150, 150, 2) if SMALL else (400, 500, 4)
Z90 = 1.6448536269514722
RESULTS: dict = {"size": SIZE, "chains": CHAINS, "keep": KEEP}

# %% [markdown]
# ## Part 1 — model discrepancy (Kennedy–O'Hagan)
#
# The data come from $u(x) = \sin(\pi x) + 0.2\,x$ at 21 points $x_i = 0, 0.05, \dots, 1$,
# with noise $\sigma = 0.02$; the model is $a\sin(\pi x)$, so the truth is $a = 1$ and the
# drift $0.2x$ is physics the model lacks. Three likelihoods for the same residual
# $r_i = a\sin(\pi x_i) - y_i$:
#
# | fit | likelihood | covariance of $r$ |
# |---|---|---|
# | `plain` | `r.gaussian(std=0.02)` | $\sigma^2 I$ |
# | `fixed` | `r.gaussian(std=0.02, cov=matern52(0.3, 0.01))` | $K_{0.3, 0.01} + \sigma^2 I$ |
# | `sampled` | `r.gaussian(std=0.02, cov=matern52(ell, amp))` | $K_{\ell, s^2} + \sigma^2 I$, $\ell, s^2$ sampled |
#
# i.e. $y = a\sin(\pi x) + \delta(x) + \varepsilon$ with
# $\delta \sim \mathcal{GP}(0, s^2 k_{5/2}(|x - x'|/\ell))$ integrated out. With $a$'s prior
# $\mathcal N(0, 10^2)$ and fixed hyperparameters, the model is linear-Gaussian in $a$ and
# the posterior is the generalised-least-squares one: with $f = \sin(\pi x)$ and
# $C = K + \sigma^2 I$,
#
# $$
# \operatorname{Var}(a \mid y) = \big(f^\top C^{-1} f + 10^{-2}\big)^{-1}, \qquad
# \operatorname{E}(a \mid y) = \operatorname{Var}(a \mid y)\, f^\top C^{-1} y .
# $$
#
# The `plain` and `fixed` NUTS runs are checked against it. In `sampled`, the lengthscale
# and the variance are positive Parameters (`constraint=jno.constraints.positive`) under
# Gamma priors, $\ell \sim \Gamma(2, \text{scale } 0.15)$ (mean 0.3) and
# $s^2 \sim \Gamma(2, \text{scale } 0.01)$ (mean 0.02, i.e. $s \approx 0.14$): there is no
# closed form, and NUTS samples $(a, \ell, s^2)$ jointly.

# %%
SIGMA1 = 0.02
dom1 = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
x1, _ = dom1.variable("interior")
xs1 = dom1.points("interior")[:, 0].astype(np.float64)
truth1 = np.sin(np.pi * xs1) + 0.2 * xs1
ys1 = truth1 + SIGMA1 * np.random.default_rng(0).normal(size=xs1.size)
y1 = dom1.variable("y", ys1.astype(np.float32))
FIXED_ELL, FIXED_AMP = 0.3, 0.1**2


def gamma_prior(shape, scale):
    """log-density of Gamma(shape, scale) on a positive parameter."""
    return lambda t: jnp.sum(jax.scipy.stats.gamma.logpdf(t, shape, scale=scale))


def gls_posterior(cov, prior_sigma=10.0):
    """Closed-form posterior (mean, sd) of ``a`` for ``y = a sin(πx) + N(0, cov)``."""
    f = np.sin(np.pi * xs1)
    cf = np.linalg.solve(cov, f)
    precision = f @ cf + 1.0 / prior_sigma**2
    return float(cf @ ys1 / precision), float(precision**-0.5)


def fit_discrepancy(kind, seed):
    a = jno.np.parameter((1,), name="a", init=1.0)
    hyper = {}
    settings = dict(warmup=WARMUP, keep=KEEP, num_chains=CHAINS, init_jitter=0.1)
    a.bayesian(blackjax.nuts, **settings)
    residual = a * jno.np.sin(jno.np.pi * x1) - y1
    if kind == "plain":
        constraint = residual.gaussian(std=SIGMA1)
    elif kind == "fixed":
        kernel = jno.kernels.matern52(FIXED_ELL, FIXED_AMP)
        constraint = residual.gaussian(std=SIGMA1, cov=kernel)
    else:
        ell = jno.np.parameter((1,), name="ell", init=0.3, constraint=jno.constraints.positive)
        amp = jno.np.parameter((1,), name="amp", init=0.01, constraint=jno.constraints.positive)
        ell.bayesian(blackjax.nuts, prior=gamma_prior(2.0, 0.15), **settings)
        amp.bayesian(blackjax.nuts, prior=gamma_prior(2.0, 0.01), **settings)
        hyper = {"ell": ell, "amp": amp}
        constraint = residual.gaussian(std=SIGMA1, cov=jno.kernels.matern52(ell, amp))
    crux = jno.core([constraint], seed=seed)
    t0 = time.perf_counter()
    crux.solve(progress=False)
    chains = {"a": np.asarray(a.posterior_samples)[..., 0]}
    chains.update({k: np.asarray(p.posterior_samples)[..., 0] for k, p in hyper.items()})
    divergent = int(np.sum(a.posterior_diagnostics["is_divergent"]))
    return chains, divergent, time.perf_counter() - t0


COV1 = {
    "plain": SIGMA1**2 * np.eye(xs1.size),
    "fixed": jno.kernels.matern52(FIXED_ELL, FIXED_AMP)(xs1[:, None], xs1[:, None])
    + SIGMA1**2 * np.eye(xs1.size),
}
fits = {kind: fit_discrepancy(kind, seed) for seed, kind in enumerate(("plain", "fixed", "sampled"))}

# %% [markdown]
# ### Posterior of $a$
#
# Sample mean, sd and 90 % interval of $a$, R-hat and bulk ESS, and the closed form where
# there is one. "$|a - 1|$/sd" is how many posterior sds the truth lies from the mean.

# %%
header = (f"{'fit':8s}{'mean':>9s}{'sd':>8s}{'5%':>8s}{'95%':>8s}{'R-hat':>7s}{'ESS':>6s}"
          f"{'|a-1|/sd':>9s} | {'GLS mean':>9s}{'GLS sd':>8s}")
print(header)
print("-" * len(header))
RESULTS["discrepancy"] = {}
for kind, (chains, divergent, seconds) in fits.items():
    c = chains["a"]
    lo, hi = np.quantile(c, [0.05, 0.95])
    row = dict(mean=float(c.mean()), sd=float(c.std()), q05=float(lo), q95=float(hi),
               rhat=float(jno.bayesian.rhat(c)), ess=float(jno.bayesian.ess(c)),
               divergent=divergent, seconds=seconds, chains=chains)
    row["sds_from_truth"] = abs(row["mean"] - 1.0) / row["sd"]
    exact = gls_posterior(COV1[kind]) if kind in COV1 else (np.nan, np.nan)
    row["gls_mean"], row["gls_sd"] = exact
    RESULTS["discrepancy"][kind] = row
    print(f"{kind:8s}{row['mean']:9.4f}{row['sd']:8.4f}{lo:8.4f}{hi:8.4f}{row['rhat']:7.3f}"
          f"{row['ess']:6.0f}{row['sds_from_truth']:9.1f} | {exact[0]:9.4f}{exact[1]:8.4f}")
for name in ("ell", "amp"):
    c = fits["sampled"][0][name]
    lo, hi = np.quantile(c, [0.05, 0.95])
    print(f"sampled {name}: median {np.median(c):.3g}, 90 % interval [{lo:.3g}, {hi:.3g}], "
          f"R-hat {float(jno.bayesian.rhat(c)):.3f}")
for kind, row in RESULTS["discrepancy"].items():
    print(f"{kind:8s}: {row['divergent']} divergent of {CHAINS * KEEP}, "
          f"solve {row['seconds']:.1f} s (compilation included)")

# %% [markdown]
# ### The inferred discrepancy
#
# Given $(a, \ell, s^2)$, $\delta$ at the data points is Gaussian with mean
# $K (K + \sigma^2 I)^{-1}(y - a f)$ (GP regression of the residual). Averaging that mean
# over (a thinned set of) the `sampled` draws gives $\operatorname{E}(\delta \mid y)$; the
# missing physics was $0.2x$ — up to what $a$ absorbs, since $a\sin(\pi x)$ and $\delta$
# are confounded: only their sum is pinned down by the data.

# %%
sampled = fits["sampled"][0]
flat = {k: v.reshape(-1) for k, v in sampled.items()}
pick = np.linspace(0, flat["a"].size - 1, min(200, flat["a"].size)).astype(int)
f1 = np.sin(np.pi * xs1)
delta_means = []
for i in pick:
    k = jno.kernels.matern52(float(flat["ell"][i]), float(flat["amp"][i]))(xs1[:, None],
                                                                           xs1[:, None])
    delta_means.append(k @ np.linalg.solve(k + SIGMA1**2 * np.eye(xs1.size),
                                           ys1 - flat["a"][i] * f1))
delta_mean = np.mean(delta_means, axis=0)
RESULTS["delta_mean"] = delta_mean
RESULTS["xs1"], RESULTS["ys1"] = xs1, ys1

fig, axes = plt.subplots(1, 3, figsize=(14, 4))
ax = axes[0]
grid1 = np.linspace(0, 1, 201)
ax.plot(xs1, ys1, "k.", label="data")
ax.plot(grid1, np.sin(np.pi * grid1) + 0.2 * grid1, "k", lw=0.8, label="truth sin πx + 0.2x")
for kind, color in (("plain", "C3"), ("sampled", "C0")):
    m = RESULTS["discrepancy"][kind]["mean"]
    ax.plot(grid1, m * np.sin(np.pi * grid1), color=color, label=f"{kind}: a sin πx, a = {m:.3f}")
ax.plot(xs1, RESULTS["discrepancy"]["sampled"]["mean"] * f1 + delta_mean, "C0--",
        label="sampled: a sin πx + E δ")
ax.set_title("data and fits")
ax.legend(fontsize=7)
ax = axes[1]
for kind, color in (("plain", "C3"), ("fixed", "C2"), ("sampled", "C0")):
    ax.hist(fits[kind][0]["a"].ravel(), bins=50, density=True, alpha=0.5, color=color,
            label=kind)
for kind, color in (("plain", "C3"), ("fixed", "C2")):
    mean, sd = RESULTS["discrepancy"][kind]["gls_mean"], RESULTS["discrepancy"][kind]["gls_sd"]
    g = np.linspace(mean - 4 * sd, mean + 4 * sd, 300)
    ax.plot(g, np.exp(-0.5 * ((g - mean) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), color=color,
            lw=1.2, label=f"{kind}: closed form")
ax.axvline(1.0, color="k", ls="--", lw=1, label="true a = 1")
ax.set_title("posterior of a")
ax.legend(fontsize=7)
ax = axes[2]
ax.plot(xs1, delta_mean, "C0o-", ms=3, label="E(δ | y), sampled")
ax.plot(xs1, ys1 - f1, "k.", ms=4, label="y − sin πx (the true δ, with noise)")
ax.plot(grid1, 0.2 * grid1, "k", lw=0.8, label="0.2x")
ax.set_title("discrepancy")
ax.legend(fontsize=7)
fig.tight_layout()
FIGURE1 = OUTPUT_DIR / "discrepancy.png"
fig.savefig(FIGURE1, dpi=90)
show(fig)
RESULTS["figure_discrepancy"] = str(FIGURE1)
print(f"figure: {FIGURE1}")

# %% [markdown]
# With the `plain` likelihood, $a$ absorbs the drift: its posterior is narrow (sd $\approx
# 0.006$) and sits about 20 sds from the truth — a precise answer to the wrong question. The
# discrepancy models widen it more than tenfold and cover $a = 1$: the data cannot tell
# $a\sin(\pi x)$ from a smooth $\delta$ that looks partly like $\sin(\pi x)$, and the
# posterior says so. NUTS matches the closed form in both linear-Gaussian cases.

# %% [markdown]
# ## Part 2 — an unknown diffusivity field
#
# Find $\kappa(x) > 0$ in
#
# $$
# -\big(\kappa(x)\,u'(x)\big)' = 1, \quad x \in (0, 1), \qquad u(0) = u(1) = 0,
# $$
#
# from $u$ at 19 sensors $x = 0.05, 0.10, \dots, 0.95$ with noise $\sigma = 0.002$ (about 1.5 %
# of $\max u$). The prior: $\kappa = e^{g}$ with $g \sim \mathcal{GP}(0, k_{SE})$, squared
# exponential with $\ell = 0.15$, $s^2 = 0.5$, represented by `jno.fields.grf` with the modes
# holding 99 % of the variance: $g(x) = \sum_{j \le m} \phi_j(x)\,\xi_j$,
# $\xi \sim \mathcal N(0, I_m)$. The truth is a bump,
# $g^\star(x) = 0.7\exp\!\big(-(x - 0.35)^2 / (2 \cdot 0.15^2)\big) - 0.2$.
#
# **Forward model.** A conservative finite-difference scheme on $N = 64$ cells, nodes
# $x_j = j/N$, with $\kappa$ at the cell midpoints $x_{j+1/2}$:
#
# $$
# -\frac{\kappa_{j+1/2}(u_{j+1} - u_j) - \kappa_{j-1/2}(u_j - u_{j-1})}{h^2} = f_j,
# \qquad j = 1, \dots, N - 1,
# $$
#
# a tridiagonal system solved with `jnp.linalg.solve`, then read at the sensors by linear
# interpolation. For a constant $\kappa$ and $f = 1$ the exact solution $x(1 - x)/(2\kappa)$ is
# quadratic, and the three-point scheme is exact on quadratics: the check below.
#
# The field's basis at the midpoints, `jax.vmap(field.features)(midpoints)` ($\Phi$,
# $N \times m$), is a constant: the solver takes $\xi$ and builds
# $\kappa = \exp(\Phi\xi)$ itself. `jno.forward_model(fd_sensors, x, field.coefficients)`
# makes it a point-wise expression on the sensors, and NUTS differentiates through the solve.

# %%
N_CELLS = 64
NODES = np.linspace(0.0, 1.0, N_CELLS + 1)
MIDS = 0.5 * (NODES[1:] + NODES[:-1])
SENSORS = np.round(np.arange(1, 20) * 0.05, 10)
SIGMA2 = 0.002


def fd_solve(kappa_mid, f=1.0):
    """Nodal u (N + 1,) of -(κu')' = f, u(0) = u(1) = 0, with κ at the N cell midpoints."""
    h = 1.0 / kappa_mid.shape[0]
    main = (kappa_mid[:-1] + kappa_mid[1:]) / h**2
    off = -kappa_mid[1:-1] / h**2
    a = jnp.diag(main) + jnp.diag(off, 1) + jnp.diag(off, -1)
    rhs = jnp.full(main.shape, f, dtype=kappa_mid.dtype)
    inner = jnp.linalg.solve(a, rhs)
    zero = jnp.zeros((1,), kappa_mid.dtype)
    return jnp.concatenate([zero, inner, zero])


# the exactness check: constant κ = 2.5, f = 1
u_const = np.asarray(fd_solve(jnp.full((N_CELLS,), 2.5)))
fd_error = float(np.max(np.abs(u_const - NODES * (1 - NODES) / (2 * 2.5))))
print(f"FD solve, constant κ = 2.5: max |u - x(1-x)/(2κ)| = {fd_error:.2e} (float32)")


def g_true(x):
    return 0.7 * np.exp(-((x - 0.35) ** 2) / (2 * 0.15**2)) - 0.2


kappa_true_mid = np.exp(g_true(MIDS))
u_true = np.asarray(fd_solve(jnp.asarray(kappa_true_mid, jnp.float32)), np.float64)
ys2 = np.interp(SENSORS, NODES, u_true) + SIGMA2 * np.random.default_rng(1).normal(
    size=SENSORS.size)
RESULTS.update(fd_error_constant=fd_error, sensors=SENSORS, ys2=ys2, sigma2=SIGMA2,
               nodes=NODES, mids=MIDS, kappa_true_mid=kappa_true_mid, u_true=u_true)
print(f"max u = {u_true.max():.4f}, noise sd {SIGMA2}")

# %% [markdown]
# ### The field and the sampler
#
# `field.bayesian(blackjax.nuts, ...)` samples the coefficients under their
# $\mathcal N(0, I)$ prior. The chains start at $\xi = 0$ ($\kappa \equiv 1$) with a small
# jitter.

# %%
field = jno.fields.grf(MIDS[:, None], jno.kernels.squared_exponential(0.15, 0.5), energy=0.99,
                       name="xi")
PHI = np.asarray(jax.vmap(field.features)(jnp.asarray(MIDS[:, None], jnp.float32)), np.float64)
print(f"{field.modes} KL modes hold {100 * field.energy:.2f} % of the prior variance of g")
phi32 = jnp.asarray(PHI, jnp.float32)


def fd_sensors(coords, xi):
    """u at the sensor rows of ``coords`` for κ = exp(Φ ξ) at the midpoints."""
    u = fd_solve(jnp.exp(field.mean + phi32 @ xi))
    return jnp.interp(coords[:, 0], jnp.asarray(NODES, coords.dtype), u)[:, None]


dom2 = jno.domain(constructor=jno.domain.points(SENSORS[:, None]))
x2, _ = dom2.variable("interior")
y2 = dom2.variable("y", ys2.astype(np.float32))
field.coefficients.initialize(jnp.zeros(field.modes))
field.bayesian(blackjax.nuts, warmup=WARMUP, keep=KEEP, num_chains=CHAINS, init_jitter=0.3)
u_model = jno.forward_model(fd_sensors, x2, field.coefficients)
crux2 = jno.core([(u_model - y2).gaussian(std=SIGMA2)], seed=7)
t0 = time.perf_counter()
crux2.solve(progress=False)
seconds2 = time.perf_counter() - t0
xi_draws = np.asarray(field.coefficients.posterior_samples, np.float64)  # (K, N, m)
divergent2 = int(np.sum(field.coefficients.posterior_diagnostics["is_divergent"]))
rhat_xi = [float(jno.bayesian.rhat(xi_draws[..., j])) for j in range(field.modes)]
ess_xi = [float(jno.bayesian.ess(xi_draws[..., j])) for j in range(field.modes)]
print(f"NUTS: {CHAINS} x {KEEP} draws, {divergent2} divergent, max R-hat {max(rhat_xi):.3f}, "
      f"min ESS {min(ess_xi):.0f}, solve {seconds2:.1f} s (compilation included)")

# %% [markdown]
# ### The posterior of $\kappa$ against the truth
#
# On the $N$ midpoints: the posterior mean of $\kappa$ (the mean of $e^{g}$ over the draws,
# not $e^{\text{mean } g}$), its pointwise 90 % band, the fraction of midpoints where the
# band contains $\kappa^\star$, and the relative $L^2$ error
# $\lVert \bar\kappa - \kappa^\star\rVert / \lVert \kappa^\star \rVert$, next to that of the
# prior guess $\kappa \equiv 1$. The same for the sensor predictions of $u$.

# %%
kappa_draws = np.exp(field.mean + xi_draws.reshape(-1, field.modes) @ PHI.T)  # (draws, N)
kappa_mean = kappa_draws.mean(axis=0)
kappa_lo, kappa_hi = np.quantile(kappa_draws, [0.05, 0.95], axis=0)
coverage = float(np.mean((kappa_lo <= kappa_true_mid) & (kappa_true_mid <= kappa_hi)))
rel_l2 = float(np.linalg.norm(kappa_mean - kappa_true_mid) / np.linalg.norm(kappa_true_mid))
rel_l2_prior = float(np.linalg.norm(1.0 - kappa_true_mid) / np.linalg.norm(kappa_true_mid))
# the best the m modes can do: the least-squares projection of g* onto the basis
xi_best = np.linalg.lstsq(PHI, g_true(MIDS) - field.mean, rcond=None)[0]
rel_l2_best = float(np.linalg.norm(np.exp(field.mean + PHI @ xi_best) - kappa_true_mid)
                    / np.linalg.norm(kappa_true_mid))
posterior_trace = float(np.sum(kappa_draws.var(axis=0)))
pick2 = np.linspace(0, kappa_draws.shape[0] - 1, min(400, kappa_draws.shape[0])).astype(int)
u_draws = np.stack([np.asarray(fd_solve(jnp.asarray(k, jnp.float32))) for k in kappa_draws[pick2]])
u_mean = u_draws.mean(axis=0)
u_lo, u_hi = np.quantile(u_draws, [0.05, 0.95], axis=0)
u_sensor_mean = np.interp(SENSORS, NODES, u_mean)
print(f"90 % band covers the true κ at {coverage:.0%} of the {N_CELLS} midpoints")
print(f"relative L2 error of the posterior mean of κ: {rel_l2:.3f} "
      f"(prior guess κ = 1: {rel_l2_prior:.3f}; best fit in the {field.modes} modes: "
      f"{rel_l2_best:.3f})")
print(f"‖mean − truth‖² = {np.sum((kappa_mean - kappa_true_mid) ** 2):.3f}, "
      f"Σ posterior variances = {posterior_trace:.3f}")
print(f"sensor residual RMS (posterior-mean u): {np.sqrt(np.mean((u_sensor_mean - ys2) ** 2)):.4f}"
      f" (noise sd {SIGMA2})")
RESULTS["field"] = dict(
    modes=field.modes, energy=field.energy, phi=PHI, xi_draws=xi_draws, kappa_mean=kappa_mean,
    kappa_lo=kappa_lo, kappa_hi=kappa_hi, coverage=coverage, rel_l2=rel_l2,
    rel_l2_prior=rel_l2_prior, rel_l2_best=rel_l2_best, posterior_trace=posterior_trace,
    divergent=divergent2, rhat=rhat_xi, ess=ess_xi, seconds=seconds2, u_mean=u_mean,
)

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
ax = axes[0]
ax.fill_between(MIDS, kappa_lo, kappa_hi, color="C0", alpha=0.3, label="90 % band")
ax.plot(MIDS, kappa_mean, "C0", label="posterior mean")
ax.plot(MIDS, kappa_true_mid, "k--", label="true κ")
ax.axhline(1.0, color="0.6", lw=0.8, label="prior median κ = 1")
ax.set_title(f"κ(x): coverage {coverage:.0%}, rel. L2 error {rel_l2:.3f}")
ax.set_xlabel("x")
ax.legend(fontsize=7)
ax = axes[1]
ax.fill_between(NODES, u_lo, u_hi, color="C0", alpha=0.3, label="90 % band")
ax.plot(NODES, u_mean, "C0", label="posterior mean u")
ax.plot(NODES, u_true, "k--", lw=0.8, label="true u")
ax.errorbar(SENSORS, ys2, yerr=SIGMA2, fmt="k.", label="data ± σ")
ax.set_title("u(x)")
ax.set_xlabel("x")
ax.legend(fontsize=7)
fig.tight_layout()
FIGURE2 = OUTPUT_DIR / "field_inversion.png"
fig.savefig(FIGURE2, dpi=90)
show(fig)
RESULTS["figure_field"] = str(FIGURE2)
print(f"figure: {FIGURE2}")

# %% [markdown]
# ## Reading the field results
#
# * The flux is $\kappa u' = c - x$ for some constant $c$: it vanishes where $u$ peaks, and
#   there $u$ hardly depends on $\kappa$. The band is widest around that point and narrowest
#   where the flux is large; the data constrain $\kappa$ only through $1/\kappa$ integrated
#   against the flux.
# * The coverage is one realisation over 64 strongly correlated midpoints, not 64 independent
#   trials: a pointwise 90 % band covering, say, 80 % or 100 % of them is not by itself a sign
#   of miscalibration. The truth is also not a draw from the prior (a bump of width 0.15 in a
#   prior with $\ell = 0.15$, truncated to $m$ modes), and "best fit in the modes" above is
#   the error that no amount of data removes.
# * The squared error of the posterior mean is of the size of the summed posterior variances,
#   as it should be for a calibrated posterior (for a truth drawn from the prior their
#   expectations are equal).
