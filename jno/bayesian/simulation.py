r"""Simulated parameters and data for calibration checks (:func:`jno.bayesian.sbc`).

Simulation ``s`` splits its key (``streams.simulate_key(s)``) into one for the parameters and
one for the noise. The parameters ``θ_s`` are drawn from the prior of every sampled model
(``prior.sample``; the models not sampled keep their initial values). The data follow one of
two rules:

* ``simulate={key: expression}``: each key of ``crux.condition`` (a data placeholder, noise
  leaf or point set) gets the value of ``expression`` at ``θ_s``, with every ``jno.noise``
  leaf in it drawn afresh, e.g. ``{y: a * sin(πx) + b * cos(πx) + jno.noise.gaussian(0.1)}``.
* ``simulate=None``: the crux's own noise leaves are the data. A problem written as the
  guide writes it, ``residual = model(θ) - (truth + noise)``, reads its data through the
  drawn noise ``n`` of each leaf, and its residual is affine in it:
  :math:`r(θ, n) = g(θ) + c\,n`. The simulated noise array ``n'`` is the one for which the
  crux sees the data generated at ``θ_s`` with a fresh draw ``n_s`` of the leaf,
  :math:`r(θ, n') = g(θ) - g(θ_s) + c\,n_s` for every ``θ``:

  .. math:: n' = n_s - r(θ_s, 0) / c, \qquad c = r(θ_s, 1) - r(θ_s, 0)

  (per point). The affine form is checked numerically at the first two simulations; a
  residual that is not affine in its noise, or reads two noise leaves, asks for
  ``simulate=``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..lower.evaluate import Evaluator, GraphPlan, draw_noise, full_inputs, noise_key, ps_key
from ..solve.blocks.base import drop_masked, take_masked
from ..solve.condition import current, replace, slot_of
from ..solve.streams import simulate_key
from ..trace.node import Noise, Placeholder, _describe, as_node

WHERE = "jno.bayesian.sbc"


class Simulator:
    """``simulate(key) -> (θ, [array per target])`` for one simulation (jit- and vmap-able).

    Attributes:
        members: the sampled ``(member, prior)`` pairs, in plan order.
        targets: the keys of the simulated arrays (what ``crux.solve_batch`` replaces).
    """

    def __init__(self, crux, simulate=None):
        solver = crux.solver
        solver.sync_configuration()
        self.program = solver.program
        # the models' values when the solve state was first built (or now, before it is)
        self.initial = solver.initial or solver.program.initial_params()
        self.streams = solver.base_streams
        self.members = []
        for blk in solver.plan.sampling:
            for mem, prior in zip(blk.members, blk.priors):
                if not callable(getattr(prior, "sample", None)):
                    raise TypeError(
                        f"{WHERE}: {mem.model.where}'s prior {prior!r} cannot be sampled; SBC "
                        "draws the parameters from the priors: use a jno.bayesian.priors "
                        "prior or give yours a sample(key, like) method."
                    )
                self.members.append((mem, prior))
        if not self.members:
            raise ValueError(
                f"{WHERE}: the crux samples no model (.bayesian(...)); nothing to check"
            )
        #: whether the data are the crux's noise leaves (``simulate=None``)
        self.from_noise = simulate is None
        if simulate is None:
            self._pairs = self._noise_residuals()
            self.targets = [noise for noise, _ in self._pairs]
            self._fn = self._from_noise
        else:
            if not isinstance(simulate, dict) or not simulate:
                raise TypeError(
                    f"{WHERE}: simulate must be a dict {{data placeholder: expression}} or None, "
                    f"got {type(simulate).__name__}"
                )
            self.targets = list(simulate)
            self._exprs = [as_node(e) for e in simulate.values()]
            self._slots = [slot_of(self.program, t, WHERE) for t in self.targets]
            for t, e, slot in zip(self.targets, self._exprs, self._slots):
                if e.pointset is None or ps_key(e.pointset) != slot.pointset:
                    raise ValueError(
                        f"{WHERE}: simulate[{_describe(t) if isinstance(t, Placeholder) else t}]"
                        f" = {_describe(e)} must be a point-wise expression on the same point "
                        "set as the data it simulates"
                    )
            self._plan = GraphPlan(self._exprs)
            self._fn = self._from_expressions

    # ------------------------------------------------------------------ parameters
    def theta(self, key) -> list:
        """One prior draw per sampled member (its masked position)."""
        return [
            prior.sample(
                jax.random.fold_in(key, i), take_masked(self.initial[mem.model_key], mem.mask)
            )
            for i, (mem, prior) in enumerate(self.members)
        ]

    def params(self, theta: list) -> dict:
        """The full parameters: the members at ``theta``, every other leaf at its start."""
        params = dict(self.initial)
        for (mem, _), value in zip(self.members, theta):
            held = drop_masked(params[mem.model_key], mem.mask)
            params[mem.model_key] = value if mem.mask is None else eqx.combine(value, held)
        return params

    def __call__(self, key):
        k_theta, k_data = jax.random.split(key)
        theta = self.theta(k_theta)
        return theta, self._fn(self.params(theta), k_data)

    def batch(self, num: int, seed: int):
        """``(θ, arrays)`` of simulations ``0..num-1``, every leaf with a leading ``(num,)``
        axis; simulation ``s`` uses ``fold_in(simulate_key(streams, s), seed)``."""
        keys = jax.vmap(lambda s: jax.random.fold_in(simulate_key(self.streams, s), seed))(
            jnp.arange(num)
        )
        return jax.jit(jax.vmap(self))(keys)

    # ------------------------------------------------------------------ simulate=
    def _from_expressions(self, params, key):
        inputs = full_inputs(self._plan, draw_noise(self._plan, key, {}))
        for pk, rows in inputs.items():  # the crux's points and data, fresh noise
            now = self.program.inputs.get(pk)
            if now is not None:
                rows["coords"] = now["coords"]
                rows["data"] = {k: now["data"].get(k, v) for k, v in rows["data"].items()}
        ev = Evaluator(self._plan, self.program.statics, params, inputs)
        out = []
        for e, slot in zip(self._exprs, self._slots):
            old = current(self.program.inputs, slot)
            value = ev.value(e)
            if value.size != old.size:
                raise ValueError(
                    f"{WHERE}: simulate expression {_describe(e)} has {value.size} values per "
                    f"dataset, {slot.label} holds {old.size}"
                )
            out.append(jnp.reshape(value, old.shape).astype(old.dtype))
        return out

    # ------------------------------------------------------------------ simulate=None
    def _noise_residuals(self) -> list[tuple[Noise, Placeholder]]:
        """``(noise leaf, the residual reading it)`` for every noise leaf of the crux."""
        residuals = self.program.plan.residuals()
        reads = {id(r): GraphPlan([r]).noise_on for r in residuals}
        pairs = []
        for pk, noises in self.program.plan.noise_on.items():
            for nk, noise in noises.items():
                readers = [r for r in residuals if nk in reads[id(r)].get(pk, {})]
                if not readers:
                    continue
                r = readers[0]
                if sum(len(v) for v in reads[id(r)].values()) != 1:
                    raise ValueError(
                        f"{WHERE}: the residual {_describe(r)} reads more than one noise leaf, so "
                        "its data cannot be solved for; pass simulate={data: expression}."
                    )
                pairs.append((noise, r))
        if not pairs:
            raise ValueError(
                f"{WHERE}: simulate=None simulates through the crux's jno.noise leaves, and its "
                "constraints read none; pass simulate={y: expression of the models + "
                "jno.noise...} for data attached with dom.variable(name, array)."
            )
        self._residual_plan = GraphPlan([r for _, r in pairs])
        self._noise_slots = [slot_of(self.program, n, WHERE) for n, _ in pairs]
        return pairs

    def residuals_at(self, params, values: list) -> list:
        """The residuals with each noise array set to ``values[i]``."""
        inputs = replace(self.program.inputs, dict(zip(self._noise_slots, values)))
        ev = Evaluator(self._residual_plan, self.program.statics, params, inputs)
        return [ev.value(r) for _, r in self._pairs]

    def _from_noise(self, params, key):
        olds = [current(self.program.inputs, s) for s in self._noise_slots]
        for (_, r), old in zip(self._pairs, olds):
            if np.prod(r.shape, dtype=int) * old.shape[0] != old.size:
                raise ValueError(
                    f"{WHERE}: the residual {_describe(r)} has per-point shape {r.shape}, its "
                    f"noise {old.shape[1:]}; pass simulate={{data: expression}}."
                )
        zero = self.residuals_at(params, [jnp.zeros_like(o) for o in olds])
        one = self.residuals_at(params, [jnp.ones_like(o) for o in olds])
        out = []
        for i, ((noise, _), old, r0, r1) in enumerate(zip(self._pairs, olds, zero, one)):
            fresh = noise.sample(jax.random.fold_in(key, i), (old.shape[0],))
            c = jnp.reshape(r1 - r0, old.shape)
            out.append((fresh - jnp.reshape(r0, old.shape) / c).astype(old.dtype))
        return out

    def check_affine(self, theta_batch) -> None:
        """``r(θ, n)`` is ``g(θ) + c n`` with ``c`` non-zero and the same at two parameter
        draws (simulate=None only); raises otherwise."""
        if self.from_noise:
            olds = [current(self.program.inputs, s) for s in self._noise_slots]
            residuals = jax.jit(self.residuals_at)
            cs = []
            for s in range(min(2, jax.tree.leaves(theta_batch)[0].shape[0])):
                params = self.params(jax.tree.map(lambda a, s=s: a[s], theta_batch))
                at = [
                    residuals(params, [jnp.full_like(o, v) for o in olds]) for v in (0.0, 1.0, 3.0)
                ]
                for i, (noise, r) in enumerate(self._pairs):
                    r0, r1, r3 = (np.asarray(a[i], np.float64) for a in at)
                    c = r1 - r0
                    scale = 1e-3 * (1.0 + np.abs(r0) + np.abs(c))
                    if np.any(np.abs(c) < 1e-6) or np.any(np.abs(r3 - r0 - 3 * c) > 3 * scale):
                        raise ValueError(
                            f"{WHERE}: the residual {_describe(r)} is not affine in its noise "
                            f"{noise_key(noise)} with a non-zero coefficient, so its data cannot "
                            "be solved for; pass simulate={data: expression}."
                        )
                    cs.append(c)
            if len(cs) == 2 * len(self._pairs):
                for i, (_, r) in enumerate(self._pairs):
                    a, b = cs[i], cs[i + len(self._pairs)]
                    if np.any(np.abs(a - b) > 1e-3 * (1.0 + np.abs(a))):
                        raise ValueError(
                            f"{WHERE}: the coefficient of the noise in {_describe(r)} depends on "
                            "the parameters, so the data cannot be solved for; pass "
                            "simulate={data: expression}."
                        )
