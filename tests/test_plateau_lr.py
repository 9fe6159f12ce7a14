"""PlateauLR: Keras's ReduceLROnPlateau rules, on top of any schedule."""

import keras
import numpy as np
import pytest
from helpers import (
    Script,
    applied_per_epoch,
    assert_applied,
    fit_probe,
    phase_ref,
    rate_probe,
)

import keras_multiphase as km
from keras_multiphase import PhaseLR, PlateauLR, WarmupCosineRestarts

SCORES = [5.0, 4.0, 4.0, 4.0, 3.99995, 4.0, 4.0, 4.0, 2.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize(
    "kw",
    [
        dict(factor=0.5, patience=2),
        dict(factor=0.5, patience=1, cooldown=2),
        dict(factor=0.1, patience=1, min_lr=0.002),
        dict(factor=0.5, patience=2, min_delta=0.0),
    ],
)
def test_same_decisions_as_keras_reduce_lr_on_plateau(kw):
    epochs = len(SCORES)
    keras_cb = keras.callbacks.ReduceLROnPlateau(monitor="score", mode="min", **kw)
    _, keras_log, keras_hist = fit_probe(
        [Script("score", SCORES), keras_cb], epochs=epochs, steps_per_epoch=2
    )
    ours = PlateauLR(monitor="score", mode="min", **kw)
    _, log, history = fit_probe(
        [Script("score", SCORES), ours], epochs=epochs, steps_per_epoch=2
    )
    np.testing.assert_allclose(
        history["learning_rate"], keras_hist["learning_rate"], rtol=1e-6
    )
    np.testing.assert_allclose(
        log.per_epoch(), keras_log.per_epoch(), rtol=1e-5, atol=1e-7
    )


# Values at the `min_delta` boundary, where a float64 and a float32
# comparison disagree (0.99989999 < 1 - 1e-4 in float64, but
# float32(0.99989999 + 1e-4) == float32(1.0)): PlateauLR must decide as the
# installed Keras does (float32 from Keras 3.11, float64 before).
BOUNDARY = {
    "min": [1.0, 0.99989999, 0.999899999, 0.99979999, 0.9997, 0.9997, 0.9997],
    "max": [2.0, 2.00010001, 2.000100001, 2.00020002, 2.0003, 2.0003, 2.0003],
}


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("patience", [1, 2])
def test_same_decisions_as_keras_at_the_min_delta_boundary(mode, patience):
    scores = BOUNDARY[mode]
    kw = dict(monitor="score", mode=mode, factor=0.5, patience=patience)
    kw["min_delta"] = 1e-4
    keras_cb = keras.callbacks.ReduceLROnPlateau(**kw)
    _, keras_log, keras_hist = fit_probe(
        [Script("score", scores), keras_cb], epochs=len(scores), steps_per_epoch=1
    )
    _, log, history = fit_probe(
        [Script("score", scores), PlateauLR(**kw)],
        epochs=len(scores),
        steps_per_epoch=1,
    )
    assert min(keras_hist["learning_rate"]) < 0.1  # Keras did reduce
    np.testing.assert_allclose(
        history["learning_rate"], keras_hist["learning_rate"], rtol=1e-6
    )
    # The same rates inside the step, epoch by epoch.
    np.testing.assert_allclose(log.per_epoch(), keras_log.per_epoch(), rtol=1e-5)


def test_works_on_top_of_phases_where_keras_raises():
    phases = [{"lr": 0.01, "steps": 6}, {"lr": 0.02}]
    scores = [3.0, 3.0, 3.0, 3.0, 3.0]
    # Keras's own would fail with a TypeError at the first epoch's end; it
    # is refused at train begin, naming PlateauLR.
    with pytest.raises(ValueError, match="PlateauLR"):
        fit_probe(
            [
                Script("score", scores),
                PhaseLR(phases),
                keras.callbacks.ReduceLROnPlateau(
                    monitor="score", mode="min", patience=1
                ),
            ],
            epochs=3,
            steps_per_epoch=4,
        )
    plateau = PlateauLR(monitor="score", mode="min", patience=2, factor=0.5)
    _, log, history = fit_probe(
        [Script("score", scores), plateau, PhaseLR(phases)],
        epochs=5,
        steps_per_epoch=4,
    )
    # The first value is the best; epochs 2 and 3 (1-based) wait; epoch 3
    # ends a plateau, so epochs 4-5 run at half the phase rate; epoch 5 ends
    # the second plateau (its reduction applies after training).

    def ref(s):
        reduction = 1.0 if s // 4 < 3 else 0.5
        return phase_ref(s, [0.01, 0.02], [6]) * reduction

    assert_applied(log, applied_per_epoch(ref, 5, 4))
    assert plateau.reduction == pytest.approx(0.25)


def test_min_lr_floors_reductions_but_never_lifts_a_schedule():
    phases = [{"lr": 0.05, "steps": 12}, {"lr": 0.001}]
    plateau = PlateauLR(
        monitor="score", mode="min", patience=1, factor=0.1, min_lr=0.01
    )
    _, log, _ = fit_probe(
        [Script("score", [1.0] * 4), plateau, PhaseLR(phases)],
        epochs=4,
        steps_per_epoch=4,
    )
    # Epoch 2 ends a plateau. Epoch 3: max(0.05 * 0.1, 0.01) = 0.01. Epoch
    # 4: the phase rate 0.001 is already below min_lr and is left alone.
    assert_applied(log, np.array([0.05, 0.05, 0.01, 0.001]) * 4)


def test_on_an_optimizer_built_with_a_keras_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 4, 0.5)
    model = rate_probe(keras.optimizers.SGD(learning_rate=schedule))
    plateau = PlateauLR(monitor="score", mode="min", patience=1, factor=0.5)
    _, log, _ = fit_probe(
        [Script("score", [1.0] * 3), plateau], epochs=3, steps_per_epoch=4, model=model
    )

    def ref(s):
        return 0.1 * 0.5 ** (s / 4) * (0.5 if s >= 8 else 1.0)

    assert_applied(log, applied_per_epoch(ref, 3, 4))


