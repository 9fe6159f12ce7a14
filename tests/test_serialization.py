"""Every callback round-trips through get_config / Keras serialization."""

import keras
import pytest

from keras_multiphase import PhaseLR, PlateauLR, WarmupCosineRestarts

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
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(callback)
    assert restored.get_config() == config


def test_config_keys_are_the_constructor_arguments():
    import inspect

    for callback in CALLBACKS:
        params = set(inspect.signature(type(callback).__init__).parameters)
        assert set(callback.get_config()) == params - {"self"}
