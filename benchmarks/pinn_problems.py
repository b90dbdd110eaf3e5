"""PINN problems with an independent reference: Burgers, RAD vs uniform points, L-BFGS vs Adam.

* ``--burgers``: ``u_t + u u_x = (0.01/π) u_xx`` on ``[-1, 1] × [0, 1]``, ``u(x, 0) = -sin(πx)``,
  ``u(±1, t) = 0``. Reference: the exact Cole–Hopf solution by Gauss–Hermite quadrature
  (``cole_hopf``), checked against a Fourier-spectral integrating-factor RK4 solve and against
  the published maximum slope ``|u_x| = 152.00516`` at ``t = 1.6037/π`` (Basdevant et al. 1986).
  jno: an 8×20 tanh MLP ``N`` in the hard-constrained output ``u = -sin(πx) + t (1 - x²) N``
  (the initial and boundary conditions hold exactly; the residual is the only loss) on
  uniformly drawn space-time points, Adam then ``.optimizer(optax.lbfgs())``, on fixed points
  and with RAD (``jno.sampling.rad``) in both phases; and the same network, points, loss and
  optimisers written by hand in jax + optax.
* ``--rad``: the 1-D Poisson problem ``u'' = f`` with ``u = atan(30 (x - 1/2))`` on ``[0, 1]``
  (a steep front), uniform fixed grid points vs ``jno.sampling.rad`` with the same count, budget
  and seeds.
* ``--lbfgs``: the 2-D Poisson problem ``-Δu = 2π² sin(πx) sin(πy)`` on ``[0, 1]²``, ``u = 0`` on
  the boundary (exact ``u = sin(πx) sin(πy)``): Adam alone vs Adam then L-BFGS at the same
  total step budget.

Prints one table: problem, method, relative L2 error, wall time (compile included), steps, and
the per-step time ratio jno / hand-written for Burgers. Runs in float64 (``jax_enable_x64``;
``--float32`` for JAX's default).

    python benchmarks/pinn_problems.py --quick          # all three, a few minutes on 2 CPU cores
    python benchmarks/pinn_problems.py                  # the full budgets
    python benchmarks/pinn_problems.py --burgers --quick
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jno

NU = 0.01 / np.pi
TIMES = (0.25, 0.5, 0.75)


# ------------------------------------------------------------------- Burgers reference
def cole_hopf(x, t: float, nodes: int = 100, nu: float = NU) -> np.ndarray:
    """Exact Burgers solution for ``u(x, 0) = -sin(πx)`` by the Cole–Hopf transform.

    ``u(x, t) = -∫ sin(π(x-η)) f(x-η) e^{-η²/4νt} dη / ∫ f(x-η) e^{-η²/4νt} dη`` with
    ``f(y) = exp(-cos(πy) / (2πν))``; ``η = sqrt(4νt) z`` and ``nodes``-point Gauss–Hermite
    quadrature in ``z`` (the exponents are shifted by their maximum, so nothing overflows).
    ``x``: any shape; returns the same shape. 100 nodes agree with 250 to 2e-15 at t <= 0.75.
    """
    if t == 0:
        return -np.sin(np.pi * np.asarray(x, np.float64))
    z, w = np.polynomial.hermite.hermgauss(nodes)
    y = np.asarray(x, np.float64)[..., None] - np.sqrt(4 * nu * t) * z
    a = -np.cos(np.pi * y) / (2 * np.pi * nu) + np.log(w)
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return -(np.sin(np.pi * y) * e).sum(-1) / e.sum(-1)


def spectral_burgers(nx: int, times, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """``(x (nx,), u (len(times), nx))``: Fourier-spectral solve, integrating-factor RK4, 2/3
    dealiasing, on the periodic ``[-1, 1)`` (the odd 2-periodic solution has ``u(±1) = 0``)."""
    x = -1 + 2 * np.arange(nx) / nx
    k = np.fft.fftfreq(nx, d=2 / nx) * 2 * np.pi
    keep = np.abs(k) < (2 / 3) * np.abs(k).max()
    e, e2 = np.exp(-NU * k**2 * dt), np.exp(-NU * k**2 * dt / 2)

    def nonlinear(v):
        u = np.real(np.fft.ifft(v))
        return -0.5j * k * np.fft.fft(u * u) * keep

    v, t, out = np.fft.fft(-np.sin(np.pi * x)), 0.0, []
    for target in times:
        while t < target - 1e-12:
            a = nonlinear(v)
            b = nonlinear(e2 * (v + dt / 2 * a))
            c = nonlinear(e2 * v + dt / 2 * b)
            d = nonlinear(e * v + dt * e2 * c)
            v = e * v + dt / 6 * (e * a + 2 * e2 * (b + c) + d)
            t += dt
        out.append(np.real(np.fft.ifft(v)))
    return x, np.stack(out)


def check_reference(quick: bool) -> dict:
    """The Cole–Hopf values against the spectral solve and the published maximum slope."""
    nx, dt = (1024, 5e-5) if quick else (2048, 2e-5)
    x, u = spectral_burgers(nx, TIMES, dt)
    ch = np.stack([cole_hopf(x, s) for s in TIMES])
    h, ts = 1e-6, 1.6037 / np.pi
    slope = float((cole_hopf(h, ts) - cole_hopf(-h, ts)) / (2 * h))
    return {
        "spectral_max_diff": float(np.abs(u - ch).max()),
        "spectral_nx": nx,
        "slope": slope,
    }


def burgers_eval_points(nx: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(points (3 nx, 2), exact (3 nx,))`` on ``x = linspace(-1, 1, nx)`` at ``TIMES``."""
    xs = np.linspace(-1, 1, nx)
    pts = np.concatenate([np.stack([xs, np.full(nx, s)], 1) for s in TIMES])
    return pts, np.concatenate([cole_hopf(xs, s) for s in TIMES])


