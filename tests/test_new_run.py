"""A new `fit` is a new run of the recipe; `initial_epoch=k` continues one.

Measured through the step: the probe's weight moves by exactly -lr per SGD
step, so each epoch's move is the sum of the rates the step really used.
Keras's `LearningRateScheduler`, fastai's `fit_one_cycle` and Lightning's
and Hugging Face's `fit`/`train` start their schedule at each call; so do
this package's callbacks, unless the fit continues one (`initial_epoch`).
"""

import keras
import numpy as np
import pytest
from helpers import Script, probe_data, rate_probe, weight

import keras_multiphase as km
from keras_multiphase import PhaseLR, PlateauLR

STEPS = 3


def two_phases():
    return [PhaseLR([{"lr": 1e-3, "epochs": 1}, {"lr": 1e-4}])]


def moves(model, callbacks, epochs=2, initial_epoch=0, extra=()):
    """Per-epoch -w moves (the rates applied) and the logs of one fit."""
    start = weight(model)
    x, y = probe_data(STEPS)
    totals = []

    class Log(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            totals.append(start - weight(self.model))

    history = model.fit(
        x,
        y,
        batch_size=2,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,
        verbose=0,
        callbacks=[*callbacks, *extra, Log()],
    )
    return np.diff([0.0, *totals]), history.history


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("Ctrl-C")


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "same"])
def test_a_second_fit_runs_the_recipe_again(fresh):
    model = rate_probe(keras.optimizers.SGD(0.1))
    callbacks = two_phases()
    moves(model, callbacks)
    applied, logs = moves(model, two_phases() if fresh else callbacks)
    np.testing.assert_allclose(applied, [STEPS * 1e-3, STEPS * 1e-4], rtol=1e-4)
    assert logs["phase"] == [0, 1]
    np.testing.assert_allclose(logs["learning_rate"], [1e-3, 1e-4], rtol=1e-5)


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "same"])
def test_a_fit_after_an_interrupted_one_runs_the_recipe_again(fresh):
    model = rate_probe(keras.optimizers.SGD(0.1))
    callbacks = two_phases()
    with pytest.raises(KeyboardInterrupt):
        moves(model, callbacks, extra=[Interrupt()])
    applied, logs = moves(model, two_phases() if fresh else callbacks)
    np.testing.assert_allclose(applied, [STEPS * 1e-3, STEPS * 1e-4], rtol=1e-4)
    assert logs["phase"] == [0, 1]


def test_a_new_run_starts_from_fresh_state():
    model = rate_probe(keras.optimizers.SGD(0.1))
    # The score never improves: PlateauLR halves the rate from the third
    # epoch on (patience 1 after the first value).
    callbacks = [
        Script("score", [1.0]),
        PhaseLR([{"lr": 0.01}]),
        PlateauLR(monitor="score", mode="min", patience=1, factor=0.5),
    ]
    first, _ = moves(model, callbacks, epochs=3)
    again, _ = moves(model, callbacks, epochs=3)
    np.testing.assert_allclose(first, np.array([1, 1, 0.5]) * STEPS * 0.01, rtol=1e-4)
    np.testing.assert_allclose(again, first, rtol=1e-4)


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "same"])
def test_initial_epoch_continues_the_run(fresh):
    """1 + 1 epochs equal 2: the rates and the final weight."""
    whole = rate_probe(keras.optimizers.SGD(0.1))
    reference, ref_logs = moves(whole, two_phases())
    model = rate_probe(keras.optimizers.SGD(0.1))
    callbacks = two_phases()
    first, _ = moves(model, callbacks, epochs=1)
    second, logs = moves(
        model, two_phases() if fresh else callbacks, epochs=2, initial_epoch=1
    )
    np.testing.assert_allclose([*first, *second], reference, rtol=1e-4)
    assert logs["phase"] == ref_logs["phase"][1:]
    np.testing.assert_allclose(weight(model), weight(whole), rtol=1e-6)


