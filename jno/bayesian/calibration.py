r"""Simulation-based calibration (SBC; Talts et al. 2018) of a whole jno pipeline.

For ``s = 1..S``: draw ``θ_s`` from the priors, simulate data at ``θ_s`` (see
:mod:`jno.bayesian.simulation`), infer the posterior with the crux's own samplers (all ``S``
in one compiled program: ``crux.solve_batch``), and rank every scalar component of ``θ_s``
among ``L`` posterior draws (the kept draws of all chains, thinned to ``L`` evenly spaced
ones): :math:`r_s = \#\{\ell : θ^{(\ell)} < θ_s\} \in \{0, …, L\}`. If priors, likelihood and
sampler are consistent, every ``r_s`` is uniform on ``{0, …, L}``.

Uniformity tests on the ranks of each parameter:

* **chi-square** on ``B`` equal bins of ranks (``(L + 1) / B`` ranks each): statistic
  :math:`X^2 = \sum_b (O_b - S/B)^2 / (S/B)`, p-value :math:`P(\chi^2_{B-1} > X^2)`;
* **ECDF bands** (Säilynoja, Bürkner & Vehtari 2022, simulation-based): at
  :math:`z_i = i/(L+1)`, ``i = 1..L``, the ECDF of the fractional ranks
  :math:`F̂(z_i) = \#\{s: r_s < i\}/S` has :math:`S F̂(z_i) \sim \mathrm{Bin}(S, z_i)` under
  uniformity. With :math:`γ_i = 2 \min(F_{S,z_i}(S F̂_i), 1 - F_{S,z_i}(S F̂_i - 1))` and
  :math:`γ = \min_i γ_i`, the level ``1 - α`` simultaneous band is
  :math:`[F^{-1}_{S,z_i}(γ_α/2), F^{-1}_{S,z_i}(1 - γ_α/2)] / S` where :math:`γ_α` is the
  ``α`` quantile of ``γ`` over ``M`` simulated uniform rank sets; the ECDF p-value is the
  fraction of simulated ``γ`` at or below the observed one.

Coverage: the fraction of simulations whose ``θ_s`` lies in the central ``q`` credible
interval (the ``(1-q)/2`` and ``(1+q)/2`` quantiles of all kept draws), with binomial
standard error :math:`\sqrt{q(1-q)/S}` under calibration.

Predictive coverage (``predictive={name: expression}``): the same for the values
:math:`f_j(θ)` of an expression at its points ``j = 1..M``: the fraction of simulations whose
true value :math:`f_j(θ_s)` lies in the central ``q`` interval of :math:`f_j(θ^{(\ell)})` over
all kept draws. Under calibration :math:`f(θ_s)` is a draw of the posterior of :math:`f(θ)`,
so every point's coverage is :math:`q` with standard error :math:`\sqrt{q(1-q)/S}`; the mean
over points has at most that standard error (its ``M`` indicators per simulation are
correlated, not independent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from .simulation import WHERE, Simulator

LEVELS = (0.5, 0.8, 0.9, 0.95)


# ---------------------------------------------------------------------- statistics
def ranks_of(theta, draws, max_rank: int) -> np.ndarray:
    """Ranks ``(S, P)`` of ``theta (S, P)`` among ``max_rank`` of the draws ``(S, N, P)``
    taken evenly spaced (``N >= max_rank``): ``#{draws < θ}`` in ``0..max_rank``."""
    theta, draws = np.asarray(theta), np.asarray(draws)
    n = draws.shape[1]
    if max_rank > n:
        raise ValueError(
            f"{WHERE}: max_rank={max_rank} needs at least that many kept draws per simulation, "
            f"got {n}; keep more draws or lower max_rank."
        )
    idx = np.round(np.linspace(0, n - 1, max_rank)).astype(int)
    return np.sum(draws[:, idx, :] < theta[:, None, :], axis=1)


