"""A property-based guard for the lowering (issue 20, item 5).

Hypothesis draws random expression trees over the coordinates of two point sets, scalar
Parameters of known values, ``jno.np`` functions (sin, cos, tanh, exp, log, sqrt, arctan,
integer and float powers, ``2 ** u``), ``+ - * /``, first and second derivatives (``.d(x)``,
``.dd(x)``, ``jno.diff(u, x, y)``, ``jno.diff(u, y, order=2)``), reductions (``.mse/.mean/
.sum/.mae/.max`` and ``.gaussian``), global values used inside point-wise expressions
(``u - v.mean``, on either point set) and weighted sums of reductions. Every tree is an
abstract tuple (``("sin", ("x",))``, printed with a falsifying example) read by three
independent interpreters:

* ``to_jno``: the DSL; values come from ``crux.eval`` and from the lowered program
  (``crux.program.losses``, also on ``Program.hoist``-ed inputs as a solve runs it),
  gradients from ``jax.jacrev`` of the latter;
* ``to_jax``: the same expression composed by hand in JAX, one point at a time, derivatives by
  ``jax.grad`` of the per-point function, reductions with ``jnp``;
* ``to_sympy``: the same expression in sympy, derivatives by ``sp.diff``, evaluated in float64
  with ``lambdify`` (the truth that involves no JAX at all).

jno must equal the hand JAX and sympy on every point-wise sub-expression (derivatives of each
reduced tree included) and on every loss (the objective and each weighted term), and the
gradients of the losses with respect to every parameter must equal ``jax.jacrev`` of the hand
JAX. The expected values never go through jno.

Tolerances are float32 round-off: jno runs in float32 (the suite does not enable x64), each
operation rounds to ``eps = 1.2e-7`` relative to the largest magnitude it handles, and an
expression here has at most about a hundred operations, derivatives included (two
forward-mode tangents each). So the error is at most ``~100 * eps * scale ~ 1.2e-5 * scale``,
where ``scale`` is the largest magnitude of any sub-expression of a tree (derivatives in it
included), measured in float64 from the sympy truth; through ``u op R`` the errors of ``u``
and ``R`` add up weighted by ``|d(u op R)/du|`` and ``|d(u op R)/dR|``; for a loss it is the
magnitude its reduction sums (``scale**2`` for ``mse``, ``n * scale`` for ``sum``, ...). We
allow ``RTOL = 1e-4`` of the value plus ``1e-4 * scale``: 8x headroom for tangents larger than
the values they belong to, and still far below the error of a wrong lowering (a dropped term,
a wrong chain rule, a wrong reduction: changing ``(1 + u**2) ** 1.5`` to ``** 1.501`` fails).
A gradient ``dL/dp`` gets ``1e-4`` times the magnitude its chain rule sums (the reduction's
derivative over the points times the largest ``p``-derivative on the way: ``_gradient_scale``),
and is compared only where it is defined beyond round-off: not at a ``max``
whose two largest values are within ``1e-3 * scale``, nor at a ``mae`` of a value within
``1e-3 * scale`` of 0 (its value is still compared).

Ill-conditioned expressions are avoided by construction: exponents pass through ``tanh`` or
are ``-u**2``, logarithms and square roots take ``1 + u**2``, denominators are ``1 + u**2``,
``1.5 + cos(u)`` or a parameter with ``|p| >= 0.5``, a tree is at most 4 operations deep (at
most 8 leaves) with derivatives of total order at most 2 (3 with the derivatives of a whole
tree checked on their own), and constants, parameters and the grid's coordinates are exact
binary fractions, so float32 and the float64 truth start from the same numbers.

The default run (20-25 s on a busy 2-core machine) checks four explicit problems (together
every operation, derivative, reduction and centring, and a regression) and 15 drawn ones
without shrinking; ``-m slow`` (about 3.5 min) draws 300 and shrinks a failure. Reproduce a
failing problem with ``check(Problem(...))``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis import strategies as st

import jno

# ---------------------------------------------------------------------------- the fixed world
# Grid coordinates are exact binary fractions (x in {-0.875, ..., 1.125}, y in {-0.625, ...,
# 0.875}), so float32 and the float64 truth see the same points; none is 0.
DOM = jno.domain(
    constructor=jno.domain.rect(mesh_size=0.5, x_range=(-0.875, 1.125), y_range=(-0.625, 0.875))
)
VARS = {
    "interior": DOM.variable("interior")[:2],  # 20 points
    "boundary": DOM.variable("boundary")[:2],  # 14 points
}
POINTS32 = {tag: np.asarray(DOM.points(tag), dtype=np.float32) for tag in VARS}
POINTS64 = {tag: p.astype(np.float64) for tag, p in POINTS32.items()}
PARAMS = ("a", "b", "c")
RTOL = 1e-4
ATOL_PER_SCALE = 1e-4

SX, SY = sp.symbols("x y", real=True)
SYM_PARAMS = sp.symbols("a b c", real=True)
SYM_ARGS = (SX, SY, *SYM_PARAMS)

UNARY = (
    "neg",
    "sin",
    "cos",
    "tanh",
    "exp_tanh",  # exp(tanh(u))
    "gauss",  # exp(-u**2)
    "log1p_sq",  # log(1 + u**2)
    "sqrt1p_sq",  # sqrt(1 + u**2)
    "square",  # u**2 (integer power)
    "cube",  # u**3 (integer power)
    "pow15",  # (1 + u**2) ** 1.5 (float power)
    "arctan",
    "rpow_tanh",  # 2 ** tanh(u) (a number to the power of an expression)
)
BINARY = (
    "add",
    "sub",
    "mul",
    "div_sq",  # u / (1 + v**2)
    "div_cos",  # u / (1.5 + cos(v))
)
DERIVATIVES = {"dx": 1, "dy": 1, "dxx": 2, "dyy": 2, "dxy": 2}  # total order each one adds
REDUCTIONS = ("mse", "mean", "sum", "mae", "max")
CENTRES = ("sub", "mul", "div")  # u - R, u * R, u / (1 + R**2) with R a reduction


# ---------------------------------------------------------------------------- strategies
def _order(t) -> int:
    """Total derivative order along the deepest path of tree ``t``."""
    if t[0] in ("x", "y", "p"):
        return 0
    own = DERIVATIVES.get(t[0], 0)
    return own + max(_order(a) for a in t[1:] if isinstance(a, tuple))


def _uses(t, name: str) -> bool:
    """Whether tree ``t`` reads the parameter ``name``."""
    if t[0] == "p":
        return t[1] == name
    if t[0] == "div_p" and t[2] == name:
        return True
    return any(_uses(a, name) for a in t[1:] if isinstance(a, tuple))


def _pointwise(t) -> bool:
    """Whether ``t`` depends on the point (a coordinate or a derivative in it)."""
    if t[0] in ("x", "y") or t[0] in DERIVATIVES:
        return True
    return any(_pointwise(a) for a in t[1:] if isinstance(a, tuple))


EIGHTHS = [k / 8 for k in range(-12, 13) if k]  # exact in float32, nonzero
small = st.sampled_from(EIGHTHS)
leaves = st.one_of(
    st.just(("x",)),
    st.just(("y",)),
    st.sampled_from(PARAMS).map(lambda n: ("p", n)),
)


@functools.cache
def trees_of_depth(depth: int):
    """Trees with ``depth`` operations on the path to their deepest leaf; the other operand of
    a binary operation is at most ``depth - 2`` deep (so at most 8 leaves at depth 4)."""
    if depth == 0:
        return leaves
    child = trees_of_depth(depth - 1)
    other = leaves if depth < 2 else st.one_of(leaves, trees_of_depth(depth - 2))
    return st.one_of(
        st.tuples(st.sampled_from(UNARY), child),
        st.one_of(
            st.tuples(st.sampled_from(BINARY), child, other),
            st.tuples(st.sampled_from(BINARY), other, child),
        ),
        st.one_of(
            st.tuples(st.just("scale"), child, small),  # k * u
            st.tuples(st.just("shift"), child, small),  # u + k
            st.tuples(st.just("div_p"), child, st.sampled_from(PARAMS)),  # u / p
        ),
        st.tuples(st.sampled_from(sorted(DERIVATIVES)), child).filter(lambda t: _order(t) <= 2),
    )


MAX_DEPTH = 4
trees = st.integers(1, MAX_DEPTH).flatmap(trees_of_depth).filter(_pointwise)


class Centre(NamedTuple):
    op: str  # CENTRES
    reduction: str  # REDUCTIONS
    pointset: str  # where the reduced tree lives (either point set)
    tree: tuple


class Term(NamedTuple):
    weight: float
    reduction: str  # REDUCTIONS or "gaussian"
    pointset: str
    tree: tuple
    centre: Centre | None


class Problem(NamedTuple):
    params: tuple[float, float, float]  # values of a, b, c
    terms: tuple[Term, ...]


pointsets = st.sampled_from(sorted(VARS))
centres = st.builds(Centre, st.sampled_from(CENTRES), st.sampled_from(REDUCTIONS), pointsets, trees)
terms = st.builds(
    Term,
    small,
    st.sampled_from((*REDUCTIONS, "gaussian")),
    pointsets,
    trees,
    st.none() | centres,
)
# |p| in [0.5, 1.5], distinct (the program's parameters are matched to names by value)
param_values = st.lists(
    st.sampled_from([v for v in EIGHTHS if abs(v) >= 0.5]), min_size=3, max_size=3, unique=True
).map(tuple)
problems = st.builds(Problem, param_values, st.lists(terms, min_size=1, max_size=2).map(tuple))
GAUSS_STD = 0.5


# ---------------------------------------------------------------------------- interpreter 1: jno
def to_jno(t, xy, params: dict, memo: dict):
    """The jno node of tree ``t`` on the point set of the coordinates ``xy``."""
    key = (t, id(xy[0]))  # equal sub-trees give one shared node, per point set
    if key not in memo:
        memo[key] = _jno(t, xy, params, memo)
    return memo[key]


def _jno(t, xy, params, memo):
    x, y = xy
    op = t[0]
    if op == "x":
        return x
    if op == "y":
        return y
    if op == "p":
        return params[t[1]]
    u = to_jno(t[1], xy, params, memo)
    f = jno.np
    if op in DERIVATIVES:
        return {
            "dx": lambda: u.d(x),
            "dy": lambda: u.d(y),
            "dxx": lambda: u.dd(x),
            "dyy": lambda: jno.diff(u, y, order=2),
            "dxy": lambda: jno.diff(u, x, y),
        }[op]()
    if op == "scale":
        return t[2] * u
    if op == "shift":
        return u + t[2]
    if op == "div_p":
        return u / params[t[2]]
    if op in BINARY:
        v = to_jno(t[2], xy, params, memo)
        return {
            "add": lambda: u + v,
            "sub": lambda: u - v,
            "mul": lambda: u * v,
            "div_sq": lambda: u / (1.0 + v**2),
            "div_cos": lambda: u / (1.5 + f.cos(v)),
        }[op]()
    return {
        "neg": lambda: -u,
        "sin": lambda: f.sin(u),
        "cos": lambda: f.cos(u),
        "tanh": lambda: f.tanh(u),
        "exp_tanh": lambda: f.exp(f.tanh(u)),
        "gauss": lambda: f.exp(-(u**2)),
        "log1p_sq": lambda: f.log(1.0 + u**2),
        "sqrt1p_sq": lambda: f.sqrt(1.0 + u**2),
        "square": lambda: u**2,
        "cube": lambda: u**3,
        "pow15": lambda: (1.0 + u**2) ** 1.5,
        "arctan": lambda: f.arctan(u),
        "rpow_tanh": lambda: 2.0 ** f.tanh(u),
    }[op]()


def _jno_reduce(kind: str, node):
    if kind == "gaussian":
        return node.gaussian(std=GAUSS_STD)
    return getattr(node, kind)


def _jno_centre(op: str, u, r):
    return {"sub": lambda: u - r, "mul": lambda: u * r, "div": lambda: u / (1.0 + r**2)}[op]()


# ---------------------------------------------------------------------------- interpreter 2: JAX
@functools.cache
def to_jax(t):
    """Tree ``t`` composed by hand: ``f(x, y, p) -> scalar`` for one point, ``p`` a dict."""
    op = t[0]
    if op == "x":
        return lambda x, y, p: x
    if op == "y":
        return lambda x, y, p: y
    if op == "p":
        name = t[1]
        return lambda x, y, p: p[name]
    u = to_jax(t[1])
    if op == "dx":
        return jax.grad(u, argnums=0)
    if op == "dy":
        return jax.grad(u, argnums=1)
    if op == "dxx":
        return jax.grad(jax.grad(u, argnums=0), argnums=0)
    if op == "dyy":
        return jax.grad(jax.grad(u, argnums=1), argnums=1)
    if op == "dxy":
        return jax.grad(jax.grad(u, argnums=0), argnums=1)
    if op == "scale":
        k = t[2]
        return lambda x, y, p: k * u(x, y, p)
    if op == "shift":
        k = t[2]
        return lambda x, y, p: u(x, y, p) + k
    if op == "div_p":
        name = t[2]
        return lambda x, y, p: u(x, y, p) / p[name]
    if op in BINARY:
        v = to_jax(t[2])
        g = {
            "add": jnp.add,
            "sub": jnp.subtract,
            "mul": jnp.multiply,
            "div_sq": lambda a, b: a / (1.0 + b * b),
            "div_cos": lambda a, b: a / (1.5 + jnp.cos(b)),
        }[op]
        return lambda x, y, p: g(u(x, y, p), v(x, y, p))
    h = {
        "neg": jnp.negative,
        "sin": jnp.sin,
        "cos": jnp.cos,
        "tanh": jnp.tanh,
        "exp_tanh": lambda a: jnp.exp(jnp.tanh(a)),
        "gauss": lambda a: jnp.exp(-a * a),
        "log1p_sq": lambda a: jnp.log(1.0 + a * a),
        "sqrt1p_sq": lambda a: jnp.sqrt(1.0 + a * a),
        "square": lambda a: a * a,
        "cube": lambda a: a * a * a,
        "pow15": lambda a: (1.0 + a * a) * jnp.sqrt(1.0 + a * a),
        "arctan": jnp.arctan,
        "rpow_tanh": lambda a: jnp.exp(jnp.log(2.0) * jnp.tanh(a)),
    }[op]
    return lambda x, y, p: h(u(x, y, p))


def jax_points(t, tag: str, p: dict) -> jax.Array:
    """``(n,)`` values of tree ``t`` on the points of ``tag``, by hand."""
    pts = POINTS32[tag]
    return jax.vmap(to_jax(t), in_axes=(0, 0, None))(pts[:, 0], pts[:, 1], p)


def jax_reduce(kind: str, v):
    if kind == "mse":
        return jnp.mean(v * v)
    if kind == "mean":
        return jnp.mean(v)
    if kind == "sum":
        return jnp.sum(v)
    if kind == "mae":
        return jnp.mean(jnp.abs(v))
    if kind == "max":
        return jnp.max(v)
    assert kind == "gaussian"
    n = v.shape[0]
    return 0.5 * jnp.sum(v * v) / GAUSS_STD**2 + n * (
        jnp.log(GAUSS_STD) + 0.5 * jnp.log(2 * jnp.pi)
    )


def jax_centre(op: str, u, r):
    return {"sub": lambda: u - r, "mul": lambda: u * r, "div": lambda: u / (1.0 + r * r)}[op]()


def jax_term_values(term: Term, p: dict):
    """The point-wise expression a term reduces, by hand."""
    u = jax_points(term.tree, term.pointset, p)
    if term.centre is None:
        return u
    c = term.centre
    r = jax_reduce(c.reduction, jax_points(c.tree, c.pointset, p))
    return jax_centre(c.op, u, r)


# ---------------------------------------------------------------------------- interpreter 3: sympy
@functools.cache
def to_sympy(t) -> sp.Expr:
    op = t[0]
    if op == "x":
        return SX
    if op == "y":
        return SY
    if op == "p":
        return SYM_PARAMS[PARAMS.index(t[1])]
    u = to_sympy(t[1])
    if op == "dx":
        return sp.diff(u, SX)
    if op == "dy":
        return sp.diff(u, SY)
    if op == "dxx":
        return sp.diff(u, SX, 2)
    if op == "dyy":
        return sp.diff(u, SY, 2)
    if op == "dxy":
        return sp.diff(u, SX, SY)
    if op == "scale":
        return sp.Rational(t[2]) * u
    if op == "shift":
        return u + sp.Rational(t[2])
    if op == "div_p":
        return u / SYM_PARAMS[PARAMS.index(t[2])]
    if op in BINARY:
        v = to_sympy(t[2])
        return {
            "add": lambda: u + v,
            "sub": lambda: u - v,
            "mul": lambda: u * v,
            "div_sq": lambda: u / (1 + v**2),
            "div_cos": lambda: u / (sp.Rational(3, 2) + sp.cos(v)),
        }[op]()
    return {
        "neg": lambda: -u,
        "sin": lambda: sp.sin(u),
        "cos": lambda: sp.cos(u),
        "tanh": lambda: sp.tanh(u),
        "exp_tanh": lambda: sp.exp(sp.tanh(u)),
        "gauss": lambda: sp.exp(-(u**2)),
        "log1p_sq": lambda: sp.log(1 + u**2),
        "sqrt1p_sq": lambda: sp.sqrt(1 + u**2),
        "square": lambda: u**2,
        "cube": lambda: u**3,
        "pow15": lambda: (1 + u**2) ** sp.Rational(3, 2),
        "arctan": lambda: sp.atan(u),
        "rpow_tanh": lambda: 2 ** sp.tanh(u),
    }[op]()


def sympy_points(expr: sp.Expr, tag: str, values: tuple) -> np.ndarray:
    """``(n,)`` float64 values of a sympy expression on the points of ``tag``."""
    pts = POINTS64[tag]
    f = sp.lambdify(SYM_ARGS, expr, "numpy")
    out = np.asarray(f(pts[:, 0], pts[:, 1], *values), dtype=np.float64)
    return np.broadcast_to(out, (pts.shape[0],)).copy()


def np_reduce(kind: str, v: np.ndarray) -> float:
    return {
        "mse": lambda: np.mean(v**2),
        "mean": lambda: np.mean(v),
        "sum": lambda: np.sum(v),
        "mae": lambda: np.mean(np.abs(v)),
        "max": lambda: np.max(v),
        "gaussian": lambda: (
            0.5 * np.sum(v**2) / GAUSS_STD**2 + v.size * np.log(GAUSS_STD * np.sqrt(2 * np.pi))
        ),
    }[kind]()


def np_centre(op: str, u, r):
    return {"sub": lambda: u - r, "mul": lambda: u * r, "div": lambda: u / (1.0 + r**2)}[op]()


# ---------------------------------------------------------------------------- the check
def _subtrees(t):
    """Every point-wise sub-tree of ``t`` (``t`` included), each once, children first."""
    out, seen = [], set()

    def walk(s):
        for a in s[1:]:
            if isinstance(a, tuple):
                walk(a)
        if s not in seen and _pointwise(s):
            seen.add(s)
            out.append(s)

    walk(t)
    return out


def _root_derivatives(t):
    """Derivatives of a whole tree checked on their own: first order always, second order
    (and the mixed partial) when the tree has no derivative yet."""
    extra = [("dx", t), ("dy", t)]
    if _order(t) == 0:
        extra += [("dxx", t), ("dyy", t), ("dxy", t)]
    return extra


class Column(NamedTuple):
    what: str
    node: object  # the jno node
    hand: object  # p -> (n,) values by hand in JAX
    truth: np.ndarray  # (n,) float64 from sympy
    scale: float
    in_loss: bool  # computed on the way to a loss (its parameter derivatives bound round-off)


class Loss(NamedTuple):
    """A term ``weight * reduction(g)`` and what bounds the round-off of its gradient."""

    term: Term
    g: tuple[str, int]  # the column of the reduced expression g (u, or u op R)
    g_scale: float
    u_cols: list  # the columns of the sub-trees of u
    v: tuple[str, int] | None  # the column of the centre's reduced tree (R = red(v))
    v_scale: float
    v_cols: list
    dg_du: float  # max |dg/du| (1 without a centre)
    dg_dr: float  # max |dg/dR|


def _close(got, want, scale, what):
    np.testing.assert_allclose(
        np.asarray(got, dtype=np.float64),
        np.asarray(want, dtype=np.float64),
        rtol=RTOL,
        atol=ATOL_PER_SCALE * scale,
        err_msg=what,
    )


def _reduced_scale(kind: str, scale: float, n: int) -> float:
    """The magnitude round-off is relative to in reduction ``kind`` of ``n`` values of
    magnitude up to ``scale``."""
    return {
        "mse": scale**2,
        "sum": n * scale,
        "gaussian": n * (scale**2 / GAUSS_STD**2 + 1.0),
    }.get(kind, scale)


def _curvature(kind: str, n: int) -> float:
    """``|d^2 reduction / dg_i^2|``: how an error in ``g_i`` moves ``d reduction / dg_i``."""
    return {"mse": 2.0 / n, "gaussian": 1.0 / GAUSS_STD**2}.get(kind, 0.0)


def _centre_partials(op: str, u: np.ndarray, r: float) -> tuple[float, float]:
    """``max |dg/du|`` and ``max |dg/dR|`` of ``g = u op R`` over the points (float64)."""
    if op == "sub":
        return 1.0, 1.0
    if op == "mul":
        return abs(r), float(np.max(np.abs(u)))
    return 1.0 / (1.0 + r**2), float(np.max(np.abs(2.0 * u * r))) / (1.0 + r**2) ** 2


def _smooth_at(kind: str, v: np.ndarray, scale: float) -> bool:
    """Whether reduction ``kind`` is differentiable at ``v`` beyond float32 round-off (the
    gradient of ``max`` at a near tie and of ``mae`` at a near zero depends on round-off)."""
    margin = 1e-3 * scale
    if kind == "max":
        top = np.sort(v)[-2:]
        return bool(v.size < 2 or top[1] - top[0] > margin)
    if kind == "mae":
        return bool(np.all(np.abs(v) > margin))
    return True


def _gradient_scale(loss: Loss, name: str, jacs: dict, d_red: dict) -> float:
    """The magnitude the round-off of ``d loss / d name`` is relative to.

    ``d loss / dp = w sum_i red'(g)_i dg_i/dp``: a sum of ``n`` products whose factors carry
    their own round-off. ``red'(g)_i`` is off by ``red''·err(g_i)`` (``err(g_i) ~ eps·scale``);
    ``dg_i/dp`` is computed from partials no larger than the largest ``|ds/dp|`` of a
    point-wise sub-expression ``s`` of ``u`` (times ``|dg/du|``) or of ``g`` itself, or 1
    (``p`` itself; parameter-only parts such as ``c/c``), and through a centre ``R = red(v)``
    no larger than ``|dg/dR|`` times the same bound for ``dR/dp``. So the scale is
    ``sum_i (|red'_i| + red''·scale)`` times that largest partial.
    """

    def largest_partial(cols, *trees):  # at least 1 where p is used (``dp/dp``, ``c/c``)
        floor = 1.0 if any(_uses(t, name) for t in trees) else 0.0
        return max([floor] + [float(np.max(np.abs(jacs[c][name]))) for c in cols])

    def weight(kind, d, scale):
        return float(np.sum(np.abs(d))) + d.size * _curvature(kind, d.size) * scale

    t, c = loss.term, loss.term.centre
    partial = max(
        loss.dg_du * largest_partial(loss.u_cols, t.tree),
        largest_partial([loss.g], t.tree, *([c.tree] if c else [])),
    )
    if c is not None:
        dr = weight(c.reduction, d_red[loss.v], loss.v_scale)
        partial = max(partial, loss.dg_dr * dr * largest_partial(loss.v_cols, c.tree))
    return abs(t.weight) * weight(t.reduction, d_red[loss.g], loss.g_scale) * partial


def check(problem: Problem, log=lambda text: None) -> dict:
    """Lower ``problem`` with jno and compare it with the hand JAX and with sympy.

    The constraints are the objective ``sum_k w_k red_k(g_k)`` and each term ``w_k red_k(g_k)``
    on its own (so a term where ``max``/``mae`` is not differentiable leaves the gradients of
    the others checked). ``log``: hypothesis' ``note`` (printed with a falsifying example).
    Returns what was checked (for the record; the assertions are inside).
    """
    names = dict(zip(PARAMS, problem.params))
    values64 = tuple(float(v) for v in problem.params)
    p32 = {n: jnp.float32(v) for n, v in names.items()}
    params = {n: jno.np.parameter((1,), name=n, init=v) for n, v in names.items()}
    memo: dict = {}

    # point-wise columns per point set: every sub-tree, derivatives of each reduced tree, and
    # each term's reduced expression (with its global value inside)
    columns: dict[str, list[Column]] = {tag: [] for tag in VARS}

    def add_column(tag, column) -> tuple[str, int]:
        columns[tag].append(column)
        return tag, len(columns[tag]) - 1

    def add_tree(t, tag) -> tuple[float, list, tuple[str, int]]:
        """Add the columns of tree ``t`` on ``tag``: ``(scale, sub-tree columns, root's)``.
        ``scale`` is that of the tree's value (its sub-trees); the derivatives of the whole
        tree, checked on their own, are relative to that and their own magnitudes."""
        xy = VARS[tag]
        subtrees, extra = _subtrees(t), _root_derivatives(t)
        truths = [sympy_points(to_sympy(s), tag, values64) for s in subtrees + extra]
        sizes = [float(np.max(np.abs(v))) for v in truths]
        scale = max([1.0] + sizes[: len(subtrees)])
        d_scale = max([scale] + sizes[len(subtrees) :])
        assert np.isfinite(d_scale), f"the truth is not finite: {to_sympy(t)}"
        refs = [
            add_column(
                tag,
                Column(
                    f"{to_sympy(s)} on {tag}",
                    to_jno(s, xy, params, memo),
                    functools.partial(jax_points, s, tag),
                    truth,
                    scale if i < len(subtrees) else d_scale,
                    i < len(subtrees),
                ),
            )
            for i, (s, truth) in enumerate(zip(subtrees + extra, truths))
        ]
        return scale, refs[: len(subtrees)], refs[len(subtrees) - 1]

    # per constraint (the objective first, then each term): jno node, float64 truth, the
    # magnitude round-off is relative to, whether its gradient is defined beyond round-off
    nodes, truths, scales, smooth, losses = [], [], [], [], []
    for term in problem.terms:
        log(f"term: {term.weight} * {term.reduction}({to_sympy(term.tree)}) on {term.pointset}")
        scale, u_cols, g = add_tree(term.tree, term.pointset)
        u = to_jno(term.tree, VARS[term.pointset], params, memo)
        u64 = sympy_points(to_sympy(term.tree), term.pointset, values64)
        ok, v, v_scale, v_cols, dg_du, dg_dr = True, None, 0.0, [], 1.0, 0.0
        if term.centre is not None:
            c = term.centre
            log(f"  centred: {c.op} {c.reduction}({to_sympy(c.tree)}) on {c.pointset}")
            v_scale, v_cols, v = add_tree(c.tree, c.pointset)
            r = _jno_reduce(c.reduction, to_jno(c.tree, VARS[c.pointset], params, memo))
            v64 = sympy_points(to_sympy(c.tree), c.pointset, values64)
            r64 = np_reduce(c.reduction, v64)
            ok = _smooth_at(c.reduction, v64, v_scale)
            u = _jno_centre(c.op, u, r)
            # errors of u and R reach g = u op R through |dg/du| and |dg/dR| (linearised)
            dg_du, dg_dr = _centre_partials(c.op, u64, r64)
            u64 = np_centre(c.op, u64, r64)
            r_scale = _reduced_scale(c.reduction, v_scale, v64.size)
            scale = max(dg_du * scale, dg_dr * r_scale, float(np.max(np.abs(u64))), 1.0)
            g = add_column(
                term.pointset,
                Column(
                    f"centred term on {term.pointset}",
                    u,
                    functools.partial(jax_term_values, term),
                    u64,
                    scale,
                    True,
                ),
            )
        nodes.append(term.weight * _jno_reduce(term.reduction, u))
        truths.append(term.weight * np_reduce(term.reduction, u64))
        scales.append(abs(term.weight) * _reduced_scale(term.reduction, scale, u64.size))
        smooth.append(ok and _smooth_at(term.reduction, u64, scale))
        losses.append(Loss(term, g, scale, u_cols, v, v_scale, v_cols, dg_du, dg_dr))
    objective = functools.reduce(lambda s, t: s + t, nodes)
    nodes, truths = [objective, *nodes], [sum(truths), *truths]
    scales, smooth = [sum(scales), *scales], [all(smooth), *smooth]
    what = ["objective"] + [f"term {k}" for k in range(len(problem.terms))]

    # everything by hand in one compiled function: the columns, the losses and their
    # gradients, and what bounds the gradients' round-off (the parameter derivatives of the
    # columns, the derivatives of the reductions)
    def hand_losses(q):
        terms = [t.weight * jax_reduce(t.reduction, jax_term_values(t, q)) for t in problem.terms]
        return jnp.stack([functools.reduce(jnp.add, terms), *terms])

    refs = [(tag, i) for tag, cols in columns.items() for i in range(len(cols))]
    in_loss = [ref for ref in refs if columns[ref[0]][ref[1]].in_loss]
    reduced = [(loss.g, loss.term.reduction) for loss in losses]
    reduced += [(loss.v, loss.term.centre.reduction) for loss in losses if loss.v is not None]

    def hand_columns(q):
        values = {ref: columns[ref[0]][ref[1]].hand(q) for ref in refs}
        return {ref: values[ref] for ref in in_loss}, values

    @jax.jit
    def by_hand(q):
        jacs, values = jax.jacfwd(hand_columns, has_aux=True)(q)
        d_red = {ref: jax.grad(functools.partial(jax_reduce, k))(values[ref]) for ref, k in reduced}
        return hand_losses(q), jax.jacrev(hand_losses)(q), values, jacs, d_red

    want, want_grads, hand_values, jacs, d_red = by_hand(p32)
    g_scales = [{n: _gradient_scale(loss, n, jacs, d_red) for n in PARAMS} for loss in losses]
    g_scales = [{n: sum(g[n] for g in g_scales) for n in PARAMS}, *g_scales]

    crux = jno.core(nodes)

    # values: every point-wise column, one evaluation per point set
    for tag, cols in columns.items():
        if not cols:
            continue
        got = crux.eval([jno.np.concat([c.node for c in cols], axis=-1)])
        assert got.shape == (POINTS32[tag].shape[0], len(cols))
        for i, c in enumerate(cols):
            hand = hand_values[tag, i]
            _close(got[:, i], hand, c.scale, f"jno vs hand JAX: {c.what}")
            _close(got[:, i], c.truth, c.scale, f"jno vs sympy: {c.what}")
            _close(hand, c.truth, c.scale, f"hand JAX vs sympy (the harness): {c.what}")

    # the losses through the lowered program and their gradients with respect to a, b, c: on
    # the program's inputs, then on the inputs with the parameter-free parts hoisted, as a
    # solve runs it (Program.hoist, once per chunk)
    program = crux.program
    start = program.initial_params()
    assert all(np.shape(v) == (1,) for v in start.values())
    by_value = {float(v): n for n, v in names.items()}

    @jax.jit
    def by_jno(q, inputs):
        if not q:  # no parameter in the losses (jax.jacrev needs at least one leaf)
            return program.losses(q, inputs), {}
        return program.losses(q, inputs), jax.jacrev(lambda q: program.losses(q, inputs))(q)

    def compare(values, grads, how):
        got_grads = {by_value[float(v[0])]: grads[k][:, 0] for k, v in start.items()}
        for i, name in enumerate(what):
            _close(values[i], want[i], scales[i], f"{name}{how}: jno program vs hand JAX")
            _close(values[i], truths[i], scales[i], f"{name}{how}: jno program vs sympy")
            for n in PARAMS if smooth[i] else ():
                got = got_grads[n][i] if n in got_grads else 0.0
                _close(got, want_grads[n][i], g_scales[i][n], f"d {name} / d {n}{how}")

    compare(*by_jno(start, program.inputs), "")
    try:
        hoisted = jax.jit(program.hoist)(program.inputs)  # compiled, as in a solve's chunk
    except Exception as error:
        raise AssertionError(f"Program.hoist(program.inputs) raised {error!r}") from error
    compare(*by_jno(start, hoisted), " (hoisted)")
    return {"columns": len(refs), "gradients": sum(smooth), "of": len(smooth)}


# ---------------------------------------------------------------------------- the tests
# Every operation, derivative, reduction and centring at least once, whatever hypothesis draws.
X, Y = ("x",), ("y",)
A, B, C = ("p", "a"), ("p", "b"), ("p", "c")
EVERY_OPERATION = (
    Problem(
        (0.75, -1.25, 0.5),
        (
            Term(
                0.5,
                "mse",
                "interior",
                (
                    "add",
                    ("dxx", ("mul", ("sin", X), ("exp_tanh", ("mul", A, Y)))),
                    ("dyy", ("log1p_sq", ("div_sq", X, Y))),
                ),
                Centre("sub", "mean", "boundary", ("cos", ("scale", X, 1.5))),
            ),
            Term(
                -0.25,
                "sum",
                "boundary",
                ("dxy", ("div_cos", ("tanh", ("mul", X, B)), ("gauss", Y))),
                Centre("mul", "max", "interior", ("sqrt1p_sq", ("sub", ("mul", X, Y), C))),
            ),
        ),
    ),
    Problem(
        (-0.625, 1.125, 1.5),
        (
            Term(
                1.25,
                "gaussian",
                "interior",
                (
                    "sub",
                    ("dx", ("mul", ("pow15", X), ("arctan", ("mul", A, Y)))),
                    ("neg", ("square", ("div_p", ("shift", Y, 0.5), "c"))),
                ),
                Centre("div", "mse", "interior", ("cube", ("mul", X, B))),
            ),
            Term(0.75, "mae", "boundary", ("shift", ("add", X, ("scale", Y, -0.5)), 2.0), None),
        ),
    ),
    Problem(
        (1.375, 0.875, -0.75),
        (
            Term(
                -1.5,
                "max",
                "interior",
                ("dxy", ("mul", ("square", X), ("sin", ("mul", C, Y)))),
                Centre("sub", "sum", "boundary", ("dy", ("mul", Y, ("rpow_tanh", ("mul", A, X))))),
            ),
            Term(
                0.375,
                "mean",
                "boundary",
                ("dxx", ("cube", ("add", X, ("mul", B, ("square", Y))))),
                Centre("mul", "mae", "interior", ("shift", Y, -0.25)),
            ),
        ),
    ),
)


_COMMON = dict(
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# Found by this test: a parameter-free point-wise expression that reads a global value
# (``y - x.mean``) was hoisted, and hoisting it evaluated ``x.mean`` by running the whole batch
# of point-wise roots at its level, ``a * x`` included, with no parameters: Program.hoist (and
# so crux.solve, which hoists once per chunk) raised a KeyError on ``a``'s key.
REGRESSIONS = (
    Problem(
        (0.75, -1.25, 0.5),
        (
            Term(1.0, "mse", "interior", ("mul", A, X), None),
            Term(1.0, "mse", "interior", Y, Centre("sub", "mean", "interior", X)),
        ),
    ),
)


def _with_examples(test):
    for problem in EVERY_OPERATION + REGRESSIONS:
        test = example(problem)(test)
    return test


# The default run does not shrink a failure (that can take minutes); it prints the failing
# problem, which ``check`` reproduces on its own. The slow run shrinks.
@_with_examples
@settings(max_examples=8, phases=[Phase.explicit, Phase.generate], **_COMMON)
@given(problems)
def test_lowering_matches_hand_jax_and_sympy(problem):
    check(problem, log=note)


@pytest.mark.slow
@_with_examples
@settings(max_examples=300, **_COMMON)
@given(problems)
def test_lowering_matches_hand_jax_and_sympy_many(problem):
    check(problem, log=note)
