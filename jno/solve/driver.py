"""The solve loop: configuration, adaptation, chunks, progress, callbacks and interruption.

``epochs`` counts outer steps, warm-up included; a Bayesian model discards (or adapts
during) its first ``warmup`` steps, then records every ``thin``-th step and keeps the last
``keep`` records. Every key depends only on the step index (:mod:`.streams`), so
``solve(n)`` followed by ``solve(m)`` equals ``solve(n + m)``.

A configurator called after ``jno.core(...)`` is honoured by the next ``solve()`` when it
can be: before the first solve anything may change (the plan is rebuilt); afterwards
``.optimizer()`` and ``.freeze()`` of trained models take effect (the optax group is
rebuilt, the sampled chains keep their state), and a change of a Bayesian configuration is
an error that says to build a new crux.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..lower.causal import causal_metrics, has_causal
from ..lower.evaluate import model_key
from ..lower.program import Program
from ..trace.model import Parameter
from ..xla_defaults import jit
from . import checkpoint as ckpt
from . import resample as resample_mod
from . import results
from . import trackers as trackers_mod
from .balance import history_metrics
from .checkpoint import canonical_names
from .draw_store import DrawStore
from .engine import Engine
from .history import History
from .layout import Layout, resolve
from .plan import SolvePlan, make_plan, resolve_substeps
from .state import BlockState
from .streams import KeyStreams, dataset_streams

log = logging.getLogger("jno")


class ChunkInfo(NamedTuple):
    """What a callback receives after each chunk."""

    step: int
    total_loss: float
    losses: dict


class Preempted(BaseException):
    """SIGTERM arrived during a checkpointed solve (a scheduler's preemption)."""


class _StopSignals:
    """Turn Ctrl-C (and SIGTERM, with ``preempt``) into a flag checked between chunks, so a
    stop never falls between a chunk's new state and the recording of its draws. A second
    Ctrl-C interrupts at once. Only in the main thread (signals cannot be caught elsewhere)."""

    def __init__(self, preempt: bool):
        self.preempt = preempt
        self.received = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        self._old[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_signal)
        if self.preempt:
            self._old[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_signal)
        return self

    def _on_signal(self, signum, frame):
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def raise_if_stopped(self) -> None:
        if self.received == signal.SIGTERM:
            raise Preempted
        if self.received == signal.SIGINT:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        return False


class _Loop:
    """What one ``solve`` call does between chunks."""

    def __init__(
        self, callbacks, trackers, until, checkpoint, every, call, solve_args, resample=()
    ):
        self.callbacks = callbacks
        self.trackers = trackers
        self.until = until
        self.checkpoint = checkpoint
        self.every = every
        self.call = call
        self.solve_args = solve_args
        self.resample = list(resample)
        self.chunks = 0
        self.reason = None
        self.signals = _StopSignals(preempt=False)


def configuration(model) -> tuple:
    """What a model's configurators set, to detect a change after ``jno.core``."""
    return (
        id(model.tx),
        model.frozen,
        tuple(id(g) for g in model.groups),
        id(model.ensemble_settings),
        id(model.initializer),
    )


class Solver:
    """Owns the solve state of one crux (the :class:`~jno.solve.state.SolveState`, the
    kept draws and the history) and runs the loop."""

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
        #: how many times each compiled function was traced (``"chunk..."``, ``"adapt"``,
        #: ``"init"``, ...): new data through ``condition`` adds none
        self.traces: Counter = Counter()
        self._initial: dict | None = None
        self.balancer = balancer
        self.mesh = mesh
        self.chain_method = chain_method
        self.layout: Layout | None = None
        self.history = History(program.names)
        self.plan: SolvePlan = make_plan(program)
        self.recorder = results.Recorder(self.plan.blocks)
        self.engine: Engine | None = None
        self.state = None
        self.adapted = False
        self.fastpath_enabled = True
        self._signature = None
        self._configured = {m.uid: configuration(m) for m in program.models}
        self._logged_fast = False
        self._warned_nan = False
        self._compiled: dict = {}
        #: every model a Parameter: per-point arrays are (n, 1)-narrow (jno/xla_defaults.py)
        self._narrow = all(isinstance(m, Parameter) for m in program.models)
        self._log_configuration()

    @property
    def step_index(self) -> int:
        return 0 if self.state is None else int(self.state.step)

    def _log_configuration(self) -> None:
        """The handle-creation lines of the guide, and the mixed-mode caveats."""
        for blk in self.plan.sampling:
            log.info("%s", blk.describe())
        if self.plan.optax is not None and any(b.adapts(b.settings) for b in self.plan.sampling):
            log.warning(
                "Mixed mode: window adaptation runs once at the start with the optax models at "
                "their initial weights, so the adapted step size may not suit the trained "
                "problem; consider adapt=False with a hand-picked step_size."
            )
        if self.plan.num_chains > 1 and any(
            mem.model.groups and mem.mask is not None for mem in self._optax_members()
        ):
            log.warning(
                "Pattern B with K>1 chains: the optax body's gradient is the average over "
                "the K head chains (Monte-Carlo EM), not chain 0's."
            )

    def _optax_members(self):
        return self.plan.optax.members if self.plan.optax is not None else []

    # ------------------------------------------------------------------ configuration
    def _sync_configuration(self) -> None:
        """Honour configurators called after ``jno.core`` (see the module docstring)."""
        now = {m.uid: configuration(m) for m in self.program.models}
        if now == self._configured:
            return
        changed = [m for m in self.program.models if now[m.uid] != self._configured[m.uid]]
        if self.state is not None:
            bayes = [m for m in changed if now[m.uid][2:] != self._configured[m.uid][2:]]
            if bayes:
                names = ", ".join(m.where for m in bayes)
                raise ValueError(
                    f"crux.solve: {names} changed its Bayesian, ensemble or initializer "
                    "configuration after the crux started solving; build a new crux with "
                    "jno.core(...) after configuring the models."
                )
        old_plan, old_state = self.plan, self.state
        self.plan = make_plan(self.program)
        self.engine, self._signature, self._compiled = None, None, {}
        self.layout = None
        self._configured = now
        if old_state is not None:
            self._carry_state(old_plan, old_state)
        else:
            self.recorder = results.Recorder(self.plan.blocks)
        log.info(
            "Configuration of %s changed after jno.core: the next solve uses it.",
            ", ".join(m.where for m in changed),
        )

    def _carry_state(self, old_plan: SolvePlan, old_state) -> None:
        """Rebuild the state for the new plan from the current values: sampling blocks keep
        their chains and draws; trained models keep their values (and optimizer state when
        their optimizer is unchanged)."""
        engine = Engine(self.program, self.plan, self.streams, balancer=self.balancer)
        values = {model_key(m): _params_of_module(m) for m in self.program.models}
        state = jax.jit(engine.init_state)(values, old_state.inputs)
        sampling_old = [i for i, b in enumerate(old_plan.blocks) if b.samples]
        sampling_new = [i for i, b in enumerate(self.plan.blocks) if b.samples]
        blocks = list(state.blocks)
        for i_old, i_new in zip(sampling_old, sampling_new):
            blocks[i_new] = old_state.blocks[i_old]
        new_optax, old_optax = self.plan.optax, old_plan.optax
        if new_optax is not None and old_optax is not None:
            i_new = self.plan.blocks.index(new_optax)
            i_old = old_plan.blocks.index(old_optax)
            params, opt = blocks[i_new].kernel
            old_opt = old_state.blocks[i_old].kernel.opt_state
            opt = {
                g: old_opt[g] if new_optax.same_optimizer(old_optax, g) else v
                for g, v in opt.items()
            }
            tuned = old_state.blocks[i_old].tuned  # a balancer's state
            blocks[i_new] = BlockState(type(blocks[i_new].kernel)(params, opt), tuned)
        state = state._replace(
            blocks=tuple(blocks), step=old_state.step, grad_evals=old_state.grad_evals
        )
        self.state = self._layout().place(state, self.plan)
        recorder = results.Recorder(self.plan.blocks)
        old_records = [i for i, b in enumerate(old_plan.blocks) if b.records]
        new_records = [i for i, b in enumerate(self.plan.blocks) if b.records]
        recorder.carry(self.recorder, list(zip(old_records, new_records)))
        if recorder.store is not None:
            recorder.attach(recorder.store, engine.positions(state), canonical_names(self.program))
        self.recorder = recorder

    # ------------------------------------------------------------------ set-up
    def _engine(self, batch_size, substeps) -> Engine:
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"crux.solve: batch_size must be a positive int, got {batch_size}")
        self._sync_configuration()
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
                self._layout(),
            )
            self._signature = signature
            self._compiled = {}
            if self.state is None:
                self._initial = self.program.initial_params()
                self.state = self._fresh_state(self.program.inputs)
            else:  # a new plan or engine: its objective may differ from the last step's
                self.state = self.engine.forget_line_search(self.state)
        return self.engine

    def _fresh_state(self, inputs: dict):
        """The state at the models' initial values on ``inputs``: chain starts, initializers,
        finite starts (compiled once; initializers compile their own work)."""
        state = self._keyed("init", "init_state")(self._initial, inputs)
        state = self.engine.apply_initializers(state)
        state = self.engine.ensure_finite_starts(state)
        return self._layout().place(state, self.plan)

    def _layout(self) -> Layout:
        """The chain method and mesh of this plan (resolved once per plan)."""
        if self.layout is None:
            self.layout = resolve(self.mesh, self.chain_method, self.plan.population)
            if self.layout.mesh is not None or self.layout.method != "vectorized":
                log.info("Layout: %s.", self.layout.describe())
        return self.layout

    def host_state(self):
        """The solve state readable on this process (:meth:`Layout.gather`; a collective
        when there are several processes: every process must call it)."""
        return self._layout().gather(self.state)

    def _jit(self, name: str, fn, **static):
        if name not in self._compiled:

            def traced(*args, **kw):
                self.traces[name] += 1
                return fn(*args, **kw)

            self._compiled[name] = jit(traced, narrow=self._narrow, static_argnames=tuple(static))
        compiled = self._compiled[name]
        return lambda *args: compiled(*args, **static)

    def _keyed(self, name: str, method: str, **static):
        """``engine.<method>`` compiled with the key streams as an argument, called on the
        solve's current streams (a dataset's streams do not recompile)."""
        engine = self.engine

        def fn(streams, *args, **kw):
            return getattr(engine.with_streams(streams), method)(*args, **kw)

        run = self._jit(name, fn, **static)
        return lambda *args: run(self.streams, *args)

    # ------------------------------------------------------------------ new data
    def condition(self, updates: dict, *, warm_start: bool = False, dataset=None) -> None:
        """Replace data arrays of the inputs (see :meth:`jno.crux.Crux.condition`)."""
        from .condition import replace, resolve

        where = "crux.condition"
        if not isinstance(warm_start, bool):
            raise TypeError(f"{where}: warm_start must be True or False, got {warm_start!r}")
        if dataset is not None and (
            not isinstance(dataset, int) or isinstance(dataset, bool) or dataset < 0
        ):
            raise ValueError(
                f"{where}: dataset must be a non-negative int (the index of a solve_batch "
                f"dataset whose keys to use) or None, got {dataset!r}"
            )
        inputs = self.program.inputs if self.state is None else self.state.inputs
        resolved, _ = resolve(self.program, inputs, updates, where)
        self.program.inputs = replace(self.program.inputs, resolved)
        if dataset is not None or self.streams is not self.base_streams:
            if warm_start and self.state is not None:
                raise ValueError(
                    f"{where}(..., dataset={dataset!r}, warm_start=True): a change of the key "
                    "streams restarts the solve; pass warm_start=False."
                )
            base = self.base_streams
            self.streams = base if dataset is None else dataset_streams(base, dataset)
            if self.engine is not None:
                self.engine = self.engine.with_streams(self.streams)
        if self.state is None:
            return
        new = replace(self.state.inputs, resolved)
        if warm_start:
            run = self._keyed("reinit", "reinit_sampling")
            state = run(self.state._replace(inputs=new))
            state = self.engine.restart_line_search(state)
            self.state = self._layout().place(state, self.plan)
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
        """``warmup + keep*thin`` of the MCMC blocks (then ``keep*thin`` per further call)
        for a call starting at step ``start`` (default: the current step)."""
        start = self.step_index if start is None else start
        defaults = [n for b in self.plan.sampling if (n := b.default_epochs(start)) is not None]
        if not defaults:
            raise ValueError(
                "crux.solve(): pass the number of steps, e.g. crux.solve(5000); only solves "
                "with MCMC models (.bayesian) have a default (warmup + keep*thin). For VI, "
                "epochs is the number of ELBO steps."
            )
        return max(defaults)

    def fastpath(self, substeps) -> bool:
        """The pure-MCMC fastpath: only MCMC blocks with equal warmup/keep/thin, no optax or
        ensemble models, no substeps."""
        blocks = self.plan.blocks
        if not (self.fastpath_enabled and blocks and substeps is None):
            return False
        if any(not b.samples or b.variational for b in blocks):
            return False
        return len({(b.settings.warmup, b.settings.keep, b.settings.thin) for b in blocks}) == 1

    @property
    def grad_evals(self) -> int:
        """Log-density gradient evaluations by HMC-family kernels so far (adaptation
        included), summed over chains."""
        return 0 if self.state is None else int(self.state.grad_evals)

    # ------------------------------------------------------------------ solve
    def solve(
        self,
        epochs=None,
        *,
        print_rate=None,
        progress=None,
        batch_size=None,
        substeps=None,
        callbacks: Sequence[Callable] | None = None,
        checkpoint=None,
        checkpoint_every: int = 10,
        resume_from=None,
        until=None,
        max_epochs=None,
        trackers=None,
        store=None,
        resample=None,
    ) -> History:
        engine = self._engine(batch_size, substeps)
        resamplers = resample_mod.bind(resample, self.program)
        if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ValueError(
                f"crux.solve: checkpoint_every must be a positive int (chunks), got "
                f"{checkpoint_every!r}"
            )
        start_index = self.step_index
        if resume_from is not None:
            restored = ckpt.load(resume_from, self, batch_size, substeps)
            self._restore(restored, store)
            start_index = restored.call.start
            if print_rate is None:
                print_rate = restored.call.print_rate
        elif store is not None:
            self._stream_to(store)
        epochs = self._budget(epochs, until, max_epochs, start_index)
        if print_rate is None:
            print_rate = 100
        if not isinstance(print_rate, int) or print_rate < 1:
            raise ValueError(f"crux.solve: print_rate must be a positive int, got {print_rate!r}")
        stop = start_index + epochs
        if self.step_index > stop:
            raise ValueError(
                f"crux.solve(resume_from=...): the checkpoint is at step {self.step_index}, "
                f"past this call's stop {stop} (start {start_index} + epochs {epochs}); pass "
                "the epochs of the run that wrote it, or more."
            )
        loop = _Loop(
            callbacks=list(callbacks or []),
            trackers=trackers_mod.active_trackers(trackers),
            until=until,
            checkpoint=checkpoint,
            every=checkpoint_every,
            call=ckpt.Call(start_index, stop, print_rate),
            solve_args=(batch_size, substeps),
            resample=resamplers,
        )
        if until is not None and not any(b.records for b in self.plan.sampling):
            raise ValueError(
                "crux.solve(until=...): no model records draws to diagnose; until= needs a "
                ".bayesian() sampler (NUTS, HMC, MALA, SG-MCMC, MCLMC)."
            )
        t0 = time.perf_counter()
        bar = _progress_bar(progress, stop - self.step_index)
        preempted = False
        try:
            with _StopSignals(preempt=checkpoint is not None) as signals:
                loop.signals = signals
                adapting = engine.adapting()
                if not self.adapted and adapting:
                    warm = max(engine.adaptation_steps(b.settings.warmup) for b in adapting)
                    if epochs < warm:
                        raise ValueError(
                            f"crux.solve({epochs}): shorter than the window adaptation of "
                            f"warmup={warm} steps, which runs as one block; pass epochs >= "
                            f"{warm} or lower warmup."
                        )
                    self.state = self._keyed("adapt", "adapt")(self.state)
                    self.adapted = True
                    _bar_update(bar, warm, "adapted")
                    signals.raise_if_stopped()
                if until is None:
                    self._warn_short(start_index, epochs)
                if self.fastpath(substeps) and not resamplers:
                    self._solve_fast(engine, stop, print_rate, bar, loop)
                else:
                    self._solve_general(engine, stop, print_rate, bar, loop)
                if until is not None:
                    log.info("until: %s", loop.reason or f"max_epochs={epochs} reached")
        except KeyboardInterrupt:
            log.warning(
                "solve interrupted at step %d: keeping the samples and history so far",
                self.step_index,
            )
        except Preempted:
            preempted = True
        finally:
            if bar is not None:
                bar.close()
            self.history.wall_time += time.perf_counter() - t0
            self.publish()
            if checkpoint is not None and self.step_index > 0:
                ckpt.save(checkpoint, self, loop.call, batch_size, substeps)
            for tracker in loop.trackers:
                if hasattr(tracker, "finish"):
                    tracker.finish()
        results.summary(self.plan.blocks, self.recorder)
        if preempted:
            log.warning(
                "solve stopped by SIGTERM at step %d; checkpoint written to %s: resume with "
                "crux.solve(..., resume_from=%r). Exiting with status 143.",
                self.step_index,
                checkpoint,
                str(checkpoint),
            )
            raise SystemExit(128 + signal.SIGTERM)
        return self.history

    def _budget(self, epochs, until, max_epochs, start: int) -> int:
        """The steps of this call: ``epochs``, ``max_epochs`` with ``until=``, or the
        default ``warmup + keep*thin``."""
        if until is not None:
            if not hasattr(until, "check"):
                raise TypeError(
                    "crux.solve(until=...): pass a stopping rule such as "
                    f"jno.bayesian.converged(rhat=1.01, ess=400), got {type(until).__name__}"
                )
            if max_epochs is None and epochs is None:
                raise ValueError(
                    "crux.solve(until=...): pass max_epochs=, the most steps to run before "
                    "giving up on the targets."
                )
            if max_epochs is not None and epochs is not None:
                raise ValueError(
                    "crux.solve(until=...): pass max_epochs= (the budget) or epochs, not both."
                )
            epochs = max_epochs if max_epochs is not None else epochs
        elif max_epochs is not None:
            raise ValueError("crux.solve: max_epochs= is the budget of until=; pass epochs.")
        if epochs is None:
            epochs = self.default_epochs(start)
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"crux.solve: epochs must be a positive integer, got {epochs!r}")
        return epochs

    def _stream_to(self, path) -> None:
        """Stream the draws to the zarr store at ``path`` (kept if already streaming there)."""
        current = self.recorder.store
        if current is not None and current.path == Path(path):
            return
        positions = self.engine.positions(self.state)
        self.recorder.attach(DrawStore(path), positions, canonical_names(self.program))

    def _restore(self, restored: ckpt.Restored, store) -> None:
        """Put a checkpoint's state, draws and history in place of the current ones; draws
        the run streamed are read from its store (``store`` if given, else the recorded one)."""
        self.state = self._layout().place(restored.state, self.plan)
        self.adapted = restored.adapted
        self.recorder = results.Recorder(self.plan.blocks)
        self.recorder.draws = restored.draws
        self.recorder.diag = restored.diag
        positions = self.engine.positions(self.state)
        names = canonical_names(self.program)
        if restored.stream is not None:
            draws = DrawStore(store or restored.stream["path"], resume=True)
            self.recorder.attach(draws, positions, names)
            for group, total in restored.stream["totals"].items():
                draws.rewind(group, int(total))
        elif store is not None:
            self.recorder.attach(DrawStore(store), positions, names)
        h = restored.history
        self.history.replace(h["steps"], h["losses"], h["metrics"], h["wall_time"])
        log.info(
            "Resumed at step %d of the solve call %d..%d.",
            self.step_index,
            restored.call.start,
            restored.call.stop,
        )

    def _warn_short(self, start: int, epochs: int) -> None:
        """Warn when ``epochs`` steps from ``start`` leave a chain shorter than ``keep``."""
        for b in self.plan.sampling:
            if b.variational:
                continue
            s = b.settings
            need = s.warmup + s.keep * s.thin - start
            if 0 < epochs < need:
                draws = max(0, (start + epochs - s.warmup) // s.thin)
                warnings.warn(
                    f"Model {b.label}: solve({epochs}) gives a short chain: {draws} of keep="
                    f"{s.keep} draws (warmup={s.warmup}, thin={s.thin}); solve() without epochs "
                    "runs warmup + keep*thin steps.",
                    stacklevel=4,
                )

    def _run(self, engine, stop, *, length, stride, with_losses, partial):
        run = self._keyed(
            f"chunk{length}/{stride}/{with_losses}/{partial}",
            "run_chunk",
            length=length,
            stride=stride,
            with_losses=with_losses,
            partial=partial,
        )
        self.state, records = run(self.state, jnp.asarray(stop, jnp.int32))
        return records

    def _solve_general(self, engine, stop, print_rate, bar, loop):
        while self.step_index < stop:
            start = self.step_index
            n = min(print_rate, stop - start)
            for bound in loop.resample:  # a chunk ends at every resampling step
                every = bound.resampler.every
                n = min(n, (start // every + 1) * every - start)
            records = self._run(
                engine,
                start + n,
                length=print_rate,
                stride=1,
                with_losses=True,
                partial=n < print_rate,
            )
            losses = np.asarray(records["losses"])[:n]
            steps = np.arange(start, start + n)
            self.history.append(steps, losses)
            for name, values in self.recorder.metrics(records, n):
                self.history.append_metric(name, steps, values)
            for name, values in history_metrics(records, self.program.names, n):
                self.history.append_metric(name, steps, values)
            self._record_causal(engine)
            self.recorder.add(records)
            self._resample(engine, loop)
            if self._after_chunk(losses[-1], n, bar, loop):
                return

    def _resample(self, engine, loop: _Loop) -> None:
        """Move the points of every resampler due at this step (``step % every == 0``)."""
        index = self.step_index
        for bound in loop.resample:
            if index % bound.resampler.every:
                continue
            eps = self._jit(
                f"resample:{bound.key}",  # the residuals of a point set, whatever resampler
                lambda s, c, b=bound: resample_mod.residual_magnitude(
                    b, self.program, engine.view(s), s.inputs, c
                ),
            )
            key, cand = resample_mod.pool(bound, self.streams, index)
            eps_pool = eps(self.state, jnp.asarray(cand))
            eps_now = eps(self.state, self.state.inputs[bound.key]["coords"])
            inputs = resample_mod.resample_inputs(
                bound, key, self.state.inputs, cand, eps_pool, eps_now
            )
            if inputs is not None:
                state = engine.restart_line_search(self.state._replace(inputs=inputs))
                self.state = self._layout().place(state, self.plan)
            self.history.append_metric(
                f"resample:{bound.resampler.label}", [index - 1], [float(np.mean(eps_pool))]
            )

    def _record_causal(self, engine) -> None:
        """The causal slice weights at the end of a chunk (``"causal:<constraint>:<i>"``)."""
        if not has_causal(self.program):
            return
        fn = self._jit("causal", lambda s: causal_metrics(self.program, engine.view(s), s.inputs))
        for name, value in fn(self.state).items():
            self.history.append_metric(name, [self.step_index - 1], np.asarray(value)[None])

    def _solve_fast(self, engine, stop, print_rate, bar, loop):
        s = self.plan.blocks[0].settings
        losses_fn = self._jit("losses", engine.state_losses)
        if not self._logged_fast:
            log.info(
                "MCMC fastpath: scan over %d samples × thin=%d + %d warmup, chunked at "
                "print_rate=%d.",
                s.keep,
                s.thin,
                max(0, s.warmup - self.step_index),
                print_rate,
            )
            self._logged_fast = True
        while self.step_index < stop:
            start = self.step_index
            if start < s.warmup or (start - s.warmup) % s.thin:
                # discarded warm-up, or aligning a continued solve to the thinning grid
                target = (
                    s.warmup if start < s.warmup else (start + s.thin - (start - s.warmup) % s.thin)
                )
                n = min(print_rate, target - start, stop - start)
                self._run(
                    engine,
                    start + n,
                    length=1,
                    stride=print_rate,
                    with_losses=False,
                    partial=True,
                )
            else:
                n_draws = min(print_rate, (stop - start) // s.thin)
                if n_draws == 0:
                    n = stop - start
                    self._run(
                        engine,
                        stop,
                        length=1,
                        stride=print_rate,
                        with_losses=False,
                        partial=True,
                    )
                else:
                    n = n_draws * s.thin
                    records = self._run(
                        engine,
                        start + n,
                        length=print_rate,
                        stride=s.thin,
                        with_losses=False,
                        partial=n_draws < print_rate,
                    )
                    self.recorder.add(records)
            losses = np.asarray(losses_fn(self.state))
            self.history.append([self.step_index - 1], losses[None])
            if self._after_chunk(losses, n, bar, loop):
                return

    def _after_chunk(self, losses, n, bar, loop: _Loop) -> bool:
        """Progress, callbacks, trackers, the stopping rule and checkpoints after a chunk;
        ``True`` when ``until=`` is met. A stop signal received during the chunk is raised
        here, where the state, draws and history agree."""
        total = float(np.sum(losses))
        if not np.isfinite(total) and not self._warned_nan:
            self._warned_nan = True
            warnings.warn(
                f"non-finite loss at step {self.step_index}: the run continues and "
                "keeps what it has; check step sizes and the residual.",
                stacklevel=4,
            )
        _bar_update(bar, n, f"{total:.3e}")
        info = ChunkInfo(self.step_index, total, dict(zip(self.program.names, map(float, losses))))
        done = False
        if loop.until is not None:
            done = self._check_until(loop)
        if loop.trackers:
            metrics = trackers_mod.chunk_metrics(
                self.program.names, losses, self.history, self.plan.blocks, self.recorder
            )
            for tracker in loop.trackers:
                tracker.log(metrics, self.step_index)
        for cb in loop.callbacks:
            cb(info)
        loop.chunks += 1
        if loop.checkpoint is not None and loop.chunks % loop.every == 0:
            ckpt.save(loop.checkpoint, self, loop.call, *loop.solve_args)
        loop.signals.raise_if_stopped()
        return done

    def _check_until(self, loop: _Loop) -> bool:
        """Diagnose the kept draws of every recording block; record and log the result."""
        chains = {}
        for b, blk in enumerate(self.plan.blocks):
            if blk.records and self.recorder.count(b):
                chains[blk.label] = self.recorder.posterior(b)[0]
        if not chains:
            return False
        report = loop.until.check(chains)
        step = [self.step_index - 1]
        for label, m in report.models.items():
            self.history.append_metric(f"rhat:{label}", step, [m.rhat])
            self.history.append_metric(f"ess:{label}", step, [m.ess])
        log.info("until (step %d): %s", self.step_index, report.reason)
        if report.done:
            loop.reason = f"stopped at step {self.step_index}: {report.reason}"
            loop.call = loop.call._replace(stop=self.step_index)
        return report.done

    def publish(self) -> None:
        """Write the live values, ``posterior_samples`` and ``posterior_diagnostics``."""
        if self.state is None or self.engine is None:
            return
        state = self.host_state()
        results.publish(self.engine, state, self.recorder, self.streams, self.step_index > 0)


def _params_of_module(model):
    import equinox as eqx

    return eqx.filter(model.module, eqx.is_inexact_array)


def _progress_bar(progress, total):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="jno", unit="step", leave=True)


def _bar_update(bar, n, loss_text):
    if bar is not None:
        bar.update(n)
        bar.set_postfix_str(f"loss={loss_text}")


__all__ = ["ChunkInfo", "Preempted", "Solver"]
