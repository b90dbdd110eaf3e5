r"""Convergence diagnostics for MCMC chains in the ``(K, N, *param)`` layout.

Every chain array has the chain axis first and the draw axis second, the layout of
``model.posterior_samples`` and of arviz (``chain, draw, ...``). Both diagnostics return one
value per parameter component, an array of shape ``param`` (a scalar array for ``(K, N)``).

:func:`rhat`
    Rank-normalised split R-hat with folding (Vehtari, Gelman, Simpson, Carpenter & Bürkner
    2021, "Rank-normalization, folding, and localization: an improved R-hat", §4), computed by
    :func:`blackjax.diagnostics.rhat`. Matches ``arviz.rhat(method="rank")``.
:func:`ess`
    Bulk effective sample size (same paper, §3.2 and Appendix A): split chains,
    rank-normalise, then the autocorrelation time with Geyer's initial positive and initial
    monotone sequences and Stan's "improved" last term. Matches ``arviz.ess(method="bulk")``.

Splitting an odd number of draws drops the *middle* draw, so the two halves are the first and
the last ``N // 2`` draws (the Stan / arviz convention; blackjax's own helper drops the last
draw instead, which changes R-hat for odd ``N``).

Components whose draws are all equal (for example leaves outside a ``.mask(M)`` that stay at
their initial value) have no defined R-hat or ESS; both report ``NaN`` for them. A component
with a ``NaN`` draw also reports ``NaN``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import blackjax.diagnostics as bjd
import jax
import jax.numpy as jnp
import numpy as np

from jno.solve.draw_store import StoredDraws

__all__ = [
    "Summary",
    "SummaryRow",
    "ess",
    "format_summary",
    "named_leaves",
    "rhat",
    "summary",
]

RhatStrategy = Literal["auto", "multichain", "split"]
_STRATEGIES: tuple[str, ...] = ("auto", "multichain", "split")
_MIN_DRAWS = 4


# --------------------------------------------------------------------------------------------
# Pytree plumbing
# --------------------------------------------------------------------------------------------


def _is_array(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array | np.ndarray | StoredDraws)


def _key_str(key: Any) -> str:
    """One key of a ``jax.tree_util`` key path as it appears in a variable name."""
    if isinstance(key, jax.tree_util.GetAttrKey):
        return f".{key.name}"
    if isinstance(key, jax.tree_util.DictKey):
        return f".{key.key}" if isinstance(key.key, str) else f"[{key.key!r}]"
    if isinstance(key, jax.tree_util.SequenceKey):
        return f"[{key.idx}]"
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        return f"[{key.key}]"
    return f"[{key}]"


def named_leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """The array leaves of ``tree`` with names built from their key paths.

    Non-array leaves (activation functions of an equinox module, Python scalars) and ``None``
    are skipped. A bare array is its own single leaf, named ``prefix``.

    ``named_leaves({"w": w, "b": {"c": c}}, "net")`` gives ``[("net.b.c", c), ("net.w", w)]``
    (dict keys in sorted order, as jax flattens them); for an ``eqx.nn.MLP`` the names are
    ``prefix + ".layers[0].weight"`` and so on.
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    out = []
    for path, leaf in flat:
        if _is_array(leaf):
            suffix = "".join(_key_str(k) for k in path)
            out.append((prefix + suffix if prefix else suffix.lstrip("."), leaf))
    return out


