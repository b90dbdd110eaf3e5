"""Loss balancing and causal training on two problems with a known reference.

* Helmholtz (Wang, Teng & Perdikaris 2021): ``Δu + u = q`` on ``[-1, 1]²``, ``u = 0`` on the
  boundary, exact ``u = sin(a1 π x) sin(a2 π y)`` with ``a1 = 1, a2 = 4``; fixed weights vs
  ``jno.balance.grad_norm``, ``ntk_trace`` and ``relobralo`` at the same step budget.
* Allen–Cahn (jaxpi's problem): ``u_t - 1e-4 u_xx + 5u³ - 5u = 0`` on ``[-1, 1] × [0, 1]``,
  ``u(x, 0) = x² cos(πx)``, periodic in ``x`` (a ``(cos πx, sin πx, t)`` input embedding);
  plain ``.mse`` vs ``.causal_mse``, against a Fourier-spectral ETDRK4 reference written here
  (Kassam & Trefethen 2005 coefficients by contour integrals).

Prints one table: problem, method, relative L2 error, wall time (compile included).

    python benchmarks/pinn_balancing.py --helmholtz-steps 4000 --allen-cahn-steps 4000
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax

import jno

A1, A2 = 1.0, 4.0


# ---------------------------------------------------------------------------- Helmholtz
def helmholtz_exact(x, y):
    return np.sin(A1 * np.pi * x) * np.sin(A2 * np.pi * y)


def helmholtz(method: str, steps: int, *, mesh: float = 0.05, width: int = 50, seed: int = 0):
    """Relative L2 error of the PINN on the interior grid after ``steps`` Adam steps."""
    balancers = {
        "fixed": None,
        "grad_norm": jno.balance.grad_norm(alpha=0.1, every=10),
        "ntk_trace": jno.balance.ntk_trace(every=100),
        "relobralo": jno.balance.relobralo(),
    }
    dom = jno.domain(constructor=jno.domain.rect(mesh, x_range=(-1, 1), y_range=(-1, 1)))
    x, y, _ = dom.variable("interior")
    xb, yb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=width, num_layers=3, key=jax.random.PRNGKey(seed)))
    net.optimizer(optax.adam(optax.exponential_decay(1e-3, 1000, 0.9)))
    u = net(jno.np.concat([x, y], axis=-1))
    pi = np.pi
    q = (1 - (A1 * pi) ** 2 - (A2 * pi) ** 2) * jno.np.sin(A1 * pi * x) * jno.np.sin(A2 * pi * y)
    pde = jno.np.laplacian(u, [x, y]) + u - q
    bc = net(jno.np.concat([xb, yb], axis=-1))
    crux = jno.core([pde.mse.name("pde"), bc.mse.name("bc")], weights=balancers[method])
    t0 = time.perf_counter()
    crux.solve(steps, print_rate=500)
    wall = time.perf_counter() - t0
    pts = dom.points("interior")
    exact = helmholtz_exact(pts[:, 0], pts[:, 1])[:, None]
    pred = crux.eval([u])
    return float(np.linalg.norm(pred - exact) / np.linalg.norm(exact)), wall, crux


# ---------------------------------------------------------------------------- Allen–Cahn
def allen_cahn_reference(nx: int = 256, times=None, dt: float = 1e-3):
    """``(x (nx,), u (len(times), nx))``: Fourier-spectral ETDRK4 on ``x_j = -1 + 2j/nx``."""
    times = np.linspace(0.0, 1.0, 11) if times is None else np.asarray(times)
    x = -1 + 2 * np.arange(nx) / nx
    k = np.fft.fftfreq(nx, d=2 / nx) * 2 * np.pi
    lin = -1e-4 * k**2 + 5.0  # the linear part: 1e-4 u_xx + 5u
    e, e2 = np.exp(dt * lin), np.exp(dt * lin / 2)
    roots = np.exp(1j * np.pi * (np.arange(1, 33) - 0.5) / 32)
    lr = dt * lin[:, None] + roots[None, :]
    q = dt * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1))
    f1 = dt * np.real(np.mean((-4 - lr + np.exp(lr) * (4 - 3 * lr + lr**2)) / lr**3, axis=1))
    f2 = dt * np.real(np.mean((2 + lr + np.exp(lr) * (-2 + lr)) / lr**3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * lr - lr**2 + np.exp(lr) * (4 - lr)) / lr**3, axis=1))

    def nonlinear(v):
        return np.fft.fft(-5.0 * np.real(np.fft.ifft(v)) ** 3)

    v = np.fft.fft(x**2 * np.cos(np.pi * x))
    out, t = [], 0.0
    for target in times:
        while t < target - 1e-12:
            nv = nonlinear(v)
            a = e2 * v + q * nv
            na = nonlinear(a)
            b = e2 * v + q * na
            nb = nonlinear(b)
            c = e2 * a + q * (2 * nb - nv)
            nc = nonlinear(c)
            v = e * v + nv * f1 + 2 * (na + nb) * f2 + nc * f3
            t += dt
        out.append(np.real(np.fft.ifft(v)))
    return x, np.stack(out)


def allen_cahn(causal: bool, steps: int, *, nx: int = 64, nt: int = 26, seed: int = 0):
    """Relative L2 error over the space-time grid after ``steps`` Adam steps."""
    dom = jno.domain(constructor=jno.domain.line(2 / nx, x_range=(-1, 1)), time=(0, 1, nt))
    x, t = dom.variable("interior")
    x0, t0v = dom.variable("initial")
    net = jno.nn.wrap(jno.nn.mlp(3, hidden_dims=64, num_layers=4, key=jax.random.PRNGKey(seed)))
    net.optimizer(optax.adam(optax.exponential_decay(1e-3, 2000, 0.9)))
    pi = np.pi

    def field(xv, tv):
        return net(jno.np.concat([jno.np.cos(pi * xv), jno.np.sin(pi * xv), tv], axis=-1))

    u = field(x, t)
    r = jno.diff(u, t) - 1e-4 * jno.diff(u, x, order=2) + 5 * u**3 - 5 * u
    pde = r.causal_mse(t, slices=nt - 1, eps=1.0) if causal else r.mse
    ic = field(x0, t0v) - x0**2 * jno.np.cos(pi * x0)
    crux = jno.core([pde.name("pde"), (100 * ic.mse).name("ic")], seed=seed)
    t0 = time.perf_counter()
    crux.solve(steps, print_rate=500)
    wall = time.perf_counter() - t0
    pts = dom.points("interior")
    times = np.unique(pts[:, 1])
    _, ref = allen_cahn_reference(512, times)
    xs = np.unique(pts[:, 0])
    idx = np.rint((xs + 1) * 256).astype(int) % 512  # x = 1 is x = -1 (periodic)
    exact = ref[:, idx].reshape(-1, 1)
    pred = crux.eval([u])
    return float(np.linalg.norm(pred - exact) / np.linalg.norm(exact)), wall, crux


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--helmholtz-steps", type=int, default=4000)
    ap.add_argument("--allen-cahn-steps", type=int, default=4000)
    ap.add_argument("--methods", default="fixed,grad_norm,ntk_trace,relobralo")
    ap.add_argument("--skip-allen-cahn", action="store_true")
    args = ap.parse_args()
    rows = []
    for method in args.methods.split(","):
        err, wall, _ = helmholtz(method, args.helmholtz_steps)
        rows.append(("Helmholtz a=(1,4)", method, args.helmholtz_steps, err, wall))
        print(rows[-1], flush=True)
    if not args.skip_allen_cahn:
        for causal in (False, True):
            err, wall, _ = allen_cahn(causal, args.allen_cahn_steps)
            rows.append(
                ("Allen-Cahn", "causal" if causal else "mse", args.allen_cahn_steps, err, wall)
            )
            print(rows[-1], flush=True)
    print("\n| problem | method | steps | rel. L2 error | wall s |\n|---|---|---|---|---|")
    for prob, method, steps, err, wall in rows:
        print(f"| {prob} | {method} | {steps} | {err:.3e} | {wall:.1f} |")


if __name__ == "__main__":
    main()
