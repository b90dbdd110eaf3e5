"""Monte-Carlo tolerances for the statistical tests (the rule is in ``docs/testing.md``).

Every comparison of draws with an independent truth (a closed-form posterior, a quadrature,
a known sampling distribution) is made at a number of Monte-Carlo standard errors (MCSE) of
the compared quantity, computed from the draws themselves:

* a mean: ``MCSE = sd / sqrt(ESS_bulk)``;
* a standard deviation (delta method on the squared deviations ``z = (x - x̄)²``):
  ``MCSE = sqrt(Var(z) / ESS_mean(z)) / (2 sd)``.

ESS is arviz's rank-normalised split-chain estimate, independent of jno's own diagnostics.
Draws are ``(K, N)`` (K chains) or ``(N,)`` for a scalar truth; with an array truth of shape
``E`` they are ``(K, N, *E)`` or ``(N, *E)`` and every component is checked.

``assert_sd_within`` also refuses a tolerance too loose to catch a factor-of-√2 error in the
standard deviation: ``n_mcse · MCSE`` must stay below ``SQRT2_FRACTION · truth_sd``.
"""

from __future__ import annotations

import arviz as az
import numpy as np

# A factor √2 off is -29 % (or +41 %); a tolerance at most 20 % of the truth leaves a margin.
SQRT2_FRACTION = 0.2


def _chains(draws) -> np.ndarray:
    d = np.asarray(draws, np.float64)
    if d.ndim == 1:
        d = d[None]
    if d.ndim != 2:
        raise ValueError(f"draws of one scalar must be (N,) or (K, N), got {d.shape}")
    if not np.all(np.isfinite(d)):
        raise AssertionError("draws contain NaN or inf")
    return d


def ess_bulk(draws) -> float:
    return float(az.ess(_chains(draws), method="bulk"))


def mcse_mean(draws) -> tuple[float, float]:
    """``(MCSE of the mean, ESS_bulk)``."""
    d = _chains(draws)
    ess = ess_bulk(d)
    return float(d.std()) / np.sqrt(ess), ess


def mcse_sd(draws) -> tuple[float, float]:
    """``(MCSE of the standard deviation, ESS of the squared deviations)``."""
    d = _chains(draws)
    z = (d - d.mean()) ** 2
    ess = float(az.ess(z, method="mean"))
    var = z.mean()
    return float(np.sqrt(z.var() / ess) / (2.0 * np.sqrt(var))), ess


def _components(draws, truth):
    """Yield ``(index, (K, N) draws, scalar truth)`` for every component of ``truth``."""
    truth = np.asarray(truth, np.float64)
    d = np.asarray(draws)
    extra = d.ndim - truth.ndim
    if extra not in (1, 2):
        raise ValueError(f"draws {d.shape} do not match a truth of shape {truth.shape}")
    if extra == 1:
        d = d[None]
    if d.shape[2:] != truth.shape:
        raise ValueError(f"draws {d.shape} do not match a truth of shape {truth.shape}")
    for idx in np.ndindex(truth.shape):
        yield idx, d[(slice(None), slice(None), *idx)], float(truth[idx])


def assert_mean_within(draws, truth, n_mcse: float = 4.0, *, sd=None, bias=0.0, what="mean"):
    """``|mean(draws) - truth| < n_mcse · MCSE + bias``.

    ``sd`` (the true posterior sd, optional) also asserts the tolerance is below half of it,
    so a shift of half a posterior std cannot pass. ``bias`` is a deterministic allowance
    stated by the caller (e.g. an SG-MCMC discretisation bound), never fitted to a run.
    """
    sds = None if sd is None else np.broadcast_to(np.asarray(sd, np.float64),
                                                  np.shape(truth))
    for idx, d, t in _components(draws, truth):
        mcse, ess = mcse_mean(d)
        tol = n_mcse * mcse + bias
        got = float(d.mean())
        label = f"{what}{list(idx) if idx else ''}"
        msg = (f"{label}: got {got:.6g}, truth {t:.6g}, |error| {abs(got - t):.3g} vs tolerance "
               f"{tol:.3g} = {n_mcse} MCSE ({mcse:.3g}, sd/sqrt(ESS_bulk={ess:.0f}))"
               + (f" + bias {bias:.3g}" if bias else ""))
        if sds is not None:
            s = float(sds[idx])
            assert tol < 0.5 * s, f"{msg}: too few draws, tolerance >= half the true sd {s:.3g}"
        assert abs(got - t) < tol, msg


def assert_sd_within(draws, truth_sd, n_mcse: float = 5.0, *, bias=0.0, what="sd",
                     sqrt2_guard: bool = True):
    """``|sd(draws) - truth_sd| < n_mcse · MCSE_sd + bias``, and the tolerance is below
    ``SQRT2_FRACTION · truth_sd`` (enough draws to catch a factor-√2 error).

    ``sqrt2_guard=False`` drops the second check, only for runs whose draws a test cannot
    choose (a tutorial's); the caller says so in a comment."""
    for idx, d, t in _components(draws, truth_sd):
        mcse, ess = mcse_sd(d)
        tol = n_mcse * mcse + bias
        got = float(d.std())
        label = f"{what}{list(idx) if idx else ''}"
        msg = (f"{label}: got {got:.6g}, truth {t:.6g}, |error| {abs(got - t):.3g} "
               f"({100 * (got / t - 1):+.1f} %) vs tolerance {tol:.3g} = {n_mcse} MCSE_sd "
               f"({mcse:.3g}, ESS of squared deviations {ess:.0f})"
               + (f" + bias {bias:.3g}" if bias else ""))
        assert not sqrt2_guard or tol < SQRT2_FRACTION * t, (
            f"{msg}: too few draws to catch a factor-√2 error (tolerance must be < "
            f"{SQRT2_FRACTION} x truth)"
        )
        assert abs(got - t) < tol, msg


def assert_gaussian_within(draws, mean, sd, n_mean: float = 4.0, n_sd: float = 5.0, *,
                           mean_bias=0.0, sd_bias=0.0, what=""):
    """Mean at ``n_mean`` MCSE and sd at ``n_sd`` MCSE_sd of a Gaussian truth."""
    assert_mean_within(draws, mean, n_mean, sd=sd, bias=mean_bias, what=f"{what} mean".strip())
    assert_sd_within(draws, sd, n_sd, bias=sd_bias, what=f"{what} sd".strip())


def assert_corr_within(x, y, truth: float, n_mcse: float = 5.0, *, what="corr"):
    """Correlation of two scalar chains at ``n_mcse`` MCSE: ``(1 - ρ²) / sqrt(ESS)`` (the
    large-sample sd of a correlation of Gaussian draws), with ESS the smaller bulk ESS of the
    two chains and of the product of their standardised values."""
    a, b = _chains(x), _chains(y)
    za, zb = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    got = float(np.mean(za * zb))
    ess = min(ess_bulk(a), ess_bulk(b), float(az.ess(za * zb, method="mean")))
    mcse = (1.0 - got**2) / np.sqrt(ess)
    tol = n_mcse * mcse
    msg = (f"{what}: got {got:.4f}, truth {truth:.4f}, |error| {abs(got - truth):.3g} vs "
           f"tolerance {tol:.3g} = {n_mcse} MCSE ({mcse:.3g}, ESS {ess:.0f})")
    assert tol < 0.2, f"{msg}: too few draws"
    assert abs(got - truth) < tol, msg