def _map_batched(
    core: Callable[[jax.Array], jax.Array],
    chain: Any,
    caller: str,
    check: Callable[[jax.Array, str], None] | None = None,
) -> Any:
    """Apply ``core: (K, N, P) -> (P,)`` to every array leaf of ``chain``.

    Leaves that share (K, N) are flattened to ``(K, N, -1)`` and concatenated along the last
    axis, so ``core`` runs (and compiles) once per distinct (K, N, P_total) rather than once
    per leaf shape. Results are reshaped to each leaf's ``param`` shape; non-array leaves map
    to ``None``. ``check(x, name)`` validates each leaf after the layout check.
    """
    if _is_array(chain):
        flat, treedef = [((), chain)], None
    else:
        flat, treedef = jax.tree_util.tree_flatten_with_path(chain)
    arrays: dict[int, jax.Array] = {}
    for i, (path, leaf) in enumerate(flat):
        if _is_array(leaf):
            name = "".join(_key_str(k) for k in path).lstrip(".")
            arrays[i] = _as_chains(leaf, name, caller)
            if check is not None:
                check(arrays[i], name)
    if not arrays:
        raise TypeError(
            f"{caller}: expected an array of chains in the (K, N, *param) layout or a pytree "
            f"of such arrays, got {type(chain).__name__} with no array leaves. Convert "
            "nested lists with jnp.asarray(...)."
        )
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, x in arrays.items():
        groups.setdefault(tuple(x.shape[:2]), []).append(i)
    out: list[Any] = [None] * len(flat)
    for (k, n), idx in groups.items():
        values = core(jnp.concatenate([arrays[i].reshape(k, n, -1) for i in idx], axis=2))
        sizes = [math.prod(arrays[i].shape[2:]) for i in idx]
        for i, v in zip(idx, jnp.split(values, np.cumsum(sizes)[:-1]), strict=True):
            out[i] = v.reshape(arrays[i].shape[2:])
    return out[0] if treedef is None else jax.tree_util.tree_unflatten(treedef, out)


def _as_chains(x: Any, name: str, caller: str) -> jax.Array:
    """Validate the ``(K, N, *param)`` layout and cast to the default float dtype."""
    where = f" (leaf '{name}')" if name else ""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise TypeError(f"{caller}: chains must be real-valued, got dtype {x.dtype}{where}.")
    if x.ndim < 2:
        raise ValueError(
            f"{caller}: expected chains in the (K, N, *param) layout (chain axis, then draw "
            f"axis), got shape {tuple(x.shape)}{where}. Pass a single chain of N draws as "
            "chain[None], i.e. with shape (1, N, *param)."
        )
    k, n = x.shape[0], x.shape[1]
    if k < 1 or n < _MIN_DRAWS:
        raise ValueError(
            f"{caller}: needs at least 1 chain and {_MIN_DRAWS} draws per chain in the "
            f"(K, N, *param) layout, got K={k}, N={n} (shape {tuple(x.shape)}){where}. If "
            "this is a single chain of shape (N, *param), pass chain[None] instead."
        )
    return x.astype(jnp.result_type(float))


def _even_draws(x: jax.Array) -> jax.Array:
    """Keep the first and the last ``N // 2`` draws (drops the middle draw when N is odd)."""
    n = x.shape[1]
    half = n // 2
    return jnp.concatenate([x[:, :half], x[:, n - half :]], axis=1)


def _split_in_half(x: jax.Array) -> jax.Array:
    """``(K, N, *p) -> (2K, N // 2, *p)``: first halves of every chain, then second halves."""
    x = _even_draws(x)
    half = x.shape[1] // 2
    return jnp.concatenate([x[:, :half], x[:, half:]], axis=0)


def _undefined(x: jax.Array) -> jax.Array:
    """Components with a NaN draw or without any variation: their diagnostics are NaN."""
    flat = x.reshape(-1, *x.shape[2:])
    return jnp.any(jnp.isnan(flat), axis=0) | jnp.all(flat == flat[:1], axis=0)


# --------------------------------------------------------------------------------------------
# R-hat
# --------------------------------------------------------------------------------------------


@partial(jax.jit, static_argnames="presplit")
def _rhat_flat(x: jax.Array, presplit: bool) -> jax.Array:
    if presplit:
        x = _split_in_half(x)
    r = bjd.rhat(_even_draws(x), chain_axis=0, sample_axis=1)
    # blackjax squeezes every size-1 axis (a (K, N, 1) chain gives a 0-d result): restore.
    r = jnp.reshape(r, x.shape[2:])
    return jnp.where(_undefined(x), jnp.nan, r)


