# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # An ODE inverse problem with a numerical forward model
#
# The Lotka–Volterra equations for a prey population $x$ and a predator population $y$,
#
# $$
# \frac{dx}{dt} = \alpha x - \beta x y, \qquad \frac{dy}{dt} = \delta x y - \gamma y,
# \qquad (x, y)(0) = (10, 5),
# $$
#
# have no closed-form solution: the forward model is a numerical solve (diffrax, Tsit5 with
# an adaptive step). Both species are counted at the 20 times $t_i = 0.5, 1, \dots, 10$
# (about two cycles) with multiplicative (lognormal) noise,
#
# $$
# \log x^{\text{obs}}_i = \log x(t_i; \theta) + \varepsilon_i, \qquad
# \log y^{\text{obs}}_i = \log y(t_i; \theta) + \eta_i, \qquad
# \varepsilon_i, \eta_i \sim \mathcal N(0, \sigma^2),\ \sigma = 0.1 \text{ (known)},
# $$
#
# and we infer $\theta = (\alpha, \beta, \gamma, \delta)$, all positive, from the 40 counts.
# The data are synthetic, drawn once (seeded) from a solve at the true values
# $(\alpha, \beta, \gamma, \delta) = (1, 0.1, 1.5, 0.075)$.
#
# **Priors**, written on the positive values: weakly informative lognormals,
# $\log\alpha, \log\gamma \sim \mathcal N(0, 1)$ and
# $\log\beta, \log\delta \sim \mathcal N(\log 0.1, 1)$ (a factor $e \approx 2.7$ either
# way of the median is one prior sd).
#
# **jno's side.** Each parameter is a `jno.np.parameter` with
# `constraint=jno.constraints.positive`: the sampler moves $u = \log\theta$ and adds the
# log-Jacobian $\sum_j u_j$ of $\theta = e^u$ itself, so the priors are written on $\theta$
# ([docs/bayesian.md](../bayesian.md), "Constrained parameters"). The ODE solve enters the
# likelihood through `jno.forward_model(fn, t, alpha, beta, gamma, delta)`: `fn` receives the
# point set's coordinates (the $n$ observation times, shape $(n, 1)$) and the parameters and
# returns one row per time, here $(x(t_i), y(t_i))$, shape $(n, 2)$; NUTS differentiates
# through the solver.
#
# **The check.** The same log-density written by hand in blackjax — window adaptation and
# NUTS, 4 chains in a `vmap` of `lax.scan`s, on $u = \log\theta$ with the same priors, the
# same log-Jacobian and the same data — must give the same posterior within Monte-Carlo
# error. We compare the two and time them.

# %%
import os
import time
from pathlib import Path

import blackjax
import diffrax
import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from jax.scipy.stats import norm

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


NAMES = ("alpha", "beta", "gamma", "delta")
TRUTH = {"alpha": 1.0, "beta": 0.1, "gamma": 1.5, "delta": 0.075}
PRIOR_MEDIAN = {"alpha": 1.0, "beta": 0.1, "gamma": 1.0, "delta": 0.1}
PRIOR_LOG_SD = 1.0
U0 = (10.0, 5.0)  # known initial state (prey, predator)
SIGMA = 0.1  # sd of the log-counts, known
TIMES = 0.5 * np.arange(1, 21)  # 20 observation times in (0, 10]
WARMUP, KEEP, CHAINS = (100, 100, 2) if SMALL else (400, 1000, 4)
CHUNK = 100  # draws per compiled scan, on both sides (jno: print_rate)
JITTER = 0.1  # chain starts: log(prior median) + 0.1 N(0, 1), in u = log θ

# %% [markdown]
# ## The forward model
#
# `lotka_volterra(coords, alpha, beta, gamma, delta)` is plain JAX: a diffrax solve from
# $t = 0$ to the last requested time, saved at the requested times. jno calls it with the
# point set's rows, which for a fixed point set are in the order the domain was built with
# (sorted here), but a mini-batch or a resampled set need not be: `diffrax.SaveAt(ts=...)`
# requires increasing times, so the function sorts them and puts the rows back in the order
# it was given. `throw=False` matters for sampling: window adaptation tries extreme values
# early on (a step size of 1 in $\log\theta$ multiplies a rate by $e$), and a solve that
# hits `max_steps` then returns `inf` instead of raising; a non-finite log-density is a
# rejected proposal, not a crash.