@pytest.mark.filterwarnings("ignore:PhaseLR")
def test_initial_epoch_keeps_the_peak_a_new_fit_finds_it_again(monkeypatch):
    calls = []
    real = km.find_lr

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    # PhaseLR imports `find_lr` from the package when the test runs.
    monkeypatch.setattr("keras_multiphase.lr_finder.find_lr", counted)
    model = rate_probe(keras.optimizers.SGD(0.1))
    x, y = probe_data(8)

    def fit(epochs, initial_epoch=0):
        callbacks = km.preset("multiphase", balance="fixed")
        model.fit(
            x,
            y,
            batch_size=2,
            epochs=epochs,
            initial_epoch=initial_epoch,
            verbose=0,
            callbacks=[c for c in callbacks if not isinstance(c, km.AdaptiveBatch)],
        )

    fit(1)
    assert len(calls) == 1
    fit(2, initial_epoch=1)  # continues: the peak found is state
    assert len(calls) == 1
    fit(1)  # a new run: a new range test
    assert len(calls) == 2


def test_a_second_fit_runs_the_recipe_again_with_the_formulas_in_the_step(
    monkeypatch,
):
    """Epochs too long for the table (or of unknown length) evaluate the
    formulas inside the compiled step: they read the run's origin there."""
    from keras_multiphase.engine import composer

    monkeypatch.setattr(composer, "capacity_for", lambda *args: None)
    model = rate_probe(keras.optimizers.SGD(0.1))
    callbacks = two_phases()
    first, _ = moves(model, callbacks)
    again, logs = moves(model, callbacks)
    np.testing.assert_allclose(first, [STEPS * 1e-3, STEPS * 1e-4], rtol=1e-4)
    np.testing.assert_allclose(again, first, rtol=1e-4)
    assert logs["phase"] == [0, 1]


# -- extending a run ----------------------------------------------------------
THREE = [
    {"name": "a", "lr": 0.1, "fraction": 0.25},
    {"name": "b", "lr": 0.05, "fraction": 0.5},
    {"name": "c", "lr": 0.01},
]


class StepMoves(keras.callbacks.Callback):
    """The rate each step applied (SGD on mean(y_pred), x = 1: w -= lr);
    stops the fit after `stop_after` epochs when given."""

    def __init__(self, stop_after=None):
        super().__init__()
        self.values, self.stop_after = [0.0], stop_after

    def on_train_batch_end(self, batch, logs=None):
        self.values.append(-weight(self.model))

    def on_epoch_end(self, epoch, logs=None):
        if self.stop_after is not None and epoch + 1 >= self.stop_after:
            self.model.stop_training = True

    def rates(self):
        return np.round(np.diff(self.values), 6).tolist()


def fit_steps(model, callbacks, epochs, initial_epoch=0):
    x, y = probe_data(4)  # 4 steps per epoch
    model.fit(
        x,
        y,
        batch_size=2,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )


def test_extending_a_finished_run_keeps_its_last_phase():
    """Planned for 4 epochs (phases end at steps 4 and 12), extended to 8:
    the ended phases keep their ends and the last phase runs to the new
    end. Re-planned from scratch, step 16 would jump back to phase b."""
    model, callback, moves = rate_probe(), PhaseLR(THREE), StepMoves()
    fit_steps(model, [callback, moves], epochs=4)
    fit_steps(model, [callback, moves], epochs=8, initial_epoch=4)
    assert moves.rates() == [0.1] * 4 + [0.05] * 8 + [0.01] * 20


def test_extending_stretches_the_phase_in_progress_then_a_new_run_is_plain():
    model, callback = rate_probe(), PhaseLR(THREE)
    moves = StepMoves(stop_after=2)  # stopped in phase b (steps 4-11 planned)
    fit_steps(model, [callback, moves], epochs=4)
    moves.stop_after = None
    fit_steps(model, [callback, moves], epochs=8, initial_epoch=2)
    # b now ends where the 8-epoch plan ends it (step 24); c follows.
    assert moves.rates() == [0.1] * 4 + [0.05] * 20 + [0.01] * 8
    fresh = StepMoves()  # a new fit is a new run: the 8-epoch plan as is
    model.layers[0].kernel.assign(np.zeros((1, 1), "float32"))
    fit_steps(model, [callback, fresh], epochs=8)
    assert fresh.rates() == [0.1] * 8 + [0.05] * 16 + [0.01] * 8