def rhat(chain: Any, strategy: RhatStrategy = "auto") -> Any:
    r"""Rank-normalised split R-hat with folding, one value per parameter component.

    Parameters
    ----------
    chain
        Draws of shape ``(K, N, *param)`` (K chains of N draws each, N >= 4), or a pytree
        (dict, equinox module, ...) whose array leaves have that layout; non-array leaves
        map to ``None``.
    strategy
        How the chains are compared (S = number of sequences the R-hat is computed over):

        ``"auto"`` (default)
            Vehtari et al. (2021) R-hat on the split chains: each of the K chains is cut into
            its first and last ``N // 2`` draws (S = 2K). For K = 1 this is the split-R-hat
            of the two halves of the single chain (BDA3 §11.4, rank-normalised); for K >= 2
            it is the multichain R-hat, which compares the chains with each other *and*
            the halves of every chain.
        ``"multichain"``
            The same statistic as ``"auto"``, but K = 1 raises ``ValueError``: use it when you
            configured ``num_chains >= 2`` and want a hard failure if the layout lost them.
        ``"split"``
            K = 1: identical to ``"auto"``. K >= 2: every chain is first cut in half
            (2K chains of ``N // 2`` draws), then the multichain R-hat above is applied, which
            cuts again, so S = 4K quarter-chains: a stricter stationarity check. Needs
            N >= 8 when K >= 2.

    Returns
    -------
    Array of shape ``param`` (a pytree of them for pytree input).

    Notes
    -----
    With the S sequences :math:`z_{s,i}` of length n, rank-normalised over all draws with
    Blom's offset, :math:`z = \Phi^{-1}((r - 3/8)/(Sn + 1/4))`,

    .. math::

        W = \frac1S \sum_s \operatorname{var}(z_{s\cdot}),\quad
        B = n \operatorname{var}_s(\bar z_s),\quad
        \hat R_\text{bulk} = \sqrt{\frac{(n - 1)/n \, W + B/n}{W}}.

    :math:`\hat R_\text{fold}` is the same on the rank-normalised folded draws
    :math:`|x - \operatorname{median}(x)|`, and the result is
    :math:`\max(\hat R_\text{bulk}, \hat R_\text{fold})`. Values below 1.01 indicate
    convergence. Computed by :func:`blackjax.diagnostics.rhat`.
    """
    if strategy not in _STRATEGIES:
        raise ValueError(f"rhat: strategy must be one of {_STRATEGIES}, got {strategy!r}.")

    def check(x: jax.Array, name: str) -> None:
        k, n = x.shape[0], x.shape[1]
        where = f" for leaf '{name}'" if name else ""
        if strategy == "multichain" and k == 1:
            raise ValueError(
                "rhat(strategy='multichain') needs K >= 2 chains in the (K, N, *param) "
                f"layout, got K=1 (shape {tuple(x.shape)}){where}. Sample several chains "
                "(.bayesian(..., num_chains=4)) or use strategy='auto' for the split-R-hat "
                "of a single chain."
            )
        if strategy == "split" and k >= 2 and n < 2 * _MIN_DRAWS:
            raise ValueError(
                f"rhat(strategy='split') with K >= 2 chains needs N >= {2 * _MIN_DRAWS} draws "
                f"per chain, got N={n}{where}."
            )

    def core(x: jax.Array) -> jax.Array:
        return _rhat_flat(x, presplit=strategy == "split" and x.shape[0] >= 2)

    return _map_batched(core, chain, "rhat", check)


# --------------------------------------------------------------------------------------------
# Bulk ESS
# --------------------------------------------------------------------------------------------


def _rank_normalise(x: jax.Array) -> jax.Array:
    """Pooled average ranks r mapped to Phi^{-1}((r - 3/8) / (S n + 1/4)), per component."""
    s, n = x.shape[0], x.shape[1]
    flat = x.reshape(s * n, -1)
    ranks = jax.scipy.stats.rankdata(flat, method="average", axis=0)
    z = jax.scipy.special.ndtri((ranks - 3.0 / 8.0) / (s * n + 0.25))
    return z.reshape(x.shape)


def _autocov(z: jax.Array) -> jax.Array:
    """Biased autocovariance per sequence along axis 1: (1/n) sum_i c_i c_{i+t}, t < n."""
    n = z.shape[1]
    centred = z - jnp.mean(z, axis=1, keepdims=True)
    m = 1 << (2 * n - 1).bit_length()  # >= 2n - 1: no circular wrap-around
    f = jnp.fft.rfft(centred, n=m, axis=1)
    return jnp.fft.irfft(f * jnp.conj(f), n=m, axis=1)[:, :n] / n