def rel_l2(module, pts, exact, output=None) -> float:
    """Relative L2 error of ``module``'s first output at ``pts``, passed through
    ``output(pts, raw)`` when given (a hard-constrained solution)."""
    pred = np.asarray(jax.vmap(module)(jnp.asarray(pts)))[:, 0]
    if output is not None:
        pred = output(pts, pred)
    return float(np.linalg.norm(pred - exact) / np.linalg.norm(exact))


def burgers_output(pts, raw):
    """The hard-constrained Burgers solution ``u = -sin(πx) + t (1 - x²) N(x, t)`` from the
    network's outputs ``raw (n,)`` at ``pts (n, 2)``: the initial and boundary conditions hold
    exactly, and the residual is the only loss."""
    x, t = pts[:, 0], pts[:, 1]
    return -np.sin(np.pi * x) + t * (1 - x**2) * raw


# ------------------------------------------------------------------- Burgers: jno
def burgers_problem(cfg: dict, seed: int = 0):
    """``(crux, net, x)``: the jno Burgers PINN, ``cfg["points"]`` interior points drawn
    uniformly in ``[-1, 1] × [0, 1]`` (the domain's seeded draw), the hard-constrained
    output of :func:`burgers_output` and the residual's mean square as the loss."""
    dom = jno.domain(constructor=jno.domain.line(0.01, x_range=(-1, 1)), time=(0.0, 1.0, 2))
    x, t = dom.variable("interior", sample=cfg["points"])
    module = jno.nn.mlp(
        2, hidden_dims=cfg["width"], num_layers=cfg["depth"], key=jax.random.PRNGKey(seed)
    )
    net = jno.nn.wrap(module, name="u")
    net.optimizer(optax.adam(cfg["lr"]))
    u = -jno.np.sin(jno.np.pi * x) + t * (1 - x**2) * net(jno.np.concat([x, t], axis=-1))
    pde = jno.diff(u, t) + u * jno.diff(u, x) - NU * jno.diff(u, x, order=2)
    crux = jno.core([pde.mse.name("pde")], seed=seed)
    return crux, net, x


def burgers_jno(cfg: dict, rad: bool) -> dict:
    """Adam for ``cfg["adam"]`` steps, then L-BFGS for ``cfg["lbfgs"]`` steps, the interior
    points fixed or moved by RAD every ``cfg["every"]`` steps in both phases; wall time with
    compilation, and per-step times without (the first chunk of each phase is timed apart)."""
    crux, net, x = burgers_problem(cfg)
    chunk = cfg["chunk"]
    resample = jno.sampling.rad(x, every=cfg["every"]) if rad else None
    out = {"wall": 0.0}
    for phase, steps in (("adam", cfg["adam"]), ("lbfgs", cfg["lbfgs"])):
        every = 1
        if phase == "lbfgs":
            net.optimizer(optax.lbfgs())
            every = cfg.get("history_every", 1)
        kw = dict(print_rate=chunk, resample=resample, history_every=every)
        t0 = time.perf_counter()
        crux.solve(chunk, **kw)
        t1, evals = time.perf_counter(), crux.solver.grad_evals
        crux.solve(steps - chunk, **kw)
        t2 = time.perf_counter()
        out["wall"] += t2 - t0
        out[f"{phase}_step"] = (t2 - t1) / (steps - chunk)
        out[f"{phase}_eval"] = (t2 - t1) / (crux.solver.grad_evals - evals)
    pts, exact = burgers_eval_points()
    out["error"] = rel_l2(net.module, pts, exact, burgers_output)
    return out


