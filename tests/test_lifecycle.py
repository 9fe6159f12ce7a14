"""Nothing left behind: interrupted fits, fresh callbacks for every fit,
BackupAndRestore in the wrong place; Keras's batch hooks kept as Keras runs
them."""

import threading

import keras
import numpy as np
import pytest
from helpers import Script, fit_probe, rate_probe, weight

import keras_multiphase as km
from keras_multiphase import PhaseLR, PlateauLR

STEPS = 3


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("Ctrl-C")


def fit(model, callbacks, epochs=1):
    """fit_probe, with -w (applied rates) counted from this fit's start."""
    start = -weight(model) if model.built else 0.0
    _, log, history = fit_probe(callbacks, epochs, STEPS, model=model)
    log.totals = [t - start for t in log.totals]
    return log, history


def interrupted(model, callbacks):
    with pytest.raises(KeyboardInterrupt):
        fit(model, [*callbacks, Interrupt()])


def test_plain_fit_after_an_interrupted_one_uses_the_optimizers_rate():
    model = rate_probe(keras.optimizers.SGD(0.1))
    interrupted(model, [PhaseLR([{"lr": 0.001}])])
    w = weight(model)
    log, _ = fit(model, [])
    # Each step moves w by -lr: the optimizer's own 0.1, not 0.001.
    np.testing.assert_allclose(w - weight(model), STEPS * 0.1, rtol=1e-5)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)


def test_fresh_callbacks_after_an_interrupted_fit():
    model = rate_probe(keras.optimizers.SGD(0.1))
    # The interrupted fit's PlateauLR reduced the rate (score never moves).
    interrupted(
        model,
        [
            Script("score", [1.0]),
            PhaseLR([{"lr": 0.01}]),
            PlateauLR(monitor="score", mode="min", patience=1, factor=0.5),
        ],
    )
    # Fresh callbacks: no "Only one PhaseLR" error, no stale reduction.
    log, history = fit(
        model,
        [PhaseLR([{"lr": 0.02}]), PlateauLR(monitor="loss", patience=5)],
        epochs=2,
    )
    np.testing.assert_allclose(log.per_epoch(), [STEPS * 0.02] * 2, rtol=1e-5)
    assert history["learning_rate"] == [pytest.approx(0.02)] * 2


def test_same_callbacks_after_an_interrupted_fit():
    model = rate_probe(keras.optimizers.SGD(0.1))
    callbacks = [PhaseLR([{"lr": 0.01, "steps": STEPS}, {"lr": 0.03}])]
    interrupted(model, callbacks)
    log, _ = fit(model, callbacks, epochs=1)
    # A new fit is a new run: the schedule starts again (tests/test_new_run.py
    # has the rest of these semantics), with nothing left of the one before.
    np.testing.assert_allclose(log.per_epoch(), [STEPS * 0.01], rtol=1e-5)


def test_fresh_callbacks_every_fit_add_no_optimizer_variables():
    inputs = keras.Input((2,))
    model = keras.Model(
        inputs,
        {
            "a": keras.layers.Dense(1, name="a")(inputs),
            "b": keras.layers.Dense(1, name="b")(inputs),
        },
    )
    model.compile(optimizer="adam", loss={"a": "mse", "b": "mse"})
    x = np.ones((8, 2), "float32")
    y = {"a": np.ones((8, 1), "float32"), "b": np.zeros((8, 1), "float32")}
    counts = []
    for _ in range(4):
        callbacks = [
            *km.preset("multiphase", peak_lr=1e-3, balance="dwa"),
            km.WarmupCosineRestarts(first_cycle_steps=3),
        ]
        model.fit(x, y, epochs=2, verbose=0, callbacks=callbacks)
        counts.append(len(model.optimizer.variables))
    assert counts == [counts[0]] * 4