def _geyer_ess(z: jax.Array) -> jax.Array:
    """ESS of S sequences of n draws, shape (S, n, *p) -> *p, Stan's estimator."""
    s, n = z.shape[0], z.shape[1]
    acov = _autocov(z)
    w = jnp.mean(acov[:, 0], axis=0) * n / (n - 1.0)  # mean within-sequence variance
    var_plus = w * (n - 1.0) / n
    if s > 1:
        var_plus = var_plus + jnp.var(jnp.mean(z, axis=1), axis=0, ddof=1)
    rho = 1.0 - (w - jnp.mean(acov, axis=0)) / var_plus  # (n, *p)
    rho = rho.at[0].set(1.0)

    # Pairs P_k = rho_2k + rho_2k+1 for k <= k_max (Stan never looks past lag n - 2).
    k_max = max((n - 3) // 2, 0)
    even = rho[0 : 2 * k_max + 1 : 2]
    odd = rho[1 : 2 * k_max + 2 : 2]
    pairs = even + odd  # (k_max + 1, *p)
    # Initial positive sequence: stop at the first pair with P_k <= 0 (or at k_max).
    stops = pairs <= 0.0
    k_last = jnp.where(jnp.any(stops, axis=0), jnp.argmax(stops, axis=0), k_max)
    # Initial monotone sequence: P~_k = min_{j <= k} P_j over the pairs kept.
    monotone = jax.lax.cummin(pairs, axis=0)
    kept = jnp.arange(k_max + 1).reshape(-1, *(1,) * (pairs.ndim - 1)) < k_last
    # Stan's improved estimate adds rho_{2 k_last} once (it is not made monotone).
    last_even = jnp.take_along_axis(even, k_last[None], axis=0)[0]
    last_pair = jnp.take_along_axis(pairs, k_last[None], axis=0)[0]
    improved = jnp.where((last_even > 0.0) | (last_pair >= 0.0), last_even, 0.0)
    tau = -1.0 + 2.0 * jnp.sum(jnp.where(kept, monotone, 0.0), axis=0) + improved
    tau = jnp.maximum(tau, 1.0 / math.log10(s * n))
    return s * n / tau


@jax.jit
def _ess_flat(x: jax.Array) -> jax.Array:
    z = _rank_normalise(_split_in_half(x))
    return jnp.where(_undefined(x), jnp.nan, _geyer_ess(z))


def ess(chain: Any) -> Any:
    r"""Bulk effective sample size, one value per parameter component.

    Parameters
    ----------
    chain
        Draws of shape ``(K, N, *param)`` with N >= 4, or a pytree of such arrays (non-array
        leaves map to ``None``).

    Returns
    -------
    Array of shape ``param`` (a pytree of them for pytree input). On i.i.d. draws it is
    close to ``K * N``.

    Notes
    -----
    Vehtari et al. (2021) bulk ESS. The chains are split in half (S = 2K sequences of
    n = ``N // 2`` draws) and rank-normalised as in :func:`rhat`. With the biased
    autocovariances :math:`\gamma_s(t)`, the within-sequence variance
    :math:`W = \frac{n}{n-1}\overline{\gamma_s(0)}` and
    :math:`\widehat{\operatorname{var}}^+ = \frac{n-1}{n} W + \operatorname{var}_s(\bar z_s)`,

    .. math::

        \hat\rho_0 = 1,\quad
        \hat\rho_t = 1 - \frac{W - \overline{\gamma_s(t)}}{\widehat{\operatorname{var}}^+},\quad
        P_k = \hat\rho_{2k} + \hat\rho_{2k+1}.

    Geyer's initial positive sequence keeps :math:`P_0 .. P_{k^*-1}` where :math:`k^*` is the
    first k with :math:`P_k \le 0`; the initial monotone sequence replaces them by their
    running minimum :math:`\tilde P_k`; then

    .. math::

        \hat\tau = -1 + 2 \sum_{k<k^*} \tilde P_k + \hat\rho_{2k^*},\qquad
        \widehat{\text{ESS}} = S n / \max(\hat\tau, 1/\log_{10}(Sn)).

    The sum starts at lag 0 with :math:`\hat\rho_0 = 1`, so i.i.d. draws give
    :math:`\hat\tau \approx 1`. This is Stan's estimator and equals
    ``arviz.ess(method="bulk")``; :func:`blackjax.diagnostics.ess_bulk` differs by up to a
    few percent because it also applies the monotone cap to the last term
    :math:`\hat\rho_{2k^*}`.
    """
    return _map_batched(_ess_flat, chain, "ess")


# --------------------------------------------------------------------------------------------
# Summary table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryRow:
    """Posterior summary of one scalar component (pooled over all chains and draws)."""

    name: str
    mean: float
    std: float
    lo: float
    hi: float
    rhat: float
    ess: float


@dataclass(frozen=True)
class Summary:
    """Rows of :func:`summary`; ``lo``/``hi`` are the equal-tailed ``prob`` interval."""

    rows: tuple[SummaryRow, ...]
    prob: float

    def __str__(self) -> str:
        return format_summary(self)


def _component_names(name: str, shape: tuple[int, ...]) -> list[str]:
    if not shape:
        return [name]
    return [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape)]