# %%
def lotka_volterra(coords, alpha, beta, gamma, delta):
    """(x, y) at the times ``coords[:, 0]`` (any order), shape (n, 2); parameters are (1,)."""
    t = coords[:, 0]
    order = jnp.argsort(t)
    ts = t[order]

    def rhs(s, u, rates):
        a, b, g, d = rates
        x, y = u[0], u[1]
        return jnp.stack([a * x - b * x * y, d * x * y - g * y])

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(rhs),
        diffrax.Tsit5(),
        t0=0.0,
        t1=ts[-1],
        dt0=0.05,
        y0=jnp.asarray(U0, coords.dtype),
        args=(alpha[0], beta[0], gamma[0], delta[0]),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=1e-5, atol=1e-5),
        max_steps=2048,
        throw=False,  # a failed solve is inf: a rejected proposal, not a crash
    )
    return jnp.zeros((t.shape[0], 2), sol.ys.dtype).at[order].set(sol.ys)


def solve_at(times, theta):
    """The solution at ``times`` (n,) for ``theta`` = (alpha, beta, gamma, delta) scalars."""
    coords = jnp.asarray(times, jnp.float32)[:, None]
    return lotka_volterra(coords, *(jnp.reshape(v, (1,)) for v in theta))


THETA_TRUE = jnp.asarray([TRUTH[n] for n in NAMES], jnp.float32)
truth_at_times = np.asarray(solve_at(TIMES, THETA_TRUE))
rng = np.random.default_rng(20240607)
counts = truth_at_times * np.exp(SIGMA * rng.normal(size=truth_at_times.shape))
LOG_COUNTS = np.log(counts).astype(np.float32)  # (20, 2): prey, predator
print("true (x, y) at t = 0.5, 5, 10:", truth_at_times[[0, 9, 19]].round(2).tolist())
print("observed                     :", counts[[0, 9, 19]].round(2).tolist())

# %% [markdown]
# ## The model in jno
#
# The observation times are a point set (`jno.domain.points`), the log-counts are data
# attached to it, and the residual $\log u(t_i;\theta) - \log u^{\text{obs}}_i$ gets the
# Gaussian likelihood `.gaussian(std=0.1)` — the lognormal noise model, up to the constant
# $-\sum\log u^{\text{obs}}_i$. The four parameters have equal `.bayesian` settings, so they
# form one NUTS block (one joint position, one kernel), each with its own prior. Every chain
# starts at the prior medians, jittered by $0.1\,\mathcal N(0, 1)$ in $u$, and runs its own
# window adaptation. The four rates are strongly correlated in the posterior (correlations
# of roughly 0.7 to 0.95 in absolute value, see the pair plot), so the adaptation estimates
# a dense $4 \times 4$ mass matrix (`is_mass_matrix_diagonal=False`): with a diagonal one
# NUTS needed about three times as many gradient evaluations (solves) per draw.


# %%
def lognormal_prior(median, log_sd=PRIOR_LOG_SD):
    """log p(θ) of a lognormal on θ > 0: the normal density of log θ, minus log θ."""
    return lambda th: jnp.sum(norm.logpdf(jnp.log(th), jnp.log(median), log_sd) - jnp.log(th))


dom = jno.domain(constructor=jno.domain.points(TIMES[:, None]))
t, _ = dom.variable("interior")
log_obs = dom.variable("log_counts", LOG_COUNTS)
params = {}
for name in NAMES:
    p = jno.np.parameter(
        (1,), name=name, init=PRIOR_MEDIAN[name], constraint=jno.constraints.positive
    )
    p.bayesian(
        blackjax.nuts,
        prior=lognormal_prior(PRIOR_MEDIAN[name]),
        warmup=WARMUP,
        keep=KEEP,
        num_chains=CHAINS,
        init_jitter=JITTER,
        is_mass_matrix_diagonal=False,
    )
    params[name] = p
u = jno.forward_model(lotka_volterra, t, *params.values())  # (x, y) at each time
crux = jno.core([(jno.np.log(u) - log_obs).gaussian(std=SIGMA)], seed=0)

# %% [markdown]
# ## Sampling
#
# The first `crux.solve()` compiles, adapts (`warmup` steps) and keeps `keep` draws per chain,
# in compiled scans of `print_rate = 100` draws. `crux.solve(100)` then continues every chain
# for 100 more draws with the same compiled program: its wall time is jno's sampling cost
# without compilation. The kept draws are the last `keep`.

