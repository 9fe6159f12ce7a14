"""WarmupCosineRestarts: alone, inside PhaseLR phases, within epochs."""

import numpy as np
import pytest
from helpers import (
    SPE_VALUES,
    applied_per_epoch,
    assert_applied,
    fit_probe,
    phase_ref,
    rate_probe,
    wcr_ref,
)

from keras_multiphase import PhaseLR, WarmupCosineRestarts


@pytest.mark.parametrize("spe", SPE_VALUES)
def test_alone_its_peak_is_the_optimizer_rate(spe):
    callback = WarmupCosineRestarts(
        first_cycle_steps=6,
        cycle_mult=2.0,
        cycle_decay=0.5,
        min_ratio=0.1,
        warmup_steps=3,
        warmup_start_ratio=0.2,
    )
    _, log, history = fit_probe(
        [callback], epochs=5, steps_per_epoch=5, steps_per_execution=spe
    )

    def ref(s):
        return 0.1 * wcr_ref(
            s, 6, mult=2.0, decay=0.5, min_ratio=0.1, warmup=3, start_ratio=0.2
        )

    assert_applied(log, applied_per_epoch(ref, 5, 5))
    np.testing.assert_allclose(
        history["learning_rate"], [ref(5 * e) for e in range(5)], rtol=1e-5
    )


def test_epoch_units_and_min_lr():
    callback = WarmupCosineRestarts(
        first_cycle_epochs=1, warmup_epochs=0.5, min_lr=0.01
    )
    _, log, _ = fit_probe([callback], epochs=4, steps_per_epoch=4)
    ref = lambda s: 0.1 * wcr_ref(s, 4, min_ratio=0.1, warmup=2)  # noqa: E731
    assert_applied(log, applied_per_epoch(ref, 4, 4))


def test_one_cycle_over_the_run_by_default():
    _, log, _ = fit_probe([WarmupCosineRestarts()], epochs=3, steps_per_epoch=4)
    ref = lambda s: 0.1 * wcr_ref(s, 12)  # noqa: E731
    assert_applied(log, applied_per_epoch(ref, 3, 4))


def test_limited_to_a_phase_multiplies_the_phase_rate():
    phases = [
        {"name": "controlled", "lr": 0.01, "steps": 5},
        {"name": "aggressive", "lr": 0.05, "steps": 10},
        {"name": "fine-tune", "lr": 0.001},
    ]
    sgdr = WarmupCosineRestarts(
        first_cycle_steps=4, min_ratio=0.2, warmup_steps=2, phases=["aggressive"]
    )
    _, log, _ = fit_probe([sgdr, PhaseLR(phases)], epochs=4, steps_per_epoch=5)

    def ref(s):
        base = phase_ref(s, [0.01, 0.05, 0.001], [5, 10])
        if 5 <= s < 15:
            return base * wcr_ref(s - 5, 4, min_ratio=0.2, warmup=2)
        return base

    assert_applied(log, applied_per_epoch(ref, 4, 5))


def test_limited_to_an_epoch_range():
    sgdr = WarmupCosineRestarts(start_epoch=1, end_epoch=3)
    _, log, _ = fit_probe([sgdr], epochs=4, steps_per_epoch=4)

    def ref(s):
        return 0.1 * (wcr_ref(s - 4, 8) if 4 <= s < 12 else 1.0)

    assert_applied(log, applied_per_epoch(ref, 4, 4))


def test_unknown_phase_is_refused_at_train_begin():
    model = rate_probe()
    sgdr = WarmupCosineRestarts(first_cycle_steps=4, phases=["middle"])
    phase_lr = PhaseLR(
        [{"name": "start", "lr": 0.1, "steps": 2}, {"name": "end", "lr": 0.01}]
    )
    with pytest.raises(ValueError, match="Unknown phase 'middle'"):
        fit_probe([phase_lr, sgdr], epochs=1, steps_per_epoch=2, model=model)
    with pytest.raises(ValueError, match="no PhaseLR"):
        fit_probe([sgdr], epochs=1, steps_per_epoch=2, model=rate_probe())


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(first_cycle_steps=4, first_cycle_epochs=1), "exclusive"),
        (dict(first_cycle_steps=-4), "first_cycle_steps"),
        (dict(cycle_mult=0.9), "cycle_mult"),
        (dict(cycle_decay=0.0), "cycle_decay"),
        (dict(min_ratio=0.1, min_lr=1e-5), "exclusive"),
        (dict(min_lr=-1.0), "min_lr"),
        (dict(warmup_steps=2, warmup_epochs=1), "exclusive"),
        (dict(phases=["a"], start_epoch=1), "exclusive"),
        (dict(start_epoch=3, end_epoch=2), "end_epoch"),
        (dict(warmup_start_ratio=2.0), "warmup_start_ratio"),
    ],
)
def test_bad_arguments_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosineRestarts(**kw)
