"""Schedules' properties over many random configurations (hypothesis):
finite, within their rates, continuous where they should be."""

import math

import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="the [test] extra installs hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_schedules import evaluate  # noqa: E402

from keras_multiphase import PhaseSchedule, WarmupCosineRestartsSchedule  # noqa: E402

FAST = settings(max_examples=40, deadline=None)


@FAST
@given(
    rates=st.lists(st.floats(1e-7, 1.0), min_size=1, max_size=4),
    length=st.integers(1, 50),
    kind=st.sampled_from(["step", "linear", "cosine"]),
    span=st.integers(0, 20),
)
def test_phase_schedule_properties(rates, length, kind, span):
    lengths = [length] * (len(rates) - 1)
    schedule = PhaseSchedule(rates, lengths, [kind] * len(rates), [span] * len(rates))
    steps = np.arange(0, length * len(rates) + 5)
    got = evaluate(schedule, steps)
    assert np.all(np.isfinite(got))
    assert np.all(got >= min(rates) * (1 - 1e-6))
    assert np.all(got <= max(rates) * (1 + 1e-6))
    if kind != "step" and 0 < span <= length:
        # Continuous when each transition ends within its phase: no step
        # moves further than the steepest transition allows.
        steepest = (
            max(abs(b - a) for a, b in zip(rates, rates[1:], strict=False))
            if len(rates) > 1
            else 0.0
        )
        bound = steepest * (math.pi / 2 if kind == "cosine" else 1.0) / span
        slack = 1e-6 * max(rates)  # float32 rounding
        assert np.all(np.abs(np.diff(got)) <= bound * (1 + 1e-4) + slack)


@FAST
@given(
    first=st.integers(2, 40),
    mult=st.sampled_from([1.0, 1.5, 2.0]),
    decay=st.floats(0.1, 1.0),
    min_ratio=st.floats(0.0, 0.9),
    warmup=st.integers(0, 10),
    start_ratio=st.floats(0.0, 1.0),
)
def test_warmup_cosine_properties(first, mult, decay, min_ratio, warmup, start_ratio):
    schedule = WarmupCosineRestartsSchedule(
        1.0,
        first_cycle_steps=first,
        cycle_mult=mult,
        cycle_decay=decay,
        min_ratio=min_ratio,
        warmup_steps=warmup,
        warmup_start_ratio=start_ratio,
    )
    steps = np.arange(0, warmup + 6 * first)
    got = evaluate(schedule, steps)
    assert np.all(np.isfinite(got))
    assert np.all(got >= min(min_ratio, start_ratio) - 1e-6)
    assert np.all(got <= 1.0 + 1e-6)
    # Continuous inside the first cycle (warmup end joins the peak).
    first_cycle = got[: warmup + first]
    jump = max(1.0 / max(warmup, 1), math.pi / (2 * first)) * (1 + 1e-3)
    assert np.all(np.abs(np.diff(first_cycle)) <= jump + 1e-6)
