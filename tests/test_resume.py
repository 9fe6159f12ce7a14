"""Resume: BackupAndRestore and initial_epoch follow the same trajectory;
checkpoints load into a model built without this package's callbacks."""

import warnings

import keras
import numpy as np
import pytest
from helpers import Script, WeightLog, probe_data, rate_probe, weight

from keras_multiphase import PhaseLR, PlateauLR, WarmupCosineRestarts

EPOCHS, STEPS = 6, 3
SCORES = [5.0, 4.0, 4.0, 4.0, 3.0, 3.0]


def make_callbacks():
    # A plateau ends phase 0 early (after epoch 3), PlateauLR reduces after
    # epochs 3 and 5: the state that must survive the interruption.
    return [
        Script("score", SCORES),
        PhaseLR(
            [
                {
                    "lr": 0.01,
                    "epochs": 5,
                    "plateau": {"monitor": "score", "patience": 2, "mode": "min"},
                },
                {"name": "b", "lr": 0.03},
            ]
        ),
        WarmupCosineRestarts(first_cycle_steps=5, min_ratio=0.5, phases=["b"]),
        PlateauLR(monitor="score", mode="min", patience=2, factor=0.5),
    ]


class Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


def model_with_adam():
    return rate_probe(keras.optimizers.Adam(learning_rate=0.1, epsilon=1e-3))


def run(model, extra=(), initial_epoch=0, callbacks=None):
    log = WeightLog()
    x, y = probe_data(STEPS)
    history = model.fit(
        x,
        y,
        batch_size=2,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        initial_epoch=initial_epoch,
        callbacks=[*(callbacks or make_callbacks()), *extra, log],
    )
    return history.history, log


@pytest.fixture(scope="module")
def reference():
    keras.utils.set_random_seed(1234)
    model = model_with_adam()
    history, _ = run(model)
    return history, weight(model)


def test_backup_and_restore_resumes_the_same_trajectory(reference, tmp_dir):
    ref_history, ref_weight = reference
    backup = keras.callbacks.BackupAndRestore(tmp_dir)
    with pytest.raises(RuntimeError, match="interrupted"):
        run(model_with_adam(), extra=[backup, Interrupt(3)])
    # A new process: a new model and new callback objects.
    keras.backend.clear_session()
    model = model_with_adam()
    history, _ = run(model, extra=[keras.callbacks.BackupAndRestore(tmp_dir)])
    np.testing.assert_allclose(
        history["learning_rate"], ref_history["learning_rate"][4:], rtol=1e-6
    )
    assert history["phase"] == ref_history["phase"][4:]
    np.testing.assert_allclose(weight(model), ref_weight, rtol=1e-5)
    # The checkpoint held the rate in effect in the optimizer's rate slot and
    # the variable's own value beside it: the restored optimizer has its own
    # rate back once the fit ends.
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(0.1)


def test_initial_epoch_restart_resumes_the_same_trajectory(reference):
    ref_history, ref_weight = reference
    model = model_with_adam()
    callbacks = make_callbacks()
    with pytest.raises(RuntimeError, match="interrupted"):
        run(model, extra=[Interrupt(3)], callbacks=callbacks)
    history, _ = run(model, initial_epoch=4, callbacks=callbacks)
    np.testing.assert_allclose(
        history["learning_rate"], ref_history["learning_rate"][4:], rtol=1e-6
    )
    np.testing.assert_allclose(weight(model), ref_weight, rtol=1e-5)


def test_checkpoint_loads_into_a_plain_model(tmp_dir):
    model = model_with_adam()
    path = f"{tmp_dir}/ckpt.weights.h5"
    saver = keras.callbacks.ModelCheckpoint(path, save_weights_only=True)
    run(model, extra=[saver])
    plain = model_with_adam()
    plain.optimizer.build(plain.trainable_variables)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Skipping variable loading"
        plain.load_weights(path)
    assert weight(plain) == pytest.approx(weight(model))
    # Adam's moments and the step count came along.
    assert int(plain.optimizer.iterations) == EPOCHS * STEPS
    ours = [v for v in model.optimizer.variables if "keras_multiphase" not in v.path]
    for mine, theirs in zip(ours, plain.optimizer.variables, strict=True):
        if "learning_rate" not in mine.path:
            np.testing.assert_allclose(theirs.numpy(), mine.numpy())


def test_checkpoint_entry_is_where_the_docs_say(tmp_dir):
    """README and _state.py name `optimizer/_keras_multiphase_patched`."""
    h5py = pytest.importorskip("h5py")
    model = model_with_adam()
    path = f"{tmp_dir}/ck.weights.h5"
    x, y = probe_data(STEPS)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[PlateauLR()])
    model.save_weights(path)
    with h5py.File(path) as f:
        names = []
        f.visit(names.append)
    assert "optimizer/_keras_multiphase_patched/vars/PlateauLR.reduction" in names


class SaveAt(keras.callbacks.Callback):
    def __init__(self, path, epoch):
        super().__init__()
        self.path, self.epoch, self.rate = path, epoch, None

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.save(self.path)
            self.rate = float(self.model.optimizer.learning_rate)


def test_keras_file_saved_mid_training_loads_without_the_package(tmp_dir):
    import os
    import subprocess
    import sys

    path = os.path.join(tmp_dir, "mid.keras")
    saver = SaveAt(path, epoch=2)
    callbacks = [
        PhaseLR([{"lr": 0.01, "epochs": 2}, {"lr": 0.03}]),
        PlateauLR(monitor="loss", patience=1, factor=0.5),
        saver,
    ]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    x, y = probe_data(STEPS)
    model.fit(x, y, batch_size=2, epochs=4, verbose=0, callbacks=callbacks)
    # The rate in effect at the save: phase 2's, not the optimizer's own.
    assert saver.rate is not None and saver.rate <= 0.03 * (1 + 1e-6)
    assert saver.rate != pytest.approx(0.1)
    code = (
        "import sys, keras\n"
        f"model = keras.saving.load_model({path!r})\n"
        "assert 'keras_multiphase' not in sys.modules\n"
        "print(float(model.optimizer.learning_rate))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.split()[-1]) == pytest.approx(saver.rate, rel=1e-6)
    assert saver.rate == pytest.approx(0.03 * 0.5**0, rel=0.6)  # a phase-2 rate


def test_keras_file_saved_mid_one_cycle_stores_plain_floats(tmp_dir):
    import os
    import subprocess
    import sys

    from keras_multiphase import OneCycle

    path = os.path.join(tmp_dir, "cycle.keras")
    saver = SaveAt(path, epoch=1)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x, y = probe_data(STEPS)
    model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[OneCycle(), saver])
    assert model.optimizer.beta_1 == 0.9  # given back after the fit
    code = (
        "import sys, keras\n"
        f"model = keras.saving.load_model({path!r})\n"
        "assert 'keras_multiphase' not in sys.modules\n"
        "beta = model.optimizer.beta_1\n"
        "assert isinstance(beta, float), type(beta)\n"
        "print(beta)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 0.85 <= float(done.stdout.split()[-1]) < 0.95  # mid-cycle momentum
