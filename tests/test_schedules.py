"""Schedules against their NumPy references (properties over random
configurations: test_schedule_properties.py)."""

import keras
import numpy as np
import pytest
from helpers import phase_ref, wcr_ref

from keras_multiphase import PhaseSchedule, WarmupCosineRestartsSchedule


def evaluate(schedule, steps):
    """Evaluates a schedule on many steps at once (vectorised keras.ops)."""
    return np.asarray(schedule(np.asarray(steps, "float32")), "float64")


@pytest.mark.parametrize("kind", ["step", "linear", "cosine"])
def test_phase_schedule_matches_reference_at_boundaries(kind):
    rates, lengths = [1e-5, 5e-5, 1e-6], [7, 11]
    transitions, spans = ["step", kind, kind], [0, 4, 3]
    schedule = PhaseSchedule(rates, lengths, transitions, spans)
    steps = list(range(0, 30))
    got = evaluate(schedule, steps)
    want = [phase_ref(s, rates, lengths, transitions, spans) for s in steps]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # Exactly at the boundaries: last step of a phase, first of the next.
    assert got[6] == pytest.approx(1e-5, rel=1e-6)
    if kind == "step":
        assert got[7] == pytest.approx(5e-5, rel=1e-6)
        assert got[18] == pytest.approx(1e-6, rel=1e-6)
    else:
        # A transition starts from the old rate and ends on the new one.
        assert got[7] == pytest.approx(1e-5, rel=1e-6)
        assert got[7 + 4] == pytest.approx(5e-5, rel=1e-6)
        assert got[6] < got[8] < got[10] < got[11]


@pytest.mark.parametrize(
    "kw",
    [
        dict(first_cycle_steps=10),
        dict(first_cycle_steps=10, warmup_steps=5, warmup_start_ratio=0.1),
        dict(first_cycle_steps=6, cycle_mult=2.0, cycle_decay=0.5, min_ratio=0.1),
        dict(
            first_cycle_steps=8, warmup_steps=3, warmup_each_cycle=True, cycle_mult=1.5
        ),
        dict(first_cycle_steps=5, max_cycles=2, min_ratio=0.2),
    ],
)
def test_warmup_cosine_matches_reference(kw):
    schedule = WarmupCosineRestartsSchedule(initial_learning_rate=0.5, **kw)
    steps = list(range(0, 80))
    ref_kw = dict(
        first=kw["first_cycle_steps"],
        mult=kw.get("cycle_mult", 1.0),
        decay=kw.get("cycle_decay", 1.0),
        min_ratio=kw.get("min_ratio", 0.0),
        warmup=kw.get("warmup_steps", 0),
        start_ratio=kw.get("warmup_start_ratio", 0.0),
        each=kw.get("warmup_each_cycle", False),
        max_cycles=kw.get("max_cycles"),
    )
    want = [0.5 * wcr_ref(s, **ref_kw) for s in steps]
    np.testing.assert_allclose(evaluate(schedule, steps), want, rtol=1e-5, atol=1e-7)


def test_warmup_cosine_restart_is_a_jump_back_to_the_peak():
    schedule = WarmupCosineRestartsSchedule(1.0, first_cycle_steps=10)
    got = evaluate(schedule, [0, 9, 10])
    assert got[0] == pytest.approx(1.0)
    assert got[1] < 0.03
    assert got[2] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "cls,kw",
    [
        (
            PhaseSchedule,
            dict(
                rates=[1e-3, 1e-4],
                lengths=[10],
                transitions=["step", "cosine"],
                transition_steps=[0, 5],
            ),
        ),
        (
            WarmupCosineRestartsSchedule,
            dict(
                initial_learning_rate=1e-3,
                first_cycle_steps=10,
                cycle_mult=2.0,
                cycle_decay=0.5,
                min_ratio=0.1,
                warmup_steps=2,
                warmup_start_ratio=0.1,
                warmup_each_cycle=True,
                max_cycles=3,
            ),
        ),
    ],
)
def test_schedule_serialization_round_trip(cls, kw):
    schedule = cls(**kw)
    config = keras.saving.serialize_keras_object(schedule)
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is cls and clone.get_config() == schedule.get_config()
    steps = np.arange(0, 40)
    np.testing.assert_allclose(evaluate(clone, steps), evaluate(schedule, steps))
    # An optimizer built with it saves and restores it.
    opt = keras.optimizers.Adam(learning_rate=schedule)
    clone_opt = keras.optimizers.Adam.from_config(opt.get_config())
    assert clone_opt.get_config() == opt.get_config()


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(rates=[1e-3, -1.0], lengths=[3]), "rates[1]"),
        (dict(rates=[1e-3, 1e-4], lengths=[]), "lengths"),
        (dict(rates=[1e-3, 1e-4], lengths=[0]), "lengths[0]"),
        (dict(rates=[1e-3], lengths=[], transitions=["smooth"]), "transitions[0]"),
    ],
)
def test_phase_schedule_rejects_bad_input(kw, message):
    with pytest.raises(
        ValueError, match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        PhaseSchedule(**kw)


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(first_cycle_steps=0), "first_cycle_steps"),
        (dict(first_cycle_steps=10, cycle_mult=0.5), "cycle_mult"),
        (dict(first_cycle_steps=10, cycle_decay=1.5), "cycle_decay"),
        (dict(first_cycle_steps=10, min_ratio=1.5), "min_ratio"),
        (
            dict(first_cycle_steps=10, warmup_steps=10, warmup_each_cycle=True),
            "warmup_steps",
        ),
        (dict(first_cycle_steps=10, max_cycles=0), "max_cycles"),
    ],
)
def test_warmup_cosine_schedule_rejects_bad_input(kw, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosineRestartsSchedule(initial_learning_rate=1.0, **kw)


def test_numpy_and_keras_ops_evaluators_agree():
    from keras import ops

    from keras_multiphase.schedules import numpy_ops
    from keras_multiphase.schedules.phase_schedule import phase_rate
    from keras_multiphase.schedules.warmup_cosine_restarts_schedule import (
        warmup_cosine_factor,
    )

    steps = np.arange(0, 120, dtype="float32")
    ends = np.asarray([-1.0, 31.0], "float32")  # phase 1 ended early
    for xp_a, xp_b in [(ops, numpy_ops)]:
        a = phase_rate(
            steps,
            [1e-3, 4e-3, 1e-4],
            [20, 40],
            ["step", "linear", "cosine"],
            [0, 7, 9],
            end_override=ops.convert_to_tensor(ends),
            xp=xp_a,
        )
        b = phase_rate(
            steps,
            [1e-3, 4e-3, 1e-4],
            [20, 40],
            ["step", "linear", "cosine"],
            [0, 7, 9],
            end_override=ends,
            xp=xp_b,
        )
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-6)
        kw = dict(
            first_cycle_steps=9,
            cycle_mult=1.5,
            cycle_decay=0.7,
            min_ratio=0.05,
            warmup_steps=4,
            warmup_start_ratio=0.1,
            warmup_each_cycle=True,
            max_cycles=5,
        )
        a = warmup_cosine_factor(steps, xp=xp_a, **kw)
        b = warmup_cosine_factor(steps, xp=xp_b, **kw)
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-7)