# %%
t0 = time.perf_counter()
crux.solve(progress=False, print_rate=CHUNK)
jno_first = time.perf_counter() - t0
grads_first = float(crux.solver.grad_evals)
t0 = time.perf_counter()
crux.solve(CHUNK, progress=False, print_rate=CHUNK)
jno_second = time.perf_counter() - t0
jno_grads = float(crux.solver.grad_evals) - grads_first
JNO = {n: np.asarray(p.posterior_samples)[..., 0] for n, p in params.items()}  # (K, N)
jno_divergent = int(np.sum(params["alpha"].posterior_diagnostics["is_divergent"]))
print(
    f"jno: first solve {jno_first:.1f} s (compile, {WARMUP} warm-up steps, {KEEP} draws); "
    f"{CHUNK} more draws {jno_second:.2f} s ({jno_grads:.0f} gradients over {CHAINS} chains); "
    f"{jno_divergent} divergent"
)

# %% [markdown]
# ## The same posterior by hand in blackjax
#
# On $u = \log\theta$:
#
# $$
# \log p(u \mid \text{data}) = \sum_{i,s} \log\mathcal N\big(\log u^{\text{obs}}_{is};\,
#   \log u_s(t_i; e^u), \sigma^2\big) + \sum_j \log p_j(e^{u_j}) + \sum_j u_j,
# $$
#
# the last sum being the log-Jacobian of $\theta = e^u$. The same forward function, the same
# starts (prior medians jittered by $0.1\,\mathcal N(0, 1)$ in $u$), window adaptation of
# `WARMUP` steps per chain with a dense mass matrix, then scans of 100 NUTS steps per chain;
# the chains are a `vmap`. Compilation is timed on its own (`jax.jit(...).lower(...)
# .compile()`); as on jno's side, one more scan of 100 draws is timed alone and the last
# `KEEP` draws are kept.

# %%
PRIORS = [lognormal_prior(PRIOR_MEDIAN[n]) for n in NAMES]
COORDS = jnp.asarray(TIMES, jnp.float32)[:, None]


def log_density(u_vec):
    theta = jnp.exp(u_vec)
    pred = lotka_volterra(COORDS, *(theta[j : j + 1] for j in range(4)))
    loglik = jnp.sum(norm.logpdf(LOG_COUNTS, jnp.log(pred), SIGMA))
    logprior = sum(PRIORS[j](theta[j]) for j in range(4))
    return loglik + logprior + jnp.sum(u_vec)  # + log|dθ/du|


U_START = jnp.log(jnp.asarray([PRIOR_MEDIAN[n] for n in NAMES], jnp.float32))


def hand_warmup(key):
    def one_chain(k):
        k_start, k_adapt = jax.random.split(k)
        start = U_START + JITTER * jax.random.normal(k_start, (4,))
        adaptation = blackjax.window_adaptation(
            blackjax.nuts, log_density, is_mass_matrix_diagonal=False
        )
        (state, tuned), _ = adaptation.run(k_adapt, start, num_steps=WARMUP)
        return state, tuned

    return jax.vmap(one_chain)(jax.random.split(key, CHAINS))


def hand_chunk(states, tuned, key):
    """CHUNK NUTS steps of every chain: (states, (positions, gradients, divergent))."""

    def one_chain(state, tuned, k):
        kernel = blackjax.nuts(log_density, **tuned)

        def step(s, kk):
            s, info = kernel.step(kk, s)
            return s, (s.position, info.num_integration_steps, info.is_divergent)

        return jax.lax.scan(step, state, jax.random.split(k, CHUNK))

    return jax.vmap(one_chain)(states, tuned, jax.random.split(key, CHAINS))


