"""Cost per log-density gradient: a finite-difference forward model vs a PINN surrogate.

Problem (tutorials/discrepancy_and_fields.py, part 2): ``-(κ u')' = 1`` on [0, 1],
``u(0) = u(1) = 0``, ``κ = exp(g)`` with ``g`` a 7-mode ``jno.fields.grf`` on the N cell
midpoints, 19 noisy sensors of ``u``. Two ways to write the likelihood of the field's
coefficients ``ξ`` in jno:

* **forward model**: ``jno.forward_model(fd_sensors, x_sensors, ξ)``, a finite-difference solve
  on N cells (dense ``jnp.linalg.solve``, O(N³), or ``jax.lax.linalg.tridiagonal_solve``, O(N))
  read at the sensors: the exact likelihood of ``ξ`` for every draw;
* **PINN surrogate**: a 1-32-32-1 tanh network ``u_θ`` trained jointly, loss = sensor misfit +
  PDE residual at N collocation points + boundary: one gradient over ``(θ, ξ)``.

Both are timed the same way: ``jax.grad`` of the total loss of ``crux.program.losses``,
compiled once, 200 calls in a ``lax.scan``, median of 5 rounds, µs per gradient.

    python benchmarks/forward_vs_pinn.py            # a minute or two on 2 CPU cores
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import jno

SENSORS = np.round(np.arange(1, 20) * 0.05, 10)


def field_on(n_cells: int):
    nodes = np.linspace(0.0, 1.0, n_cells + 1)
    mids = 0.5 * (nodes[1:] + nodes[:-1])
    field = jno.fields.grf(mids[:, None], jno.kernels.squared_exponential(0.15, 0.5), modes=7)
    return nodes, mids, field


def fd_problem(n_cells: int, tridiagonal: bool):
    nodes, mids, field = field_on(n_cells)
    phi = jnp.asarray(jax.vmap(field.features)(jnp.asarray(mids[:, None], jnp.float32)))
    h = 1.0 / n_cells

    def solve(kappa):
        main = (kappa[:-1] + kappa[1:]) / h**2
        off = -kappa[1:-1] / h**2
        rhs = jnp.ones_like(main)
        if tridiagonal:
            lower = jnp.concatenate([jnp.zeros(1), off])
            upper = jnp.concatenate([off, jnp.zeros(1)])
            inner = jax.lax.linalg.tridiagonal_solve(lower, main, upper, rhs[:, None])[:, 0]
        else:
            a = jnp.diag(main) + jnp.diag(off, 1) + jnp.diag(off, -1)
            inner = jnp.linalg.solve(a, rhs)
        return jnp.concatenate([jnp.zeros(1), inner, jnp.zeros(1)])

    def fd_sensors(coords, xi):
        u = solve(jnp.exp(phi @ xi))
        return jnp.interp(coords[:, 0], jnp.asarray(nodes, coords.dtype), u)[:, None]

    dom = jno.domain(constructor=jno.domain.points(SENSORS[:, None]))
    x, _ = dom.variable("interior")
    y = dom.variable("y", np.zeros(SENSORS.size, np.float32))
    u = jno.forward_model(fd_sensors, x, field.coefficients)
    return jno.core([(u - y).gaussian(std=0.002)])


def pinn_problem(n_points: int):
    nodes, mids, field = field_on(n_points)
    colloc = jno.domain(constructor=jno.domain.points(mids[:, None]))
    xc, _ = colloc.variable("interior")
    sens = jno.domain(constructor=jno.domain.points(SENSORS[:, None]))
    xs, _ = sens.variable("interior")
    ys = sens.variable("y", np.zeros(SENSORS.size, np.float32))
    ends = jno.domain(constructor=jno.domain.points(np.array([[0.0], [1.0]])))
    xb, _ = ends.variable("interior")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=32, num_layers=2, key=jax.random.PRNGKey(0)))
    kappa = jno.np.exp(field(xc))
    pde = -jno.diff(kappa * jno.diff(net(xc), xc), xc) - 1.0
    return jno.core([(net(xs) - ys).gaussian(std=0.002), pde.mse, net(xb).mse])


def us_per_gradient(crux, calls: int = 200, rounds: int = 5) -> float:
    program = crux.program
    params = program.initial_params()

    def total(p):
        return jnp.sum(program.losses(p))

    grad = jax.grad(total)

    @jax.jit
    def run(p):
        def body(q, _):
            g = grad(q)
            return jax.tree.map(lambda a, b: a - 1e-9 * b, q, g), None

        return jax.lax.scan(body, p, None, length=calls)[0]

    jax.block_until_ready(run(params))
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        jax.block_until_ready(run(params))
        times.append(time.perf_counter() - t)
    return 1e6 * float(np.median(times)) / calls


def main():
    print(f"{'N':>6} {'FD dense µs':>12} {'FD tridiag µs':>14} {'PINN µs':>9}")
    for n in (64, 256, 1024):
        dense = us_per_gradient(fd_problem(n, tridiagonal=False))
        tri = us_per_gradient(fd_problem(n, tridiagonal=True))
        pinn = us_per_gradient(pinn_problem(n))
        print(f"{n:>6} {dense:>12.1f} {tri:>14.1f} {pinn:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