def summary(chains: Mapping[str, Any], prob: float = 0.9) -> Summary:
    """Per-component posterior summary of named chains.

    Parameters
    ----------
    chains
        ``{name: chain}`` where each chain is a ``(K, N, *param)`` array or a pytree of them
        (e.g. an equinox module's ``posterior_samples``; its leaves are named by key path,
        ``"net.layers[0].weight"``).
    prob
        Mass of the equal-tailed interval: ``lo``/``hi`` are the ``(1 - prob)/2`` and
        ``(1 + prob)/2`` quantiles of the pooled K·N draws.

    Returns
    -------
    :class:`Summary` with one :class:`SummaryRow` per scalar component (``"a[0]"``,
    ``"w[1,2]"``), holding the pooled mean, the standard deviation (ddof = 1), the interval,
    :func:`rhat` (``strategy="auto"``) and :func:`ess`. ``str(summary(...))`` is the table of
    :func:`format_summary`.
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"summary: prob must lie in (0, 1), got {prob}.")
    chains = {str(key): tree for key, tree in chains.items()}
    r_hats, esss = rhat(chains), ess(chains)
    rows: list[SummaryRow] = []
    for key, tree in chains.items():
        leaves = zip(
            named_leaves(tree, key),
            named_leaves(r_hats[key]),
            named_leaves(esss[key]),
            strict=True,
        )
        for (name, leaf), (_, r), (_, e) in leaves:
            x = np.asarray(leaf, dtype=float)
            pooled = x.reshape(-1, *x.shape[2:])
            lo, hi = np.quantile(pooled, [(1.0 - prob) / 2.0, (1.0 + prob) / 2.0], axis=0)
            cols = [pooled.mean(axis=0), pooled.std(axis=0, ddof=1), lo, hi, r, e]
            flat = np.stack([np.asarray(c, dtype=float).reshape(-1) for c in cols], axis=1)
            for comp, vals in zip(_component_names(name, x.shape[2:]), flat, strict=True):
                rows.append(SummaryRow(comp, *(float(v) for v in vals)))
    return Summary(rows=tuple(rows), prob=float(prob))


def format_summary(table: Summary, digits: int = 4) -> str:
    """Render a :class:`Summary` as an aligned text table.

    Columns: name, mean, std, the two interval bounds (headed by their percentiles, e.g.
    ``5%`` and ``95%`` for ``prob=0.9``), ``r_hat`` (3 decimals) and ``ess_bulk`` (integer).
    ``digits`` is the number of significant digits of the value columns.
    """
    lo_pct = f"{100 * (1 - table.prob) / 2:g}%"
    hi_pct = f"{100 * (1 + table.prob) / 2:g}%"
    header = ["name", "mean", "std", lo_pct, hi_pct, "r_hat", "ess_bulk"]
    body = [
        [
            r.name,
            *(f"{v:.{digits}g}" for v in (r.mean, r.std, r.lo, r.hi)),
            f"{r.rhat:.3f}",
            "nan" if math.isnan(r.ess) else f"{r.ess:.0f}",
        ]
        for r in table.rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *body]
    ]
    return "\n".join(lines)
