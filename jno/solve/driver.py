"""The solve loop: adaptation, chunked scans, progress, recording and interruption.

``epochs`` counts outer steps, warm-up included; a Bayesian model discards (or adapts
during) its first ``warmup`` steps, then records every ``thin``-th step and keeps the last
``keep`` records. Every step ``i`` uses the key ``fold_in(key, i)``, so ``solve(n)`` followed by
``solve(m)`` equals ``solve(n + m)``.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..lower.evaluate import model_key
from ..lower.program import Program
from ..trace.model import Parameter
from .engine import Engine
from .history import History
from .kernels import diagnostic_schema, make_kernel, position_of
from .plan import SolvePlan, make_plan, resolve_substeps

log = logging.getLogger("jno")

SOLVER_STREAM = 0x736F  # fold-in constant separating solver keys from the noise draw


class ChunkInfo(NamedTuple):
    """What a callback receives after each chunk."""

    step: int
    total_loss: float
    losses: dict


class Solver:
    """Owns the mutable solve state of one crux."""

    def __init__(self, program: Program, seed: int):
        self.program = program
        self.plan: SolvePlan = make_plan(program)
        self.key = jax.random.fold_in(jax.random.PRNGKey(seed), SOLVER_STREAM)
        self.history = History(program.names)
        self.step_index = 0
        self.adapted = False
        self.engine: Engine | None = None
        self._signature = None
        self.state = None
        self.draws: list[list[dict]] = [[] for _ in self.plan.blocks]
        self.diag: list[list[dict]] = [[] for _ in self.plan.blocks]
        self.fastpath_enabled = True
        self._logged_fast = False
        self._warned_nan = False
        self._compiled: dict = {}
        self._log_configuration()

    def _log_configuration(self) -> None:
        """The handle-creation lines of the guide, and the mixed-mode caveats."""
        for block in self.plan.blocks:
            s = block.settings
            if block.kind == "vi":
                log.info(
                    "Model %s: mean-field VI via '%s' (num_samples=%d, posterior_draws=%d, "
                    "likelihood_scale=%g, diagnostics=none (track the ELBO in history.elbo))",
                    block.label,
                    s.name,
                    s.num_samples,
                    s.posterior_draws,
                    s.likelihood_scale,
                )
                continue
            log.info(
                "Model %s: Bayesian sampling via '%s' (kind=%s, warmup=%d, keep=%d, thin=%d, "
                "chains=%d, adapt=%s, likelihood_scale=%g, diagnostics=%s)",
                block.label,
                s.name,
                s.family,
                s.warmup,
                s.keep,
                s.thin,
                s.num_chains,
                s.adapts,
                s.likelihood_scale,
                diagnostic_schema(s),
            )
        mcmc = [b for b in self.plan.blocks if b.kind == "mcmc"]
        if self.plan.optax_models and any(b.settings.adapts for b in mcmc):
            log.warning(
                "Mixed mode: window adaptation runs once at the start with the optax models at "
                "their initial weights, so the adapted step size may not suit the trained "
                "problem; consider adapt=False with a hand-picked step_size."
            )
        if self.plan.num_chains > 1 and any(
            mem.group.mask is not None and mem.model.tx is not None
            for b in mcmc
            for mem in b.members
        ):
            log.info(
                "Pattern B with K>1 chains: the optax body's gradient is the average over "
                "the K head chains (Monte-Carlo EM), not chain 0's."
            )

    # ------------------------------------------------------------------ set-up
    def _engine(self, batch_size, substeps):
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"crux.solve: batch_size must be a positive int, got {batch_size}")
        resolved = resolve_substeps(self.program, self.plan, substeps)
        signature = (batch_size, None if substeps is None else id(substeps))
        if self.engine is None or signature != self._signature:
            self.engine = Engine(self.program, self.plan, self.key, batch_size, resolved)
            self._signature = signature
            self._compiled = {}
            if self.state is None:
                state = jax.jit(self.engine.init_state)(self.program.initial_params(), self.key)
                state = self.engine.apply_initializers(state, self.key)
                self.state = shard_chains(state, self.plan.num_chains)
        return self.engine

    def _jit(self, name, fn, static=()):
        if name not in self._compiled:
            self._compiled[name] = jax.jit(fn, static_argnums=static)
        return self._compiled[name]

    def default_epochs(self) -> int:
        """``warmup + keep*thin`` of the MCMC blocks (then ``keep*thin`` per further call)."""
        mcmc = [b for b in self.plan.blocks if b.kind == "mcmc"]
        if not mcmc:
            raise ValueError(
                "crux.solve(): pass the number of steps, e.g. crux.solve(5000); only solves "
                "with MCMC models (.bayesian) have a default (warmup + keep*thin). For VI, "
                "epochs is the number of ELBO steps."
            )
        full = max(b.settings.warmup + b.settings.keep * b.settings.thin for b in mcmc)
        if self.step_index < full:
            return full - self.step_index
        return max(b.settings.keep * b.settings.thin for b in mcmc)

    def fastpath(self, substeps) -> bool:
        """The pure-MCMC fastpath: only MCMC blocks with equal warmup/keep/thin, no optax or
        ensemble models, no substeps."""
        blocks = self.plan.blocks
        if not (
            self.fastpath_enabled
            and blocks
            and not self.plan.optax_models
            and not self.plan.ensembles
            and substeps is None
        ):
            return False
        if any(b.kind != "mcmc" for b in blocks):
            return False
        shapes = {(b.settings.warmup, b.settings.keep, b.settings.thin) for b in blocks}
        return len(shapes) == 1

    @property
    def grad_evals(self) -> int:
        """Log-density gradient evaluations by HMC-family kernels so far (adaptation
        included), summed over chains."""
        return 0 if self.state is None else int(self.state["grad_evals"])

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
    ) -> History:
        if epochs is None:
            epochs = self.default_epochs()
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"crux.solve: epochs must be a positive integer, got {epochs!r}")
        if print_rate is None:
            print_rate = 100
        if not isinstance(print_rate, int) or print_rate < 1:
            raise ValueError(f"crux.solve: print_rate must be a positive int, got {print_rate!r}")
        engine = self._engine(batch_size, substeps)
        stop = self.step_index + epochs
        start_index = self.step_index
        callbacks = list(callbacks or [])
        t0 = time.perf_counter()
        bar = _progress_bar(progress, epochs)
        try:
            adapting = [b for b in self.plan.blocks if b.kind == "mcmc" and b.settings.adapts]
            if not self.adapted and adapting:
                warm = max(engine.adaptation_steps(b.settings.warmup) for b in adapting)
                if epochs < warm:
                    raise ValueError(
                        f"crux.solve({epochs}): shorter than the window adaptation of "
                        f"warmup={warm} steps, which runs as one block; pass epochs >= {warm} "
                        "or lower warmup."
                    )
                self.state = self._jit("adapt", engine.adapt)(self.state, self.key)
                self.adapted = True
                self.step_index += warm
                _bar_update(bar, warm, "adapted")
            self._warn_short(start_index, epochs)
            if self.fastpath(substeps):
                self._solve_fast(engine, stop, print_rate, bar, callbacks)
            else:
                self._solve_general(engine, stop, print_rate, bar, callbacks)
        except KeyboardInterrupt:
            log.warning(
                "solve interrupted at step %d: keeping the samples and history so far",
                self.step_index,
            )
        finally:
            if bar is not None:
                bar.close()
            self.history.wall_time += time.perf_counter() - t0
            self.publish()
        self._summary()
        return self.history

    def _warn_short(self, start: int, epochs: int) -> None:
        """Warn when ``epochs`` steps from ``start`` leave a chain shorter than ``keep``."""
        for b in self.plan.blocks:
            if b.kind != "mcmc":
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

    def _solve_general(self, engine, stop, print_rate, bar, callbacks):
        run = self._jit("chunk", engine.run_chunk, static=(2, 4))
        while self.step_index < stop:
            start = self.step_index
            state, rec = run(self.state, start, print_rate, stop, stop - start < print_rate)
            n = min(print_rate, stop - start)
            steps = np.arange(start, start + n)
            losses = np.asarray(rec["losses"])[:n]
            self.state = state
            self.step_index = start + n
            self.history.append(steps, losses)
            for b, block in enumerate(self.plan.blocks):
                s = block.settings
                if block.kind == "vi":
                    self.history.append_metric(
                        f"elbo:{block.label}", steps, np.asarray(rec["infos"][b]["elbo"])[:n, 0]
                    )
                    continue
                keep_rows = (steps >= s.warmup) & ((steps - s.warmup + 1) % s.thin == 0)
                if keep_rows.any():
                    rows = np.nonzero(keep_rows)[0]
                    self.draws[b].append(
                        jax.tree.map(lambda a: np.asarray(a)[rows], rec["positions"][b])
                    )
                    self.diag[b].append(
                        jax.tree.map(lambda a: np.asarray(a)[rows], rec["infos"][b])
                    )
                    self._trim(b)
            self._after_chunk(losses[-1], n, bar, callbacks)

    def _solve_fast(self, engine, stop, print_rate, bar, callbacks):
        s = self.plan.blocks[0].settings
        silent = self._jit("silent", engine.run_silent, static=(2,))
        sample = self._jit("sample", engine.run_sample_chunk, static=(2, 3))
        losses_fn = self._jit("losses", self._chunk_losses)
        if not self._logged_fast:
            log.info(
                "MCMC fastpath: scan over %d samples x thin=%d + %d warmup, chunked at "
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
                target = (
                    s.warmup if start < s.warmup else (start + s.thin - (start - s.warmup) % s.thin)
                )
                n = min(print_rate, target - start, stop - start)
                self.state = silent(self.state, start, print_rate, start + n)
                self.step_index = start + n
                losses = np.asarray(losses_fn(self.state))
                self.history.append([self.step_index - 1], losses[None])
                self._after_chunk(losses, n, bar, callbacks)
                continue
            n_draws = min(print_rate, (stop - start) // s.thin)
            if n_draws == 0:
                n = stop - start
                self.state = silent(self.state, start, print_rate, stop)
                self.step_index = stop
                self._after_chunk(np.asarray(losses_fn(self.state)), n, bar, callbacks)
                continue
            state, rec = sample(self.state, start, print_rate, s.thin, start + n_draws * s.thin)
            self.state = state
            self.step_index = start + n_draws * s.thin
            for b in range(len(self.plan.blocks)):
                self.draws[b].append(
                    jax.tree.map(lambda a: np.asarray(a)[:n_draws], rec["positions"][b])
                )
                self.diag[b].append(
                    jax.tree.map(lambda a: np.asarray(a)[:n_draws], rec["infos"][b])
                )
                self._trim(b)
            losses = np.asarray(losses_fn(self.state))
            self.history.append([self.step_index - 1], losses[None])
            self._after_chunk(losses, n_draws * s.thin, bar, callbacks)

    def _trim(self, b: int) -> None:
        """Keep at most the last ``keep`` records of block ``b`` (continued solves append)."""
        keep = self.plan.blocks[b].settings.keep
        if sum(len(jax.tree.leaves(d)[0]) for d in self.draws[b]) > keep:
            draws, diag = self._kept(b)
            self.draws[b], self.diag[b] = [draws], [diag]

    def _kept(self, b: int):
        """The last ``keep`` records of block ``b`` as one ``(N, K, ...)`` pytree each."""
        keep = self.plan.blocks[b].settings.keep
        draws = jax.tree.map(lambda *a: np.concatenate(a)[-keep:], *self.draws[b])
        diag = jax.tree.map(lambda *a: np.concatenate(a)[-keep:], *self.diag[b])
        return draws, diag

    def _chunk_losses(self, state):
        positions = [position_of(blk["kstate"]) for blk in state["blocks"]]
        return self.engine.chain_losses(state["point"], positions, self.program.inputs)

    def _after_chunk(self, losses, n, bar, callbacks):
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
        for cb in callbacks:
            cb(info)

    # ------------------------------------------------------------------ results
    def publish(self) -> None:
        """Write the live values, ``posterior_samples`` and ``posterior_diagnostics``.

        A model's samples hold its full pytree: each group's draws at its leaves (MCMC draws
        as recorded, VI draws sampled from the fitted q), the other leaves constant.
        """
        if self.state is None:
            return
        point = self.state["point"]
        positions = [position_of(blk["kstate"]) for blk in self.state["blocks"]]
        chain0 = [jax.tree.map(lambda a: a[0], p) for p in positions]
        params = self.engine.assemble(point, chain0)
        for m in self.program.models:
            mk = model_key(m)
            if mk in self.state["ensemble"]:
                members = self.state["ensemble"][mk]
                _set_module(m, jax.tree.map(lambda a: a[0], members), self.program)
                m.posterior_samples = _as_samples(
                    m, jax.tree.map(lambda a: np.asarray(a)[None], members), self.program
                )
                m.posterior_diagnostics = {}
            else:
                _set_module(m, params[mk], self.program)
        parts: dict[int, list] = {}
        diags: dict[int, dict] = {}
        for b, block in enumerate(self.plan.blocks):
            draws, diag = self._block_draws(b, block)
            if draws is None:
                continue
            for mem in block.members:
                parts.setdefault(mem.model.uid, []).append((mem, draws[mem.key]))
                if block.kind == "mcmc":
                    diags.setdefault(mem.model.uid, diag)
        for m in self.program.models:
            if m.uid not in parts:
                continue
            pieces = parts[m.uid]
            lead = np.shape(jax.tree.leaves(pieces[0][1])[0])[:2]
            if any(np.shape(jax.tree.leaves(p)[0])[:2] != lead for _, p in pieces):
                continue  # groups of unequal length (an interrupted solve): nothing to splice
            full = point[model_key(m)]
            full = (
                None
                if full is None
                else jax.tree.map(
                    lambda a: np.broadcast_to(np.asarray(a), lead + np.shape(a)), full
                )
            )
            for mem, piece in pieces:
                full = (
                    piece if mem.mask_params is None or full is None else eqx.combine(piece, full)
                )
            samples = _as_samples(m, full, self.program)
            diag = dict(diags.get(m.uid, {}))
            if not self.plan.chain_axis:
                samples = jax.tree.map(lambda a: a[0], samples)
                diag = {k: v[0] for k, v in diag.items()}
            m.posterior_samples = samples
            m.posterior_diagnostics = diag

    def _block_draws(self, b, block):
        """``({member key: (K, N, ...)}, {field: (K, N)})`` of one block, or ``(None, None)``."""
        if block.kind == "vi":
            kstate = self.state["blocks"][b]["kstate"]
            if self.step_index == 0:
                return None, None
            kernel = make_kernel(block.settings, lambda p: 0.0, {})
            q = jax.tree.map(lambda a: a[0], kstate)
            key = jax.random.fold_in(self.key, 5000 + b)
            draws = kernel.sample(key, q, block.settings.posterior_draws)
            return jax.tree.map(lambda a: np.asarray(a)[None], draws), {}
        if not self.draws[b]:
            return None, None
        draws, diag = self._kept(b)
        # (N, K, ...) -> (K, N, ...)
        draws = jax.tree.map(lambda a: np.swapaxes(a, 0, 1), draws)
        diag = {k: np.swapaxes(v, 0, 1) for k, v in diag.items()}
        return draws, diag

    def _summary(self) -> None:
        for b, block in enumerate(self.plan.blocks):
            if not self.diag[b] or block.kind != "mcmc":
                continue
            d = block.members[0].model.posterior_diagnostics or {}
            n = int(np.size(next(iter(d.values())))) if d else 0
            parts = []
            div = np.zeros((), int)
            if "is_divergent" in d:
                div = div + np.sum(d["is_divergent"])
            if "nonfinite" in d:
                div = div + np.sum(d["nonfinite"] & ~d.get("is_divergent", False))
            if d:
                parts.append(f"{int(div)}/{n} divergent ({100.0 * int(div) / max(n, 1):.2f}%)")
            if "acceptance_rate" in d:
                parts.append(f"mean_accept={float(np.mean(d['acceptance_rate'])):.2f}")
            if "energy" in d:
                parts.append(f"mean_energy={float(np.mean(d['energy'])):.1f}")
            if parts:
                log.info("Model %s: %s", block.label, ", ".join(parts))
            if int(div) > 0:
                warnings.warn(
                    f"Model {block.label}: {int(div)} divergent or non-finite "
                    "transitions; lower step_size or let adaptation tune it.",
                    stacklevel=3,
                )


def shard_chains(state: dict, num_chains: int) -> dict:
    """Spread the chain axis over all local devices when ``num_chains`` divides evenly.

    Kernel states (leading axis K) are sharded along a ``"chain"`` mesh axis; everything else
    is replicated. ``jit`` then runs each device's chains where they live.
    """
    devices = jax.local_devices()
    if num_chains < 2 or len(devices) < 2 or num_chains % len(devices):
        return state
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(devices), ("chain",))
    chained = NamedSharding(mesh, PartitionSpec("chain"))
    replicated = NamedSharding(mesh, PartitionSpec())
    log.info("Sharding %d chains over %d devices.", num_chains, len(devices))
    rest = {k: v for k, v in state.items() if k != "blocks"}
    return {**jax.device_put(rest, replicated), "blocks": jax.device_put(state["blocks"], chained)}


def _as_samples(model, params, program):
    if isinstance(model, Parameter):
        return np.asarray(params)
    static = program.statics[model_key(model)]
    return eqx.combine(params, static)


def _set_module(model, params, program):
    if isinstance(model, Parameter):
        model.module = jnp.asarray(params)
        return
    model.module = eqx.combine(params, program.statics[model_key(model)])


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


__all__ = ["ChunkInfo", "Solver"]