def chi_square(ranks, max_rank: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X², p)`` per column of ``ranks (S, P)`` on ``bins`` equal bins of ``0..max_rank``."""
    if (max_rank + 1) % bins:
        raise ValueError(
            f"{WHERE}: bins={bins} must divide the max_rank + 1 = {max_rank + 1} possible ranks "
            "into equal bins"
        )
    ranks = np.asarray(ranks)
    width = (max_rank + 1) // bins
    counts = np.stack([np.bincount(r // width, minlength=bins) for r in ranks.T])
    expected = ranks.shape[0] / bins
    stat = np.sum((counts - expected) ** 2 / expected, axis=1)
    p = np.asarray(jax.scipy.special.gammaincc((bins - 1) / 2.0, jnp.asarray(stat / 2.0)))
    return stat, p


def _binomial_cdf(n: int, z: np.ndarray) -> np.ndarray:
    """``(len(z), n + 1)``: ``P(Bin(n, z_i) <= k)`` for ``k = 0..n``."""
    k = np.arange(n + 1)
    lg = np.array([math.lgamma(i + 1.0) for i in range(n + 1)])
    z = np.asarray(z, np.float64)[:, None]
    logpmf = lg[n] - lg[k] - lg[n - k] + k * np.log(z) + (n - k) * np.log1p(-z)
    return np.minimum(np.cumsum(np.exp(logpmf), axis=1), 1.0)


def ecdf_counts(ranks, max_rank: int) -> np.ndarray:
    """``(P, L)``: ``#{s: r_s < i}`` for ``i = 1..L`` per column of ``ranks (S, P)``."""
    cols = np.asarray(ranks).T
    offsets = cols + (max_rank + 1) * np.arange(cols.shape[0])[:, None]
    hist = np.bincount(offsets.ravel(), minlength=cols.shape[0] * (max_rank + 1))
    return np.cumsum(hist.reshape(cols.shape[0], max_rank + 1), axis=1)[:, :max_rank]