def test_a_fresh_callback_starts_from_its_own_initial_state():
    model = rate_probe(keras.optimizers.SGD(0.1))
    reducing = PlateauLR(monitor="score", mode="min", patience=1, factor=0.5)
    log, _ = fit(model, [Script("score", [1.0]), reducing], epochs=3)
    assert log.per_epoch()[-1] < STEPS * 0.1 * (1 - 1e-3)  # it reduced
    # Same state key, fresh callback: the step runs at the full 0.1 again.
    log, _ = fit(model, [PlateauLR(monitor="loss", patience=9)], epochs=1)
    np.testing.assert_allclose(log.per_epoch(), [STEPS * 0.1], rtol=1e-5)


def test_backup_and_restore_before_the_package_is_refused(tmp_dir):
    model = rate_probe(keras.optimizers.SGD(0.1))
    backup = keras.callbacks.BackupAndRestore(tmp_dir)
    with pytest.raises(ValueError, match="BackupAndRestore.*before PhaseLR"):
        fit(model, [backup, PhaseLR([{"lr": 0.01}])])
    # After it, it is fine.
    fit(model, [PhaseLR([{"lr": 0.01}]), keras.callbacks.BackupAndRestore(tmp_dir)])


class BatchEnds(keras.callbacks.Callback):
    """Records the thread of every `on_train_batch_end`; safe to run on
    Keras's callback thread, so it does not turn that dispatch off."""

    async_safe = True

    def __init__(self):
        super().__init__()
        self.threads = []

    def on_train_batch_end(self, batch, logs=None):
        self.threads.append(threading.get_ident())


def test_the_preset_keeps_keras_batch_ends_off_the_training_thread():
    # Keras hands batch-end hooks to a thread (JAX, PyTorch) only while no
    # callback overrides one without saying it is `async_safe`: the
    # package's no-op hooks must not make every step wait for the logs.
    probe = BatchEnds()
    fit(
        rate_probe(keras.optimizers.SGD(0.1)),
        [*km.preset("multiphase", peak_lr=0.01), probe],
    )
    assert len(probe.threads) == STEPS
    on_this_thread = set(probe.threads) == {threading.get_ident()}
    assert on_this_thread == (keras.backend.backend() == "tensorflow")


def test_a_subclass_keeps_keras_legacy_batch_hooks():
    # Keras's `on_train_batch_end` calls the legacy `on_batch_end`; a
    # subclass that overrides the legacy hook gets it called at every step,
    # on the training thread (it did not say it is safe elsewhere).
    class Counting(PhaseLR):
        def on_batch_end(self, batch, logs=None):
            self.seen.append((batch, threading.get_ident()))

    callback = Counting([{"lr": 0.01}])
    callback.seen = []
    assert not callback.async_safe
    fit(rate_probe(keras.optimizers.SGD(0.1)), [callback, BatchEnds()])
    assert callback.seen == [(b, threading.get_ident()) for b in range(STEPS)]


@pytest.mark.parametrize(
    "keras_callback, replacement",
    [
        (lambda: keras.callbacks.ReduceLROnPlateau(monitor="loss"), "PlateauLR"),
        (lambda: keras.callbacks.LearningRateScheduler(lambda e, lr: lr), "Schedule"),
    ],
)
def test_keras_rate_callbacks_beside_the_preset_are_named(keras_callback, replacement):
    # Without the check Keras fails at the first epoch's end with a
    # TypeError about a LearningRateSchedule the user never made.
    model = rate_probe(keras.optimizers.SGD(0.1))
    other = keras_callback()
    with pytest.raises(ValueError, match=type(other).__name__) as raised:
        fit(model, [*km.preset("multiphase", peak_lr=0.01), other])
    assert replacement in str(raised.value)
    assert "Received: callbacks=" in str(raised.value)
    # Nothing ran: the weight has not moved.
    assert weight(model) == 0.0


def test_keras_rate_callbacks_alone_still_work():
    model = rate_probe(keras.optimizers.SGD(0.1))
    fit(model, [keras.callbacks.ReduceLROnPlateau(monitor="loss")])