# ------------------------------------------------------------------- Burgers: by hand
def burgers_hand(cfg: dict) -> dict:
    """The same network (same initial weights), points, loss and optimisers in jax + optax."""
    _, _, x = burgers_problem(cfg)
    pts = jnp.asarray(x.pointset.coords)
    module = jno.nn.mlp(
        2, hidden_dims=cfg["width"], num_layers=cfg["depth"], key=jax.random.PRNGKey(0)
    )

    def u(m, p):
        return -jnp.sin(jnp.pi * p[0]) + p[1] * (1 - p[0] ** 2) * m(p)[0]

    def residual(m, p):
        ux, ut = jax.grad(lambda q: u(m, q))(p)
        uxx = jax.grad(lambda q: jax.grad(lambda s: u(m, s))(q)[0])(p)[0]
        return ut + u(m, p) * ux - NU * uxx

    def loss(m):
        return jnp.mean(jax.vmap(lambda p: residual(m, p))(pts) ** 2)

    def run(opt, m, n, reuse):
        # L-BFGS: the line search's last value and gradient are in its state (optax's recipe)
        value_and_grad = optax.value_and_grad_from_state(loss) if reuse else None

        @jax.jit
        def steps(m, state):
            def body(carry, _):
                m, state, evals = carry
                if reuse:  # after the first step the value and gradient come from the state
                    value, grad = value_and_grad(m, state=state)
                else:
                    value, grad = jax.value_and_grad(loss)(m)
                    evals = evals + 1
                upd, state = opt.update(grad, state, m, value=value, grad=grad, value_fn=loss)
                if reuse:
                    evals = evals + optax.tree.get(state, "num_linesearch_steps")
                return (optax.apply_updates(m, upd), state, evals), value

            carry = (m, state, jnp.asarray(0))
            return jax.lax.scan(body, carry, None, length=cfg["chunk"])[0]

        state = opt.init(m)
        t0 = time.perf_counter()
        m, state, _ = jax.block_until_ready(steps(m, state))
        t1, evals = time.perf_counter(), 0
        for _ in range(n // cfg["chunk"] - 1):
            m, state, e = steps(m, state)
            evals += e
        m = jax.block_until_ready(m)
        t2 = time.perf_counter()
        return m, t2 - t0, (t2 - t1) / (n - cfg["chunk"]), (t2 - t1) / int(evals)

    out = {}
    module, wa, out["adam_step"], out["adam_eval"] = run(
        optax.adam(cfg["lr"]), module, cfg["adam"], False
    )
    module, wl, out["lbfgs_step"], out["lbfgs_eval"] = run(
        optax.lbfgs(), module, cfg["lbfgs"], True
    )
    out["wall"] = wa + wl
    pts, exact = burgers_eval_points()
    out["error"] = rel_l2(module, pts, exact, burgers_output)
    return out


def burgers(quick: bool, rows: list, history_every: int = 1) -> None:
    ref = check_reference(quick)
    print(
        f"Cole-Hopf vs spectral (nx={ref['spectral_nx']}): max |diff| "
        f"{ref['spectral_max_diff']:.2e}; max slope at t=1.6037/pi: {ref['slope']:.5f} "
        "(published -152.00516)",
        flush=True,
    )
    cfg = dict(points=2000, width=20, depth=8, lr=1e-3, adam=1000, lbfgs=8000, every=500, chunk=500)
    if quick:
        cfg.update(points=1000, adam=500, lbfgs=1000, every=250, chunk=250)
    cfg["history_every"] = history_every
    steps = f"{cfg['adam']}+{cfg['lbfgs']}"
    net = f"{cfg['depth']}x{cfg['width']} tanh, {cfg['points']} points"
    hand = burgers_hand(cfg)
    rows.append(
        (
            "Burgers",
            f"hand jax+optax: Adam->L-BFGS, fixed points ({net})",
            hand["error"],
            hand["wall"],
            steps,
        )
    )
    print(rows[-1], flush=True)
    for rad in (False, True):
        res = burgers_jno(cfg, rad)
        name = "jno: Adam->L-BFGS, " + (f"RAD every {cfg['every']}" if rad else "fixed points")
        rows.append(("Burgers", name, res["error"], res["wall"], steps))
        print(rows[-1], flush=True)
        if not rad:
            print(
                f"time per step jno/hand: Adam {res['adam_step'] / hand['adam_step']:.2f} "
                f"({res['adam_step'] * 1e3:.2f} / {hand['adam_step'] * 1e3:.2f} ms), "
                f"L-BFGS {res['lbfgs_step'] / hand['lbfgs_step']:.2f} "
                f"({res['lbfgs_step'] * 1e3:.2f} / {hand['lbfgs_step'] * 1e3:.2f} ms); "
                f"per gradient evaluation: Adam {res['adam_eval'] / hand['adam_eval']:.2f}, "
                f"L-BFGS {res['lbfgs_eval'] / hand['lbfgs_eval']:.2f} "
                f"({res['lbfgs_eval'] * 1e3:.2f} / {hand['lbfgs_eval'] * 1e3:.2f} ms)",
                flush=True,
            )


# ------------------------------------------------------------------- RAD vs uniform
A = 30.0


def front(rad: bool, n: int, steps: int, every: int, seed: int) -> tuple[float, float]:
    """``u'' = f``, ``u = atan(30 (x - 1/2))`` on ``[0, 1]``: relative L2 on 2001 points."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=1 / (n - 1)))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(seed)))
    net.optimizer(optax.adam(optax.exponential_decay(3e-3, 1000, 0.8)))
    f = -2 * A**3 * (x - 0.5) / (1 + A**2 * (x - 0.5) ** 2) ** 2
    r = jno.diff(net(x), x, order=2) - f
    crux = jno.core([r.mse, (net(xb) - jno.np.arctan(A * (xb - 0.5))).mse], seed=seed)
    t0 = time.perf_counter()
    crux.solve(steps, print_rate=every, resample=jno.sampling.rad(x, every=every) if rad else None)
    wall = time.perf_counter() - t0
    xs = np.linspace(0, 1, 2001)[:, None]
    exact = np.arctan(A * (xs[:, 0] - 0.5))
    return rel_l2(net.module, xs, exact), wall


def rad_vs_uniform(quick: bool, rows: list) -> None:
    n, steps, every = (24, 2000, 250) if quick else (24, 10000, 500)
    seeds = (0, 1) if quick else (0, 1, 2)
    for rad in (False, True):
        res = [front(rad, n, steps, every, s) for s in seeds]
        errs = ", ".join(f"{e:.2e}" for e, _ in res)
        name = f"{'RAD every ' + str(every) if rad else 'uniform grid'}, {n} points, seeds {seeds}"
        rows.append(
            (
                "1-D front atan(30(x-1/2))",
                name,
                float(np.mean([e for e, _ in res])),
                sum(w for _, w in res),
                str(steps),
            )
        )
        print(rows[-1], f"per seed: {errs}", flush=True)


# ------------------------------------------------------------------- L-BFGS vs Adam
def poisson(steps_adam: int, steps_lbfgs: int) -> tuple[float, float]:
    dom = jno.domain(constructor=jno.domain.rect(0.05, x_range=(0, 1), y_range=(0, 1)))
    x, y, _ = dom.variable("interior")
    xb, yb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-3))
    u = net(jno.np.concat([x, y], axis=-1))
    q = 2 * np.pi**2 * jno.np.sin(np.pi * x) * jno.np.sin(np.pi * y)
    pde = jno.np.laplacian(u, [x, y]) + q
    crux = jno.core([pde.mse, net(jno.np.concat([xb, yb], axis=-1)).mse])
    t0 = time.perf_counter()
    crux.solve(steps_adam, print_rate=250)
    if steps_lbfgs:
        net.optimizer(optax.lbfgs())
        crux.solve(steps_lbfgs, print_rate=250)
    wall = time.perf_counter() - t0
    g = np.linspace(0, 1, 51)
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    exact = np.sin(np.pi * pts[:, 0]) * np.sin(np.pi * pts[:, 1])
    return rel_l2(net.module, pts, exact), wall


def lbfgs_vs_adam(quick: bool, rows: list) -> None:
    total = 1000 if quick else 6000
    for name, (na, nl) in (
        ("Adam alone", (total, 0)),
        ("Adam -> L-BFGS", (total // 2, total // 2)),
    ):
        err, wall = poisson(na, nl)
        rows.append(("2-D Poisson sin sin", name, err, wall, f"{na}+{nl}"))
        print(rows[-1], flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small budgets (< 3 min on 2 cores)")
    ap.add_argument("--burgers", action="store_true")
    ap.add_argument("--rad", action="store_true")
    ap.add_argument("--lbfgs", action="store_true")
    ap.add_argument("--float32", action="store_true", help="JAX's default float32")
    ap.add_argument("--history-every", type=int, default=1,
                    help="jno's L-BFGS phase records the losses every k steps (history_every)")
    args = ap.parse_args()
    # float64 before any array is made (the measured recipe; see benchmarks/README.md)
    jax.config.update("jax_enable_x64", not args.float32)
    every = not (args.burgers or args.rad or args.lbfgs)
    rows: list = []
    t0 = time.perf_counter()
    if every or args.burgers:
        burgers(args.quick, rows, args.history_every)
    if every or args.rad:
        rad_vs_uniform(args.quick, rows)
    if every or args.lbfgs:
        lbfgs_vs_adam(args.quick, rows)
    print("\n| problem | method | rel. L2 error | wall s | steps |\n|---|---|---|---|---|")
    for prob, method, err, wall, steps in rows:
        print(f"| {prob} | {method} | {err:.3e} | {wall:.1f} | {steps} |")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