def _gamma(counts: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """``min_i γ_i`` per row of ``counts (R, L)``."""
    rows = np.arange(cdf.shape[0])
    below = cdf[rows, counts]
    above = 1.0 - np.where(counts > 0, cdf[rows, np.maximum(counts - 1, 0)], 0.0)
    return np.min(2.0 * np.minimum(below, above), axis=-1)


@dataclass(frozen=True)
class ECDFBand:
    """A simultaneous band for the ECDF of ``num_simulations`` uniform ranks on
    ``0..max_rank``: ``lower``, ``upper`` ``(L,)`` at ``z (L,)``, ``gamma`` the adjusted
    pointwise level, ``null_gamma (M,)`` the simulated ``min_i γ_i``."""

    z: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    gamma: float
    level: float
    null_gamma: np.ndarray = field(repr=False)

    def p_value(self, ranks, max_rank: int) -> np.ndarray:
        """Per column of ``ranks``: the fraction of simulated ``γ`` at or below its own."""
        cdf = _binomial_cdf(len(np.asarray(ranks)), self.z)
        g = np.array([_gamma(c[None], cdf)[0] for c in ecdf_counts(ranks, max_rank)])
        return np.mean(self.null_gamma[None, :] <= g[:, None] + 1e-12, axis=1)


def ecdf_band(
    num_simulations: int, max_rank: int, level: float = 0.95, num_null: int = 2000, seed: int = 0
) -> ECDFBand:
    """The simulation-based simultaneous ECDF band (see the module docstring): ``num_null``
    uniform rank sets drawn with ``numpy.random.default_rng(seed)``."""
    if not 0 < level < 1:
        raise ValueError(f"{WHERE}: band level must be in (0, 1), got {level}")
    s, big_l = num_simulations, max_rank
    z = np.arange(1, big_l + 1) / (big_l + 1)
    cdf = _binomial_cdf(s, z)
    rng = np.random.default_rng(seed)
    null = rng.integers(0, big_l + 1, size=(num_null, s))
    counts = ecdf_counts(null.T, big_l)
    gammas = _gamma(counts, cdf)
    gamma = float(np.quantile(gammas, 1.0 - level, method="lower"))
    # the counts k with gamma_i(k) >= gamma: F(k) >= gamma/2 and P(X >= k) >= gamma/2 (a
    # relative slack of 1e-9 keeps the atoms of gamma, which sit exactly on a limit, inside)
    cut = 0.5 * gamma * (1.0 - 1e-9)
    at_least = 1.0 - np.concatenate([np.zeros((len(z), 1)), cdf[:, :-1]], axis=1)
    lower = np.argmax(cdf >= cut, axis=1) / s
    upper = (s - np.argmax((at_least >= cut)[:, ::-1], axis=1)) / s
    return ECDFBand(z, lower, upper, gamma, level, gammas)


def coverage_of(theta, draws, levels=LEVELS) -> dict[float, np.ndarray]:
    """``{q: (P,)}``: fraction of ``theta (S, P)`` inside the central ``q`` interval of the
    draws ``(S, N, P)``."""
    theta, draws = np.asarray(theta), np.asarray(draws)
    out = {}
    for q in levels:
        lo = np.quantile(draws, (1.0 - q) / 2.0, axis=1)
        hi = np.quantile(draws, (1.0 + q) / 2.0, axis=1)
        out[float(q)] = np.mean((theta >= lo) & (theta <= hi), axis=0)
    return out


# ---------------------------------------------------------------------- result
@dataclass(frozen=True)
class SBCResult:
    """What :func:`sbc` measured, per scalar parameter ``p`` (``names[p]``).

    Attributes:
        names: ``(P,)`` labels, e.g. ``"a[0]"``.
        theta: ``(S, P)`` the simulated (true) values.
        ranks: ``(S, P)`` ranks in ``0..max_rank``.
        max_rank: ``L``, the number of thinned draws ranked against.
        bins: chi-square bins.
        chi2, p_values: ``(P,)`` the chi-square statistics and p-values.
        band: the :class:`ECDFBand` of ``S`` ranks.
        ecdf_p_values: ``(P,)`` the ECDF test's p-values.
        coverage: ``{q: (P,)}`` empirical coverage of central ``q`` credible intervals.
        predictive: ``{name: {q: (M,)}}`` per point of each ``predictive`` expression, the
            fraction of simulations whose true value lies in its central ``q`` interval.
    """

    names: list
    theta: np.ndarray
    ranks: np.ndarray
    max_rank: int
    bins: int
    chi2: np.ndarray
    p_values: np.ndarray
    band: ECDFBand
    ecdf_p_values: np.ndarray
    coverage: dict
    predictive: dict = field(default_factory=dict)

    @property
    def num_simulations(self) -> int:
        return int(self.ranks.shape[0])

    @property
    def ecdf(self) -> np.ndarray:
        """``(P, L)``: the ECDF of the fractional ranks at ``band.z``."""
        return ecdf_counts(self.ranks, self.max_rank) / self.num_simulations

    @property
    def inside_band(self) -> np.ndarray:
        """``(P,)``: whether each parameter's ECDF stays inside the band."""
        e = self.ecdf
        return np.all((e >= self.band.lower - 1e-12) & (e <= self.band.upper + 1e-12), axis=1)

    def coverage_table(self) -> str:
        """A text table: one row per parameter, one column per credible level, with the
        binomial standard error of a calibrated coverage in the header."""
        levels = sorted(self.coverage)
        s = self.num_simulations
        head = "parameter".ljust(14) + "".join(
            f"{int(round(100 * q))}% (±{math.sqrt(q * (1 - q) / s):.3f})".rjust(16) for q in levels
        )
        rows = [
            n.ljust(14) + "".join(f"{self.coverage[q][p]:.3f}".rjust(16) for q in levels)
            for p, n in enumerate(self.names)
        ]
        return "\n".join([head, *rows])

    def predictive_table(self) -> str:
        """A text table: per ``predictive`` expression and credible level, the coverage
        pooled over its points and, in brackets, the lowest and highest point's coverage."""
        s = self.num_simulations
        levels = sorted({q for cov in self.predictive.values() for q in cov})
        head = "expression".ljust(14) + "".join(
            f"{int(round(100 * q))}% (±{math.sqrt(q * (1 - q) / s):.3f})".rjust(24) for q in levels
        )
        rows = []
        for name, cov in self.predictive.items():
            cells = [f"{c.mean():.3f} [{c.min():.2f}, {c.max():.2f}]" for c in map(cov.get, levels)]
            rows.append(str(name).ljust(14) + "".join(c.rjust(24) for c in cells))
        return "\n".join([head, *rows])

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: p={p:.3g}" for n, p in zip(self.names, self.p_values))
        return f"SBCResult({self.num_simulations} simulations, L={self.max_rank}; {parts})"


# ---------------------------------------------------------------------- sbc
def sbc(
    crux,
    num_simulations: int = 200,
    simulate=None,
    *,
    seed: int = 0,
    max_rank: int = 99,
    bins: int = 10,
    levels=LEVELS,
    band_level: float = 0.95,
    batch: int | None = None,
    group: int | None = None,
    predictive: dict | None = None,
) -> SBCResult:
    """Simulation-based calibration of ``crux``'s Bayesian models.

    Args:
        crux: a crux whose sampled models (``.bayesian``) all run MCMC (``solve_batch``'s
            condition); their priors must offer ``sample`` (the built-in ones do).
        num_simulations: ``S``.
        simulate: how data are simulated at ``θ_s`` (:mod:`jno.bayesian.simulation`):
            ``None`` (the crux's ``jno.noise`` leaves) or ``{data key: expression}``.
        seed: simulation ``s`` draws from ``fold_in(simulate_key(crux streams, s), seed)``;
            its inference runs on the streams of ``solve_batch`` dataset ``s``; the ECDF band
            simulation uses ``numpy.random.default_rng(seed)``.
        max_rank: ``L``: ranks against ``L`` thinned draws (``(L + 1)`` divisible by ``bins``).
        bins: chi-square bins.
        levels: credible levels for the coverage.
        band_level: the simultaneous level of the ECDF band.
        batch: simulations per compiled batch (default: all at once); a smaller batch bounds
            the memory of the ``(batch, K, N, ...)`` draws.
        group: datasets vectorised together in ``crux.solve_batch`` (``None``: all; ``1``:
            one after another, often faster on a CPU).
        predictive: ``{name: expression}`` of the crux's models and coordinates (no noise
            leaves, no simulated data), evaluated at the crux's points: the coverage of each
            expression's central posterior intervals by its value at ``θ_s``
            (``SBCResult.predictive``).

    Returns:
        An :class:`SBCResult`.
    """
    if not isinstance(num_simulations, int) or num_simulations < 2:
        raise ValueError(f"{WHERE}: num_simulations must be an int >= 2, got {num_simulations!r}")
    if not isinstance(max_rank, int) or max_rank < 1:
        raise ValueError(f"{WHERE}: max_rank must be a positive int, got {max_rank!r}")
    if (max_rank + 1) % bins:
        raise ValueError(
            f"{WHERE}: bins={bins} must divide max_rank + 1 = {max_rank + 1} (e.g. max_rank=99 "
            "with bins=10 or 20)"
        )
    batch = num_simulations if batch is None else int(batch)
    if batch < 1:
        raise ValueError(f"{WHERE}: batch must be a positive int, got {batch!r}")
    sim = Simulator(crux, simulate)
    theta, arrays = sim.batch(num_simulations, seed)
    sim.check_affine(theta)
    pred = _Predictive(crux, sim, predictive) if predictive else None
    pred_truths, pred_draws = [], []
    truths, posts, names = [], [], None
    chain_axis = crux.solver.plan.chain_axis
    for start in range(0, num_simulations, batch):
        stop = min(start + batch, num_simulations)
        data = {t: np.asarray(a)[start:stop] for t, a in zip(sim.targets, arrays)}
        out = crux.solve_batch(data, first=start, group=group)
        flat_t, flat_d, labels, ts, ds = [], [], [], [], []
        for i, (mem, _) in enumerate(sim.members):
            t_i = jax.tree.map(lambda a: np.asarray(a)[start:stop], theta[i])
            d_i = _member_draws(out[mem.model], mem, chain_axis)
            ts.append(t_i)
            ds.append(jax.tree.unflatten(jax.tree.structure(t_i), jax.tree.leaves(d_i)))
            for (path, t), d in zip(jax.tree_util.tree_leaves_with_path(t_i), jax.tree.leaves(d_i)):
                n_sim = t.shape[0]
                flat_t.append(t.reshape(n_sim, -1))
                flat_d.append(d.reshape(n_sim, -1, flat_t[-1].shape[1]))
                base = mem.model.model_name + jax.tree_util.keystr(path)
                labels += [f"{base}[{j}]" for j in range(flat_t[-1].shape[1])]
        names = labels
        truths.append(np.concatenate(flat_t, axis=1))
        posts.append(np.concatenate(flat_d, axis=2))
        if pred is not None:
            pred_truths.append(pred.values(ts))
            pred_draws.append(pred.draws(ds))
    theta_all = np.concatenate(truths)
    draws_all = np.concatenate(posts)
    ranks = ranks_of(theta_all, draws_all, max_rank)
    stat, p = chi_square(ranks, max_rank, bins)
    band = ecdf_band(num_simulations, max_rank, band_level, seed=seed)
    return SBCResult(
        names=names,
        theta=theta_all,
        ranks=ranks,
        max_rank=max_rank,
        bins=bins,
        chi2=stat,
        p_values=p,
        band=band,
        ecdf_p_values=band.p_value(ranks, max_rank),
        coverage=coverage_of(theta_all, draws_all, levels),
        predictive={}
        if pred is None
        else {
            name: coverage_of(
                np.concatenate([t[j] for t in pred_truths]),
                np.concatenate([d[j] for d in pred_draws]),
                levels,
            )
            for j, name in enumerate(pred.names)
        },
    )


class _Predictive:
    """The values ``(M,)`` of the ``predictive`` expressions at full parameters built from
    the sampled members' values (:meth:`Simulator.params`)."""

    def __init__(self, crux, sim: Simulator, predictive):
        if not isinstance(predictive, dict):
            raise TypeError(
                f"{WHERE}: predictive must be a dict {{name: expression}}, got "
                f"{type(predictive).__name__}"
            )
        from ..trace.node import as_node

        self.names = list(predictive)
        exprs = [as_node(e) for e in predictive.values()]
        run, plan = crux.solver.program.evaluator_for(exprs)
        if any(plan.noise_on.values()):
            raise ValueError(
                f"{WHERE}: predictive expressions {self.names} read jno.noise leaves; give "
                "expressions of the models only (the noise-free quantity whose posterior "
                "band is checked)"
            )

        simulated = {id(as_node(t)) for t in sim.targets if not isinstance(t, str)}
        for name, e in zip(self.names, exprs):
            if any(id(n) in simulated for n in e.walk()):
                raise ValueError(
                    f"{WHERE}: predictive[{name!r}] reads data that the simulations replace; "
                    "it is evaluated with the crux's own data, so give an expression of the "
                    "models and coordinates only"
                )

        def one(theta):
            return [jnp.ravel(v) for v in run(sim.params(theta))]

        self._values = jax.jit(jax.vmap(one))
        self._draws = jax.jit(lambda d: jax.lax.map(jax.vmap(one), d))

    def values(self, theta: list) -> list:
        """``[(S, M)]`` at ``theta``: per member a tree with a leading ``(S,)`` axis."""
        return [np.asarray(v) for v in self._values(theta)]

    def draws(self, draws: list) -> list:
        """``[(S, N, M)]`` at the draws: per member a tree with leading ``(S, N)`` axes."""
        return [np.asarray(v) for v in self._draws(draws)]


def _member_draws(samples, mem, chain_axis: bool):
    """The member's sampled leaves ``(D, K*N, ...)`` from a model's batched draws."""
    import equinox as eqx

    from ..solve.blocks.base import take_masked

    params = (
        samples
        if not isinstance(samples, eqx.Module)
        else eqx.filter(samples, eqx.is_inexact_array)
    )
    params = take_masked(params, mem.mask)
    lead = 3 if chain_axis else 2
    return jax.tree.map(lambda a: np.asarray(a).reshape((a.shape[0], -1) + a.shape[lead:]), params)
