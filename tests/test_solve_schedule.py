"""The chunk schedules and the solve options: every step run exactly once, draws recorded at
exactly the steps of the recording rule (docs/architecture.md, *Epochs*), and bad options
refused before anything runs."""

import inspect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jno
from jno.solve.options import SolveOptions
from jno.solve.schedule import general_chunk, sampling_chunk


def recorded_by_rule(start: int, stop: int, warmup: int, thin: int) -> list[int]:
    """The steps in [start, stop) that the recording rule keeps."""
    return [i for i in range(start, stop) if i >= warmup and (i - warmup + 1) % thin == 0]


def run_sampling_schedule(start, stop, limit, warmup, thin):
    """Steps run and steps kept by following ``sampling_chunk`` from ``start``: a chunk of
    ``length`` records of ``stride`` steps records the last step of each stride, and the
    recorder keeps the records of the rule (``Block.kept_rows``)."""
    ran, recorded = [], []
    while start < stop:
        c = sampling_chunk(start, stop, limit, warmup, thin)
        assert c.steps == c.stop - start > 0 and c.stop <= stop
        ran += list(range(start, c.stop))
        if c.records:
            rows = [start + k * c.stride + c.stride - 1 for k in range(c.steps // c.stride)]
            assert c.steps % c.stride == 0 and len(rows) <= c.length
            if c.stride == thin:  # the thinned chunks record only the rule's steps
                assert rows == recorded_by_rule(start, c.stop, warmup, thin)
            else:  # stepping back onto the thinning grid: every step, filtered
                assert c.stride == 1 and c.steps < thin
            recorded += recorded_by_rule(start, c.stop, warmup, thin)
        else:
            assert c.length == 1 and c.partial
            assert recorded_by_rule(start, c.stop, warmup, thin) == []  # nothing lost
        start = c.stop
    return ran, recorded


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    warmup=st.integers(0, 40),
    thin=st.integers(1, 5),
    start=st.integers(0, 60),
    steps=st.integers(1, 80),
    limit=st.integers(1, 30),
)
def test_sampling_schedule_runs_every_step_once_and_records_the_rule(
    warmup, thin, start, steps, limit
):
    stop = start + steps
    ran, recorded = run_sampling_schedule(start, stop, limit, warmup, thin)
    assert ran == list(range(start, stop))
    assert recorded == recorded_by_rule(start, stop, warmup, thin)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    start=st.integers(0, 500),
    steps=st.integers(1, 500),
    rate=st.integers(1, 120),
    ends=st.lists(st.integers(1, 90), max_size=3),
)
def test_general_schedule_ends_at_every_resampling_step(start, steps, rate, ends):
    stop, at, bounds = start + steps, start, []
    while at < stop:
        c = general_chunk(at, stop, rate, ends)
        assert 0 < c.steps <= rate and c.stride == 1 and c.length == rate and c.with_losses
        assert c.partial == (c.steps < rate)
        bounds.append(c.stop)
        at = c.stop
    must = {s for e in ends for s in range(start + 1, stop + 1) if s % e == 0} | {stop}
    assert must <= set(bounds)  # a chunk ends at the stop and at every multiple of an `every`
    gaps = [b - a for a, b in zip([start] + bounds, bounds)]
    assert all(g == rate for g, b in zip(gaps, bounds) if b not in must)


def test_options_are_validated_before_anything_runs():
    with pytest.raises(ValueError, match="print_rate must be a positive int"):
        SolveOptions(print_rate=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        SolveOptions(batch_size=-3)
    with pytest.raises(ValueError, match="checkpoint_every must be a positive int"):
        SolveOptions(checkpoint_every=0)
    with pytest.raises(TypeError, match="stopping rule"):
        SolveOptions(until=5)
    with pytest.raises(ValueError, match="max_epochs= is the budget of until="):
        SolveOptions(max_epochs=100)
    with pytest.raises(TypeError, match="callables"):
        SolveOptions(callbacks=[1])


def test_crux_solve_has_the_options_as_its_signature_and_names_a_typo():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    a = jno.np.parameter((1,), name="a")
    crux = jno.core([(a - x).mse])
    params = inspect.signature(crux.solve).parameters
    assert list(params) == ["epochs"] + [f for f in SolveOptions.__dataclass_fields__]
    assert all(p.kind is p.KEYWORD_ONLY for name, p in params.items() if name != "epochs")
    with pytest.raises(TypeError, match=r"print_rat\b.*print_rate"):
        crux.solve(10, print_rat=5)
    assert crux.solver.step_index == 0  # refused before anything ran
    assert "checkpoint_every" in crux.solve.__doc__


@pytest.mark.slow
def test_a_continued_solve_off_the_thinning_grid_keeps_every_draw_of_the_general_loop():
    """solve(5) then solve(11) with warmup=4, thin=2: the second call starts between two
    kept steps; the fastpath must keep the draw at step 6 like the general loop does."""
    import blackjax
    import numpy as np

    def run(fast):
        dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
        x, _ = dom.variable("interior")
        a = jno.np.parameter((1,), name="a")
        a.bayesian(blackjax.nuts, warmup=4, keep=6, thin=2, adapt=False, step_size=0.3)
        crux = jno.core([(a - jno.np.sin(x)).gaussian(std=1.0)], seed=3)
        crux.solver.fastpath_enabled = fast
        with pytest.warns(UserWarning, match="short chain"):
            crux.solve(5, print_rate=4)
        crux.solve(11, print_rate=4)
        return np.asarray(a.posterior_samples)

    fast, general = run(True), run(False)
    assert fast.shape == general.shape == (6, 1)  # steps 5, 7, ..., 15 (the rule's)
    np.testing.assert_allclose(fast, general, rtol=1e-6, atol=1e-7)
