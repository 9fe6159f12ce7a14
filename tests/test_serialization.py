"""Every callback round-trips through get_config / Keras serialization."""

import keras
import numpy as np
import pytest

from keras_multiphase import (
    AdaptiveBatch,
    LossWeightBalancer,
    OneCycle,
    PhaseLR,
    PhaseSchedule,
    PlateauLR,
    TrainingDynamicsMonitor,
    WarmupCosineRestarts,
    WarmupCosineRestartsSchedule,
)


def rebuild(batch_size):
    """A module-level function: what Keras can serialize by name."""
    return np.ones((64, 2), "float32"), np.ones((64, 1), "float32")


CALLBACKS = [
    PhaseLR(
        [
            {
                "name": "controlled",
                "lr": 1e-5,
                "fraction": 0.2,
                "plateau": {"monitor": "val_loss", "patience": 2},
            },
            {
                "name": "aggressive",
                "lr": 5e-5,
                "epochs": 3,
                "transition": "cosine",
                "transition_steps": 10,
            },
            {
                "name": "fine-tune",
                "lr": 1e-6,
                "transition": "linear",
                "transition_steps": 5,
            },
        ],
        verbose=1,
    ),
    WarmupCosineRestarts(
        first_cycle_epochs=2,
        cycle_mult=2.0,
        cycle_decay=0.8,
        min_lr=1e-7,
        warmup_steps=10,
        warmup_each_cycle=True,
        max_cycles=4,
        phases=["aggressive"],
    ),
    WarmupCosineRestarts(start_epoch=1, end_epoch=5, min_ratio=0.1),
    PlateauLR(
        monitor="val_acc",
        factor=0.3,
        patience=4,
        mode="max",
        min_delta=0.01,
        cooldown=2,
        min_lr=1e-7,
        min_delta_mode="relative",
        verbose=1,
    ),
    PhaseLR(
        peak_lr="auto",
        range_test={"num_steps": 60, "suggestion": "steep"},
        phases=[{"ratio": 0.2, "fraction": 0.2}, {"ratio": 1.0}],
    ),
    LossWeightBalancer(
        strategy="dwa",
        temperature=1.5,
        warmup_epochs=2,
        min_weight=0.1,
        normalize="initial_sum",
        freeze_converged=True,
    ),
    LossWeightBalancer(strategy="schedule", schedule={0: {"a": 1.0}, 3: {"a": 2.0}}),
    AdaptiveBatch(rebuild, schedule={0: 32, 2: 16}, lr_scaling="sqrt", seed=3),
    TrainingDynamicsMonitor(stop_on=["plateau"], plateau_patience=4),
    OneCycle(max_lr=0.01, three_phase=True, anneal_strategy="linear", total_steps=50),
]


@pytest.mark.parametrize("callback", CALLBACKS, ids=lambda c: type(c).__name__)
def test_round_trip(callback):
    config = callback.get_config()
    clone = type(callback).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(callback)
    assert serialized["registered_name"] == (
        f"keras_multiphase>{type(callback).__name__}"
    )
    # A function (AdaptiveBatch's rebuild) is serialized by name; Keras
    # finds it through custom_objects, as for any function.
    restored = keras.saving.deserialize_keras_object(
        serialized, custom_objects={"rebuild": rebuild}
    )
    assert type(restored) is type(callback)
    assert restored.get_config() == config


def test_config_keys_are_the_constructor_arguments():
    import inspect

    for callback in CALLBACKS:
        params = set(inspect.signature(type(callback).__init__).parameters)
        assert set(callback.get_config()) == params - {"self"}


@pytest.mark.parametrize(
    "schedule",
    [
        PhaseSchedule([1e-3, 1e-4], [10], ["step", "cosine"], [0, 5]),
        WarmupCosineRestartsSchedule(1e-3, 20, cycle_mult=2.0, warmup_steps=3),
    ],
    ids=lambda s: type(s).__name__,
)
def test_schedules_round_trip_and_give_the_same_rates(schedule):
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    assert type(restored) is type(schedule)
    steps = [0, 3, 9, 10, 12, 25, 40]
    np.testing.assert_allclose(
        [float(restored(s)) for s in steps], [float(schedule(s)) for s in steps]
    )
