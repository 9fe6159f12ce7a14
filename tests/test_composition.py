"""The composition rule: any order, wrapped optimizers, user schedules."""

import itertools

import keras
import numpy as np
import pytest
from helpers import (
    PHASES,
    Script,
    applied_per_epoch,
    assert_applied,
    fit_probe,
    phase_ref,
    rate_probe,
    wcr_ref,
)

from keras_multiphase import PhaseLR, PlateauLR, WarmupCosineRestarts


def make_callbacks():
    return [
        PhaseLR(PHASES),
        WarmupCosineRestarts(first_cycle_steps=4, min_ratio=0.25, phases=["middle"]),
        PlateauLR(monitor="score", mode="min", patience=1, factor=0.5),
    ]


def expected_rate(s):
    base = phase_ref(
        s, [0.01, 0.04, 0.002], [6, 8], ["step", "linear", "step"], [0, 2, 0]
    )
    factor = wcr_ref(s - 6, 4, min_ratio=0.25) if 6 <= s < 14 else 1.0
    plateau = 0.5 if s >= 8 else 1.0  # a plateau after epoch 2
    return base * factor * plateau


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_any_order_gives_the_same_rates(order):
    callbacks = make_callbacks()
    ordered = [Script("score", [1.0, 1.0, 0.5, 0.1])] + [callbacks[i] for i in order]
    _, log, history = fit_probe(ordered, epochs=4, steps_per_epoch=4)
    assert_applied(log, applied_per_epoch(expected_rate, 4, 4))
    np.testing.assert_allclose(
        history["learning_rate"],
        [expected_rate(4 * e) for e in range(4)],
        rtol=1e-5,
    )


def test_loss_scale_optimizer_under_mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = rate_probe(keras.optimizers.SGD(learning_rate=0.1))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    script = Script("score", [1.0, 1.0, 0.5, 0.1])
    _, log, _ = fit_probe(
        [script, *make_callbacks()], epochs=4, steps_per_epoch=4, model=model
    )
    # float16 weights: compare with a float16-sized tolerance.
    want = applied_per_epoch(expected_rate, 4, 4)
    np.testing.assert_allclose(log.per_epoch(), want, rtol=2e-2, atol=2e-4)


def test_user_schedule_is_the_base_without_phase_lr():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([5], [0.1, 0.02])
    model = rate_probe(keras.optimizers.SGD(learning_rate=schedule))
    sgdr = WarmupCosineRestarts(first_cycle_steps=8)
    _, log, _ = fit_probe([sgdr], epochs=2, steps_per_epoch=4, model=model)

    def ref(s):
        return (0.1 if s <= 5 else 0.02) * wcr_ref(s, 8)

    assert_applied(log, applied_per_epoch(ref, 2, 4))
    # The user's schedule is back on the optimizer after training.
    assert model.optimizer._learning_rate is schedule


def test_phase_lr_replaces_a_user_schedule_with_a_warning():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    model = rate_probe(keras.optimizers.SGD(learning_rate=schedule))
    with pytest.warns(UserWarning, match="replaces the optimizer's own"):
        _, log, _ = fit_probe(
            [PhaseLR([{"lr": 0.01}])], epochs=1, steps_per_epoch=3, model=model
        )
    assert_applied(log, [0.03])
    assert model.optimizer._learning_rate is schedule


def test_two_phase_lrs_are_refused():
    with pytest.raises(ValueError, match="Only one base schedule"):
        fit_probe(
            [PhaseLR([{"lr": 0.1}]), PhaseLR([{"lr": 0.2}])],
            epochs=1,
            steps_per_epoch=1,
        )


def test_adam_state_is_kept_and_model_saves_during_training(tmp_dir):
    # A full-model checkpoint written mid-training stores the rate in effect
    # as a plain float and loads back without this package's callbacks.
    model = rate_probe(keras.optimizers.Adam(learning_rate=0.1))
    path = f"{tmp_dir}/model.keras"
    checkpoint = keras.callbacks.ModelCheckpoint(path)
    fit_probe(
        [PhaseLR([{"lr": 0.01, "steps": 2}, {"lr": 0.003}]), checkpoint],
        epochs=2,
        steps_per_epoch=2,
        model=model,
    )
    loaded = keras.models.load_model(path)
    assert float(np.asarray(loaded.optimizer.learning_rate)) == pytest.approx(
        0.003, rel=1e-6
    )