def test_composes_with_warmup_cosine():
    sgdr = WarmupCosineRestarts(first_cycle_steps=8)
    plateau = PlateauLR(monitor="score", mode="min", patience=1, factor=0.5)
    from helpers import wcr_ref

    _, log, _ = fit_probe(
        [Script("score", [1.0] * 3), sgdr, plateau], epochs=3, steps_per_epoch=4
    )

    def ref(s):
        return 0.1 * wcr_ref(s, 8) * (0.5 if s >= 8 else 1.0)

    assert_applied(log, applied_per_epoch(ref, 3, 4))


def test_missing_monitor_warns_and_changes_nothing():
    plateau = PlateauLR(monitor="val_missing", mode="min", patience=0)
    with pytest.warns(UserWarning, match="val_missing"):
        _, log, _ = fit_probe([plateau], epochs=2, steps_per_epoch=2)
    assert_applied(log, [0.2, 0.2])


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(factor=1.0), "factor"),
        (dict(factor=0.0), "factor"),
        (dict(patience=-1), "patience"),
        (dict(mode="up"), "mode"),
        (dict(min_delta=-0.1), "min_delta"),
        (dict(min_delta_mode="percent"), "min_delta_mode"),
        (dict(cooldown=1.5), "cooldown"),
        (dict(min_lr=-1.0), "min_lr"),
        (dict(monitor=""), "monitor"),
    ],
)
def test_bad_arguments_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        PlateauLR(**kw)


def test_relative_min_delta():
    # 4.0 -> 3.9 is a 2.5% improvement: not enough with min_delta 5%.
    plateau = PlateauLR(
        monitor="score",
        mode="min",
        patience=1,
        factor=0.5,
        min_delta=0.05,
        min_delta_mode="relative",
    )
    _, _, history = fit_probe(
        [Script("score", [4.0, 3.9, 3.0]), plateau], epochs=3, steps_per_epoch=1
    )
    np.testing.assert_allclose(history["learning_rate"], [0.1, 0.1, 0.05], rtol=1e-6)


def test_auto_mode_that_cannot_decide_is_refused_at_train_begin():
    with pytest.raises(ValueError, match="mode='min' or mode='max'"):
        fit_probe(
            [Script("score", [1.0]), PlateauLR(monitor="score")],
            epochs=1,
            steps_per_epoch=1,
        )


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -float("inf")])
@pytest.mark.parametrize(
    "make, name",
    [
        (lambda v: km.PlateauLR(patience=v), "patience"),
        (lambda v: km.PlateauLR(cooldown=v), "cooldown"),
        (lambda v: km.LossWeightBalancer(warmup_epochs=v), "warmup_epochs"),
    ],
    ids=["PlateauLR.patience", "PlateauLR.cooldown", "warmup_epochs"],
)
def test_non_finite_counts_are_refused_naming_the_argument(make, name, value):
    """Found by fuzzing: int(inf) raised OverflowError, int(nan) a bare
    ValueError that named nothing."""
    with pytest.raises(ValueError, match=rf"Argument `{name}` must be an integer"):
        make(value)
