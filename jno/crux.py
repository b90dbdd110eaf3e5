"""``jno.core``: compile constraints once, solve, and evaluate expressions."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .lower.evaluate import model_key
from .lower.program import Program, split_module
from .nn.network import Network
from .solve.balance import check as check_balancer
from .solve.balance import check_causal
from .solve.draw_store import has_stored, is_sample_leaf
from .solve.driver import Solver
from .solve.history import History
from .solve.layout import as_mesh, check_chain_method
from .solve.options import SolveOptions, options_doc, solve_signature
from .solve.streams import key_streams
from .trace.model import Model, Parameter
from .trace.node import Placeholder, as_node


class Crux:
    """A compiled problem: ``solve`` it, then ``eval`` any expression.

    Args:
        constraints: scalar constraints (``residual.mse``, ``r.gaussian(std=...)``, weighted
            sums of them).
        seed: seeds the observation noise (drawn once) and every solver draw.
        weights: a loss balancer (:mod:`jno.balance`: ``grad_norm()``, ``ntk_trace()``,
            ``relobralo()``) that reweights the constraints of the trained (optax) models
            during the solve; ``None``: the constraints as written.
        mesh: where the solve runs (:mod:`jno.solve.layout`, docs/scale_out.md): a
            ``jax.sharding.Mesh`` with axes ``"chains"`` (chains, ensemble members) and/or
            ``"points"`` (collocation points), or their sizes ``{"chains": 2, "points": 2}``
            over ``jax.devices()``. Default: every device on ``"chains"`` when the chains
            divide evenly over them, else one device.
        chain_method: ``"vectorized"`` (``vmap``), ``"sequential"`` (``lax.map``, memory
            flat in the number of chains) or ``"parallel"`` (sharded over ``"chains"``);
            default: ``"parallel"`` when the chains axis has several devices.
    """

    def __init__(
        self,
        constraints: Sequence[Placeholder],
        *,
        seed: int = 0,
        weights=None,
        mesh=None,
        chain_method: str | None = None,
    ):
        if not isinstance(seed, int):
            raise TypeError(f"jno.core: seed must be an int, got {type(seed).__name__}")
        check_chain_method(chain_method)
        mesh = as_mesh(mesh)
        self.streams = key_streams(seed)
        self.program = Program(constraints, noise_key=self.streams.noise)
        self.solver = Solver(self.program, self.streams, weights, mesh, chain_method)
        check_balancer(weights, self.program, self.solver.plan)
        check_causal(self.program, self.solver.plan)
        self.seed = seed

    @property
    def history(self) -> History:
        return self.solver.history

    @property
    def models(self) -> list[Model]:
        return list(self.program.models)

    def solve(self, epochs: int | None = None, **options) -> History:
        """Run ``epochs`` steps (default for Bayesian solves: ``warmup + keep*thin``).

        Args:
            epochs: outer steps, warm-up included. A second call continues.
            **options: the keywords of :class:`jno.solve.options.SolveOptions` (documented
                there, each validated before anything runs): ``print_rate``, ``progress``,
                ``batch_size``, ``substeps``, ``callbacks``, ``checkpoint``,
                ``checkpoint_every``, ``resume_from``, ``until``, ``max_epochs``,
                ``trackers``, ``store``, ``resample``.

        Returns:
            The :class:`History` of all solves so far.
        """
        return self.solver.solve(epochs, SolveOptions.from_keywords(options))

    solve.__signature__ = solve_signature()
    solve.__doc__ = (solve.__doc__ or "") + options_doc()

    def condition(self, data: dict, *, warm_start: bool = False, dataset: int | None = None):
        """Put new data in place of the arrays the compiled program reads, without recompiling.

        Args:
            data: ``{key: array}``; a key is a data placeholder (``y = dom.variable("y",
                y_obs)``), a ``jno.noise`` leaf (its drawn noise), or a point set / coordinate
                variable (new point coordinates). Each array has the shape of the one it
                replaces and a dtype of the same kind (:mod:`jno.solve.condition`).
            warm_start: ``False`` (default): the solve starts again as on a new crux: the
                models' initial values, new chain starts, window adaptation again, step 0.
                ``True``: chains keep their positions and adapted step sizes and mass matrices
                (kernel states are re-initialised on the new data), optax models keep their
                parameters and optimizer states, the step index continues. Either way the
                kept draws, ``posterior_samples`` and the history are cleared.
            dataset: use the key streams of dataset ``dataset`` of :meth:`solve_batch`
                (:func:`jno.solve.streams.dataset_streams`), so that ``condition(data_d,
                dataset=d)`` then ``solve()`` reproduces ``solve_batch``'s ``d``-th inference;
                ``None``: the crux's own streams.

        The data live in the solve state (``SolveState.inputs``), so the next ``solve()`` runs
        the already compiled chunks (``crux.solver.traces`` counts traces; it does not grow).
        ``crux.eval`` sees the new data too. A log-density initializer (``.initialize(...)``)
        runs again on the new data, compiling its own work.

        Raises:
            TypeError: ``data`` is not a dict of replaceable keys.
            ValueError: a shape or dtype that differs from the replaced array (the message
                names it), a key the constraints do not read, non-finite values.
        """
        self.solver.condition(data, warm_start=warm_start, dataset=dataset)
        return self

    def solve_batch(self, datasets: dict, *, first: int = 0, group: int | None = None, mesh=None):
        """Independent inferences on a stack of datasets in one compiled program.

        See :func:`jno.solve.batch.solve_batch`: ``datasets`` is ``{key: (D, *shape)}`` with
        the keys of :meth:`condition`; dataset ``d`` runs on the key streams of index
        ``first + d`` (``condition(..., dataset=first + d)`` reproduces it); ``group``: how
        many datasets are vmapped together (``None``: all; ``1``: one after another in the
        compiled program, bit for bit the separate solves); ``mesh`` shards the dataset axis
        over devices. The result holds every Bayesian model's
        ``posterior_samples`` with a leading ``(D,)`` axis. The crux's own state, draws and
        models are not changed.
        """
        from .solve.batch import solve_batch

        return solve_batch(self.solver, datasets, first=first, group=group, mesh=mesh)

    def save_posterior(self, path, *, history: bool = True):
        """Write the posterior (every Bayesian model, its diagnostics, the history) to netCDF:
        see :func:`jno.bayesian.save_posterior`. Returns the path written."""
        from .bayesian import save_posterior

        return save_posterior(self, path, history=history)

    def load_posterior(self, path):
        """Put the draws saved by :meth:`save_posterior` back on this crux's models (built by
        the same script); ``crux.eval`` then pushes expressions through them."""
        from .bayesian import load_posterior

        return load_posterior(path, self)

    def evidence(self) -> tuple[float, float]:
        r"""The log evidence ``log p(data) = log ∫ L(θ) p(θ) dθ`` and its standard error,
        from a solve with ``.bayesian(blackjax.adaptive_tempered_smc, ...)``.

        ``L`` is the likelihood the constraints define, every normalising constant included
        (``r.gaussian``, ``r.laplace``, ``r.student_t`` are normalised densities), and ``p``
        the normalised prior, so two models of the same data compare by
        ``log Z_1 - log Z_2`` (the log Bayes factor). With ``num_chains=K`` independent SMC
        runs, ``Ẑ = (1/K) Σ_k Ẑ_k`` and ``se(log Ẑ) = sd(Ẑ_k/Ẑ)/√K`` (delta method); one run
        gives a standard error of ``nan``: use ``num_chains >= 4`` for one.

        Returns:
            ``(log_Z, standard_error)``, floats.
        """
        from .solve.blocks.smc import log_evidence

        engine = self.solver.engine
        blocks = [] if engine is None else [b for b in engine.blocks if b.family == "smc"]
        if not blocks or self.solver.step_index == 0:
            raise ValueError(
                "crux.evidence(): needs a finished solve of a model configured with "
                ".bayesian(blackjax.adaptive_tempered_smc, num_particles=..., num_chains=...)"
                "; tempered SMC is the sampler that estimates the evidence."
            )
        b = engine.blocks.index(blocks[0])
        runs = self.solver.layout().gather(self.solver.state.blocks[b].kernel.log_evidence)
        return log_evidence(runs)

    # ------------------------------------------------------------------ eval
    def eval(self, exprs, samples: str = "auto"):
        """Evaluate expressions; Bayesian dependencies are pushed through the posterior.

        Args:
            exprs: a list of expressions (or models); a single expression is allowed.
            samples: ``"auto"`` vmaps over the posterior draws of every model the expression
                depends on (derivatives included), ``"chain"`` forces that (an error when there
                is none), ``"point"`` evaluates at the current value (last draw of chain 0).

        Returns:
            One array for one expression (``crux.eval(e)`` or ``crux.eval([e])``, the guide's
            table); a list of arrays in the same order for several. A point-wise expression
            gives ``(n_points, ...)``; with posterior dependence the sample axes of
            ``posterior_samples`` lead: ``(K, N, n_points, ...)`` (or ``(N, n_points, ...)``
            for a single chain without ``num_chains``).
        """
        if samples not in ("auto", "chain", "point"):
            raise ValueError(
                f"crux.eval: samples must be 'auto', 'chain' or 'point', got {samples!r}"
            )
        items = list(exprs) if isinstance(exprs, (list, tuple)) else [exprs]
        if not items:
            raise ValueError("crux.eval: give an expression or a non-empty list of them")
        out = [self._eval_one(e, samples) for e in items]
        return out[0] if len(out) == 1 else out

    def _eval_one(self, expr, samples):
        if isinstance(expr, Network):
            if samples != "point" and expr.posterior_samples is not None:
                return expr.posterior_samples
            if samples == "chain":
                raise ValueError(f"crux.eval: {expr.where} has no posterior samples")
            return expr.module
        node = as_node(expr)
        run, plan = self.program.evaluator_for([node])
        chained = [m for m in plan.models if m.posterior_samples is not None]
        if samples == "chain" and not chained:
            raise ValueError(
                f"crux.eval(..., samples='chain'): {node} depends on no Bayesian model; use "
                "samples='auto' or 'point'."
            )
        point = {model_key(m): split_module(m)[0] for m in plan.models}
        if samples == "point" or not chained:
            return np.asarray(jax.jit(lambda p: run(p)[0])(point))
        lead = np.shape(jax.tree.leaves(_params_of(chained[0]))[0])
        n_lead = (
            2 if chained[0].posterior_samples is not None and _has_chain_axis(chained[0]) else 1
        )
        lead = lead[:n_lead]

        def one(draw):
            return run({**point, **draw})[0]

        batched = jax.jit(jax.vmap(one))
        if n_lead == 2 and any(has_stored(_params_of(m)) for m in chained):
            # streamed draws: read and push one chain at a time
            values = np.stack([np.asarray(batched(_chain(chained, k))) for k in range(lead[0])])
            return values
        flat = {
            model_key(m): jax.tree.map(
                lambda a: jnp.reshape(jnp.asarray(a), (-1,) + a.shape[n_lead:]), _params_of(m)
            )
            for m in chained
        }
        values = batched(flat)
        return np.asarray(values).reshape(lead + values.shape[1:])


def _params_of(model):
    samples = model.posterior_samples
    if isinstance(model, Parameter):
        if model.constraint is None or has_stored(samples):
            return samples
        return model.constraint.inverse(jnp.asarray(samples))
    import equinox as eqx

    return eqx.filter(samples, is_sample_leaf)


def _chain(models, k: int) -> dict:
    """The ``(N, ...)`` draws of chain ``k`` of every model (stored draws read from disk)."""
    return {model_key(m): jax.tree.map(lambda a: jnp.asarray(a[k]), _params_of(m)) for m in models}


def _has_chain_axis(model) -> bool:
    leaf = jax.tree.leaves(_params_of(model))[0]
    base = jax.tree.leaves(split_module(model)[0])[0]
    return np.ndim(leaf) - np.ndim(base) == 2


def core(
    constraints, *, seed: int = 0, weights=None, mesh=None, chain_method: str | None = None
) -> Crux:
    """Compile ``constraints`` into a :class:`Crux` (see DESIGN §5); ``weights``: a loss
    balancer (:mod:`jno.balance`); ``mesh`` and ``chain_method``: where and how the chains
    and points run (:class:`Crux`, docs/scale_out.md)."""
    return Crux(constraints, seed=seed, weights=weights, mesh=mesh, chain_method=chain_method)
