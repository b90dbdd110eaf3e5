"""The solve loop: one crux's solve state, its compiled functions, and the chunks of a call.

``epochs`` counts outer steps, warm-up included; a Bayesian model discards (or adapts
during) its first ``warmup`` steps, then records every ``thin``-th step and keeps the last
``keep`` records. Every key depends only on the step index (:mod:`.streams`), so
``solve(n)`` followed by ``solve(m)`` equals ``solve(n + m)``.

A call validates its options (:mod:`.options`), builds or reuses the engine (reconfiguring
after configurators called since ``jno.core``: :mod:`.reconfigure`), adapts once, then runs
chunks (:mod:`.schedule`) and the between-chunk hooks (:mod:`.hooks`) until its stop.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..lower.program import Program
from . import checkpoint as ckpt
from . import resample as resample_mod
from . import results, starts
from .checkpoint import canonical_names
from .compiled import CompiledFunctions
from .condition import check_condition_args, replace, resolve
from .draw_store import DrawStore
from .engine import Engine
from .history import History
from .hooks import Run, solve_hooks
from .layout import Layout
from .layout import resolve as resolve_layout
from .loop import run_call
from .options import SolveOptions, check_call, step_budget
from .plan import SolvePlan, log_plan, make_plan, resolve_substeps
from .reconfigure import carry_state, changed_models, configuration
from .schedule import default_epochs, sampling_only
from .streams import KeyStreams, dataset_streams

log = logging.getLogger("jno")


class Solver:
    """Owns the solve state of one crux (the :class:`~jno.solve.state.SolveState`, the
    kept draws and the history), its compiled functions, and runs the loop."""

    def __init__(
        self,
        program: Program,
        streams: KeyStreams,
        balancer=None,
        mesh=None,
        chain_method: str | None = None,
    ):
        self.program = program
        self.base_streams = streams
        #: the key streams of the solve: the crux's, or a batched dataset's (``condition``)
        self.streams = streams
        self.compiled = CompiledFunctions()
        self.traces = self.compiled.traces
        #: the models' values when the solve state was first built
        self.initial: dict | None = None
        self.balancer, self.mesh, self.chain_method = balancer, mesh, chain_method
        self.history = History(program.names)
        self.plan: SolvePlan = make_plan(program)
        self.recorder = results.Recorder(self.plan.blocks)
        self.engine: Engine | None = None
        self.state = None
        self.adapted = False
        self.fastpath_enabled = True
        self.warned_nan = False
        self._layout: Layout | None = None
        self._signature = None
        self._configured = {m.uid: configuration(m) for m in program.models}
        self.logged_fastpath = False
        log_plan(self.plan)

    @property
    def step_index(self) -> int:
        return 0 if self.state is None else int(self.state.step)

    @property
    def grad_evals(self) -> int:
        """Gradient evaluations of the objective so far, summed over chains: integrator steps
        of the HMC family, MCLMC and MAMS (adaptation included), and every optax step's
        gradient plus its line search's evaluations (``optax.lbfgs()``)."""
        return 0 if self.state is None else int(self.state.grad_evals)

    # ------------------------------------------------------------------ set-up
    def sync_configuration(self) -> None:
        """Honour configurators called after ``jno.core`` (:mod:`.reconfigure`)."""
        now = {m.uid: configuration(m) for m in self.program.models}
        if now == self._configured:
            return
        changed = changed_models(self.program, self._configured, now, self.state is not None)
        old_plan = self.plan
        self.plan = make_plan(self.program)
        self.engine, self._signature, self._layout = None, None, None
        self.compiled.clear()
        self._configured = now
        if self.state is None:
            self.recorder = results.Recorder(self.plan.blocks)
        else:
            engine = Engine(self.program, self.plan, self.streams, balancer=self.balancer)
            state, self.recorder = carry_state(engine, old_plan, self.state, self.recorder)
            self.set_state(state)
        names = ", ".join(m.where for m in changed)
        log.info("Configuration of %s changed after jno.core: the next solve uses it.", names)

    def engine_for(self, batch_size: int | None, substeps) -> Engine:
        """The engine of these solve options (rebuilt when they change), the state built
        at the first call."""
        self.sync_configuration()
        resolved = resolve_substeps(self.program, self.plan, substeps)
        signature = (batch_size, None if substeps is None else id(substeps))
        if self.engine is None or signature != self._signature:
            self.engine = Engine(
                self.program,
                self.plan,
                self.streams,
                batch_size,
                resolved,
                self.balancer,
                self.layout(),
            )
            self._signature = signature
            self.compiled.clear()
            if self.state is None:
                self.initial = self.program.initial_params()
                self.state = self._fresh_state(self.program.inputs)
            else:  # a new plan or engine: its objective may differ from the last step's
                self.state = self.engine.forget_line_search(self.state)
        return self.engine

    def _fresh_state(self, inputs: dict):
        """The state at the models' initial values on ``inputs``: chain starts, initializers,
        finite starts (compiled once; initializers compile their own work)."""
        state = self.keyed("init", starts.init_state)(self.initial, inputs)
        state = starts.apply_initializers(self.engine, state)
        state = starts.ensure_finite_starts(self.engine, state)
        return self.layout().place(state, self.plan)

    def layout(self) -> Layout:
        """The chain method and mesh of this plan (resolved once per plan)."""
        if self._layout is None:
            self._layout = resolve_layout(self.mesh, self.chain_method, self.plan.population)
            if self._layout.mesh is not None or self._layout.method != "vectorized":
                log.info("Layout: %s.", self._layout.describe())
        return self._layout

    def set_state(self, state) -> None:
        """Make ``state`` the solve state, placed by the layout (on the mesh, if any)."""
        self.state = self.layout().place(state, self.plan)

    def host_state(self):
        """The solve state readable on this process (:meth:`Layout.gather`; a collective
        when there are several processes: every process must call it)."""
        return self.layout().gather(self.state)

    def jit(self, name: str, fn, **static):
        """``fn`` compiled once per engine (:class:`~jno.solve.compiled.CompiledFunctions`)."""
        return self.compiled.jit(name, fn, **static)

    def keyed(self, name: str, fn, **static):
        """``fn(engine, *args)`` compiled with the key streams as an argument, called on the
        solve's current streams (a dataset's streams do not recompile)."""
        engine = self.engine
        run = self.jit(
            name, lambda streams, *a, **kw: fn(engine.with_streams(streams), *a, **kw), **static
        )
        return lambda *args: run(self.streams, *args)

    # ------------------------------------------------------------------ new data
    def condition(self, updates: dict, *, warm_start: bool = False, dataset=None) -> None:
        """Replace data arrays of the inputs (see :meth:`jno.crux.Crux.condition`)."""
        where = "crux.condition"
        new_streams = dataset is not None or self.streams is not self.base_streams
        check_condition_args(where, warm_start, dataset, new_streams and self.state is not None)
        inputs = self.program.inputs if self.state is None else self.state.inputs
        resolved, _ = resolve(self.program, inputs, updates, where)
        self.program.inputs = replace(self.program.inputs, resolved)
        if new_streams:
            base = self.base_streams
            self.streams = base if dataset is None else dataset_streams(base, dataset)
            if self.engine is not None:
                self.engine = self.engine.with_streams(self.streams)
        if self.state is None:
            return
        new = replace(self.state.inputs, resolved)
        if warm_start:
            state = self.keyed("reinit", starts.reinit_sampling)(self.state._replace(inputs=new))
            self.set_state(self.engine.restart_line_search(state))
        else:
            self.state = self._fresh_state(new)
            self.adapted = False
        self.recorder = results.Recorder(self.plan.blocks)
        self.history = History(self.program.names)
        for m in self.program.models:
            m.posterior_samples = None
            m.posterior_diagnostics = None
        self.publish()

    def default_epochs(self, start: int | None = None) -> int:
        """:func:`~jno.solve.schedule.default_epochs` from ``start`` (default: now)."""
        return default_epochs(self.plan, self.step_index if start is None else start)

    def fastpath(self, substeps) -> bool:
        """Whether the pure-MCMC fastpath runs (:func:`~jno.solve.schedule.sampling_only`)."""
        return self.fastpath_enabled and sampling_only(self.plan, substeps)

    # ------------------------------------------------------------------ solve
    def solve(self, epochs: int | None = None, options: SolveOptions | None = None) -> History:
        """Run one ``crux.solve`` call (:class:`~jno.solve.options.SolveOptions`)."""
        o = SolveOptions() if options is None else options
        engine = self.engine_for(o.batch_size, o.substeps)
        resamplers = resample_mod.bind(o.resample, self.program)
        start, print_rate = self.step_index, o.print_rate
        if o.resume_from is not None:
            restored = ckpt.load(o.resume_from, self.snapshot(), o.batch_size, o.substeps)
            self.restore(restored, o.store)
            start, print_rate = restored.call.start, print_rate or restored.call.print_rate
        elif o.store is not None:
            self.stream_to(o.store)
        epochs = step_budget(epochs, o, lambda: self.default_epochs(start))
        stop = start + epochs
        check_call(o, self.plan, start, stop, self.step_index)
        every = o.history_every
        run = Run(self, ckpt.Call(start, stop, print_rate or -(-100 // every) * every))
        hooks = solve_hooks(o, self.program, self.plan, resamplers, stop - self.step_index)
        fast = self.fastpath(o.substeps) and not resamplers
        run_call(self, engine, run, hooks, fast, o)
        return self.history

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> ckpt.Snapshot:
        """What a checkpoint is written from (:class:`~jno.solve.checkpoint.Snapshot`)."""
        return ckpt.Snapshot(
            self.program,
            self.streams,
            self.plan.blocks,
            self.state,
            self.host_state,
            self.engine.positions(self.state),
            self.adapted,
            self.recorder,
            self.history,
        )

    def stream_to(self, path) -> None:
        """Stream the draws to the zarr store at ``path`` (kept if already streaming there)."""
        constrained = [m.where for m in self.program.models if getattr(m, "constraint", None)]
        if constrained:
            raise ValueError(
                f"crux.solve(store=...): {', '.join(constrained)} has a constraint; streamed "
                "draws are stored as sampled (unconstrained), so keep its draws in memory "
                "(leave store= out)"
            )
        if self.recorder.store is None or self.recorder.store.path != Path(path):
            positions = self.engine.positions(self.state)
            self.recorder.attach(DrawStore(path), positions, canonical_names(self.program))

    def restore(self, restored: ckpt.Restored, store) -> None:
        """Put a checkpoint's state, draws and history in place of the current ones."""
        self.set_state(restored.state)
        self.adapted = restored.adapted
        positions, names = self.engine.positions(self.state), canonical_names(self.program)
        self.recorder = results.Recorder.restored(
            self.plan.blocks, restored, store, positions, names
        )
        self.history.replace(*restored.history)
        log.info(
            "Resumed at step %d of the solve call %d..%d.",
            self.step_index,
            restored.call.start,
            restored.call.stop,
        )

    def publish(self) -> None:
        """Write the live values, ``posterior_samples`` and ``posterior_diagnostics``."""
        if self.state is None or self.engine is None:
            return
        results.publish(
            self.engine, self.host_state(), self.recorder, self.streams, self.step_index > 0
        )


__all__ = ["Solver"]