key_warmup, key_sample = jax.random.split(jax.random.PRNGKey(1))
t0 = time.perf_counter()
warmup_c = jax.jit(hand_warmup).lower(key_warmup).compile()
hand_compile = time.perf_counter() - t0
t0 = time.perf_counter()
states, tuned = jax.block_until_ready(warmup_c(key_warmup))
hand_warmup_run = time.perf_counter() - t0
t0 = time.perf_counter()
chunk_c = jax.jit(hand_chunk).lower(states, tuned, key_sample).compile()
hand_compile += time.perf_counter() - t0
chunks = []
t0 = time.perf_counter()
for i in range(KEEP // CHUNK):
    states, out = jax.block_until_ready(chunk_c(states, tuned, jax.random.fold_in(key_sample, i)))
    chunks.append(out)
hand_sample_run = time.perf_counter() - t0
t0 = time.perf_counter()
states, out = jax.block_until_ready(
    chunk_c(states, tuned, jax.random.fold_in(key_sample, KEEP // CHUNK))
)
hand_second = time.perf_counter() - t0
chunks.append(out)
hand_first = hand_compile + hand_warmup_run + hand_sample_run
hand_grads = float(jnp.sum(out[1]))
positions = np.concatenate([np.asarray(c[0]) for c in chunks], axis=1)[:, -KEEP:]
HAND = {n: np.exp(positions[..., j]) for j, n in enumerate(NAMES)}  # (K, N)
hand_divergent = int(sum(np.sum(np.asarray(c[2])) for c in chunks[1:]))
print(
    f"hand: compile {hand_compile:.1f} s, warm-up {hand_warmup_run:.1f} s, {KEEP} draws "
    f"{hand_sample_run:.1f} s; {CHUNK} more draws {hand_second:.2f} s ({hand_grads:.0f} "
    f"gradients); {hand_divergent} divergent"
)

# %% [markdown]
# ## Posterior table
#
# Per parameter and sampler: mean, sd, 99 % interval, rank-normalised split R-hat
# (`jno.bayesian.rhat`), bulk ESS (`jno.bayesian.ess`) and the Monte-Carlo standard error of
# the mean $\text{MCSE} = \text{sd}/\sqrt{\text{ESS}}$. The two samplers are independent, so
# their difference of means has standard error $\sqrt{\text{MCSE}_1^2 + \text{MCSE}_2^2}$;
# "z" is the difference in those units, about $\mathcal N(0, 1)$ when both sample the same
# posterior.


# %%
def summarize(chains):
    lo, hi = np.quantile(chains, [0.005, 0.995])
    ess = float(jno.bayesian.ess(chains))
    return dict(
        mean=float(chains.mean()),
        sd=float(chains.std()),
        q005=float(lo),
        q995=float(hi),
        rhat=float(jno.bayesian.rhat(chains)),
        ess=ess,
        mcse=float(chains.std() / np.sqrt(ess)),
    )


RESULTS: dict = {
    "times": TIMES,
    "log_counts": LOG_COUNTS,
    "truth": TRUTH,
    "sigma": SIGMA,
    "jno": {"chains": JNO, "divergent": jno_divergent},
    "hand": {"chains": HAND, "divergent": hand_divergent},
}
header = (
    f"{'':6s}{'truth':>7s} | {'jno mean':>9s}{'sd':>8s}{'99% interval':>19s}{'R-hat':>7s}"
    f"{'ESS':>6s} | {'hand mean':>9s}{'sd':>8s}{'R-hat':>7s}{'ESS':>6s} | {'z':>5s}"
)
print(header)
print("-" * len(header))
for name in NAMES:
    a = RESULTS["jno"][name] = summarize(JNO[name])
    b = RESULTS["hand"][name] = summarize(HAND[name])
    z = (a["mean"] - b["mean"]) / np.hypot(a["mcse"], b["mcse"])
    interval = f"[{a['q005']:.4f}, {a['q995']:.4f}]"
    print(
        f"{name:6s}{TRUTH[name]:7.3f} | {a['mean']:9.4f}{a['sd']:8.4f}{interval:>19s}"
        f"{a['rhat']:7.3f}{a['ess']:6.0f} | {b['mean']:9.4f}{b['sd']:8.4f}{b['rhat']:7.3f}"
        f"{b['ess']:6.0f} | {z:5.2f}"
    )

# %% [markdown]
# ## Timing
#
# "With compilation": jno's first `solve` against the hand-written compile + warm-up +
# `KEEP` draws. "Sampling only": the extra 100 draws on both sides, already compiled.
# NUTS's cost is its number of gradient evaluations (leapfrog steps), which depends on the
# step size and mass matrix each chain's adaptation picked, so the last ratio is per
# gradient. Wall times on a shared CPU are noisy.

# %%
TIMING = {
    "jno_first": jno_first,
    "hand_first": hand_first,
    "jno_second": jno_second,
    "hand_second": hand_second,
    "jno_us_per_grad": 1e6 * jno_second / jno_grads,
    "hand_us_per_grad": 1e6 * hand_second / hand_grads,
}
RESULTS["timing"] = TIMING
print(f"{'':32s}{'jno s':>8s}{'hand s':>8s}{'jno/hand':>10s}")
for label, a, b in (
    ("with compilation (first run)", jno_first, hand_first),
    (f"sampling only ({CHUNK} draws)", jno_second, hand_second),
    ("per gradient, sampling (µs)", TIMING["jno_us_per_grad"], TIMING["hand_us_per_grad"]),
):
    print(f"{label:32s}{a:8.2f}{b:8.2f}{a / b:10.2f}")

# %% [markdown]
# ## Figure: data and posterior predictive bands
#
# The forward function is plain JAX, so the posterior of the trajectories is the same
# function on a fine time grid, `vmap`ped over (a thinned set of) jno's draws. The dark band
# is the 90 % band of the solution $u(t;\theta)$; the light one adds the observation noise
# (the posterior predictive of a new count).

# %%
fine = np.linspace(0.0, 10.0, 201)
flat = np.stack([JNO[n].reshape(-1) for n in NAMES], axis=1)
thin = flat[:: max(1, flat.shape[0] // 400)]
paths = np.asarray(jax.jit(jax.vmap(lambda th: solve_at(fine, th)))(jnp.asarray(thin)))
noise = np.exp(SIGMA * np.random.default_rng(1).normal(size=paths.shape))
truth_fine = np.asarray(solve_at(fine, THETA_TRUE))
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
for s, (ax, label) in enumerate(zip(axes, ("prey x", "predator y"))):
    lo, hi = np.quantile(paths[..., s] * noise[..., s], [0.05, 0.95], axis=0)
    ax.fill_between(fine, lo, hi, color="C0", alpha=0.2, label="90 % predictive")
    lo, hi = np.quantile(paths[..., s], [0.05, 0.95], axis=0)
    ax.fill_between(fine, lo, hi, color="C0", alpha=0.5, label="90 % band of u(t)")
    ax.plot(fine, np.median(paths[..., s], axis=0), "C0", lw=1, label="posterior median")
    ax.plot(fine, truth_fine[:, s], "k--", lw=1, label="true solution")
    ax.plot(TIMES, counts[:, s], "o", color="C3", ms=4, label="observed")
    ax.set_title(label)
    ax.set_xlabel("t")
axes[0].legend(fontsize=7)
fig.tight_layout()
FIGURE_PATH = OUTPUT_DIR / "ode_forward_model.png"
fig.savefig(FIGURE_PATH, dpi=100)
show(fig)
print(f"figure: {FIGURE_PATH}")

# %% [markdown]
# ## Figure: the posterior of the parameters
#
# Marginals (diagonal) and pairs (below) of jno's draws and of the hand-written sampler's,
# with the true values. All four rates are strongly correlated ($\alpha$ with $\delta$
# most): the data pin the cycles' period and amplitudes better than each rate.

# %%
fig, axes = plt.subplots(4, 4, figsize=(9, 9))
for r, nr in enumerate(NAMES):
    for c, nc in enumerate(NAMES):
        ax = axes[r, c]
        if c > r:
            ax.axis("off")
            continue
        if r == c:
            bins = np.linspace(*np.quantile(np.r_[JNO[nr].ravel(), HAND[nr].ravel()],
                                            [0.001, 0.999]), 50)
            ax.hist(JNO[nr].ravel(), bins=bins, density=True, alpha=0.5, label="jno")
            ax.hist(HAND[nr].ravel(), bins=bins, density=True, histtype="step", color="k",
                    label="hand-written")
            ax.axvline(TRUTH[nr], color="C3", ls="--", lw=1, label="true value")
        else:
            ax.plot(JNO[nc].ravel()[::4], JNO[nr].ravel()[::4], ".", ms=1, alpha=0.3,
                    color="C0")
            ax.plot(HAND[nc].ravel()[::4], HAND[nr].ravel()[::4], ".", ms=1, alpha=0.3,
                    color="0.3")
            ax.plot([TRUTH[nc]], [TRUTH[nr]], "x", color="C3", ms=8, mew=2)
        if r == 3:
            ax.set_xlabel(nc)
        if c == 0:
            ax.set_ylabel(nr)
axes[0, 0].legend(fontsize=7)
fig.tight_layout()
PAIRS_PATH = OUTPUT_DIR / "ode_forward_model_pairs.png"
fig.savefig(PAIRS_PATH, dpi=80)
show(fig)
RESULTS["figures"] = [str(FIGURE_PATH), str(PAIRS_PATH)]
print(f"pairs: {PAIRS_PATH}")

# %% [markdown]
# ## Reading the results
#
# At the full size (4 chains × 1000 draws after 400 warm-up steps) the two samplers agree to
# within half a combined MCSE on every mean ($|z| \le 0.45$) and their sds agree to 1 %;
# R-hat $\le 1.003$ and bulk ESS about 3000–3900 on both sides, no divergences. The truth
# lies inside every 99 % interval; $\alpha$ and $\beta$ are recovered to about 4 % and 5 %
# (one posterior sd), $\gamma$ and $\delta$ to 4.5 % and 6 %.
#
# Cost: once compiled, jno's sampler is within noise of the hand-written one per gradient
# (1.17 in one run on a shared 2-core CPU: 209 µs against 180 µs per log-density gradient,
# i.e. one ODE solve and its adjoint, 4 chains in a `vmap`). With compilation included jno
# took 1.2 times as long (43 s against 36 s): jno compiles more programs around the same
# log-density than the two of the hand-written version, and each contains the diffrax solve
# and its reverse pass, which is most of the compile time of either.
