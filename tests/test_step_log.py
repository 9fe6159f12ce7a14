"""Per-step logs: every step's rate (and momentum, phase, loss weights,
batch size) in TensorBoard, equal to what the step used."""

import sys
import warnings

import keras
import numpy as np
import pytest
from helpers import rate_probe, weight
from keras import ops

import keras_multiphase as km
from keras_multiphase.engine import event_file
from keras_multiphase.engine import table as table_module

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

PHASES = [
    {"name": "warm", "lr": 0.01, "steps": 3},
    {
        "name": "peak",
        "lr": 0.1,
        "steps": 9,
        "transition": "linear",
        "transition_steps": 4,
    },
    {"name": "end", "lr": 0.002},
]


def logged(directory) -> dict:
    """`{tag: (steps, values)}` of the `step/` series in `directory`."""
    events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    events.Reload()  # TensorBoard's reader: it drops a record whose CRC fails
    out = {}
    for tag in events.Tags()["scalars"]:
        if tag.startswith("step/"):
            points = events.Scalars(tag)
            steps = np.array([p.step for p in points])
            values = np.array([p.value for p in points])
            out[tag[len("step/") :]] = (steps, values)
    return out


class StepWeights(keras.callbacks.Callback):
    """`-w` after every step: its differences are the rates applied."""

    def __init__(self):
        super().__init__()
        self.values = [0.0]

    def on_train_batch_end(self, batch, logs=None):
        self.values.append(-weight(self.model))

    def applied(self):
        return np.diff(self.values)


def fit_with(callbacks, epochs=2, steps=10):
    model = rate_probe()
    probe = StepWeights()
    n = 2 * steps
    model.fit(
        np.ones((n, 1), "float32"),
        np.zeros((n, 1), "float32"),
        batch_size=2,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[*callbacks, probe],
    )
    return probe.applied()


@pytest.mark.parametrize("table", ["table", "formulas"])
def test_each_steps_logged_rate_is_the_rate_it_used(tmp_path, monkeypatch, table):
    if table == "formulas":  # no table: rates from the epoch's state
        monkeypatch.setattr(table_module, "TABLE_LIMIT", 0)
    callbacks = [
        km.PhaseLR(PHASES, log_dir=tmp_path),
        km.PlateauLR(monitor="loss", patience=0, factor=0.5, min_delta=1e9),
    ]
    applied = fit_with(callbacks, epochs=3)
    series = logged(tmp_path)
    steps, rates = series["learning_rate"]
    np.testing.assert_array_equal(steps, np.arange(30))
    # `applied` is read from float32 weights: a few ulps of them.
    np.testing.assert_allclose(rates, applied, rtol=1e-5, atol=1e-7)
    # The plateau (seen at epoch 2's end) halved epoch 3's rate.
    assert rates[19] == pytest.approx(0.002) and rates[20] == pytest.approx(0.001)
    np.testing.assert_array_equal(series["phase"][1][[0, 3, 12]], [0, 1, 2])


def test_keras_tensorboard_gets_every_step(tmp_path):
    pytest.importorskip("tensorflow")  # Keras's TensorBoard callback needs it
    board = keras.callbacks.TensorBoard(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        applied = fit_with([*km.preset("multiphase", peak_lr=0.1), board])
    # Keras's TensorBoard saves the model's config before train begins,
    # when the phases have no steps yet: the optimizer's own rate serves.
    assert not [w for w in caught if "serialize" in str(w.message)]
    steps, rates = logged(tmp_path / "train")["learning_rate"]
    assert len(steps) == 20
    np.testing.assert_allclose(rates, applied, rtol=1e-5, atol=1e-7)


def test_nothing_is_written_without_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    callback = km.PhaseLR(PHASES)
    fit_with([callback])
    assert list(tmp_path.iterdir()) == []


def test_momentum_loss_weights_and_batch_size_per_step(tmp_path):
    x = np.ones((32, 1), "float32")
    y = {"a": np.zeros((32, 1), "float32"), "b": np.zeros((32, 1), "float32")}
    inputs = keras.Input((1,))
    model = keras.Model(
        inputs,
        {
            "a": keras.layers.Dense(1, name="a")(inputs),
            "b": keras.layers.Dense(1, name="b")(inputs),
        },
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss={"a": lambda t, p: ops.mean(p), "b": lambda t, p: ops.mean(p)},
    )
    adaptive = km.AdaptiveBatch(lambda b: (x, y), {0: 16, 1: 4})
    balancer = km.LossWeightBalancer(
        "schedule", schedule={0: {"a": 1.0, "b": 1.0}, 1: {"a": 0.5, "b": 2.0}}
    )
    cycle = km.OneCycle(max_lr=0.1, log_dir=tmp_path)
    model.fit(adaptive.data, epochs=2, verbose=0, callbacks=[cycle, balancer, adaptive])
    series = logged(tmp_path)
    steps = series["learning_rate"][0]
    np.testing.assert_array_equal(steps, np.arange(2 + 8))  # 32/16, 32/4
    np.testing.assert_array_equal(series["batch_size"][1], [16] * 2 + [4] * 8)
    np.testing.assert_array_equal(series["loss_weight/a"][1], [1.0] * 2 + [0.5] * 8)
    np.testing.assert_array_equal(series["loss_weight/b"][1], [1.0] * 2 + [2.0] * 8)
    momentum = series["momentum"][1]
    assert momentum[0] == pytest.approx(0.95)  # OneCycle: max at the start
    assert momentum.min() == pytest.approx(0.85, abs=0.02)  # base at the peak
    assert np.argmin(momentum) == np.argmax(series["learning_rate"][1])


@pytest.mark.parametrize("value", ["", 3, ["logs"]])
def test_bad_log_dir(value):
    with pytest.raises(ValueError, match=r"log_dir.*Received: log_dir="):
        km.PhaseLR(PHASES, log_dir=value)
    with pytest.raises(ValueError, match=r"log_dir"):
        km.OneCycle(max_lr=0.1, log_dir=value)


def test_written_without_tensorflow_or_tensorboard(tmp_path, monkeypatch):
    """The event files need NumPy only: TensorBoard is for viewing them."""
    hidden = ["tensorboard"]
    if keras.backend.backend() != "tensorflow":
        hidden.append("tensorflow")
    for module in hidden:
        monkeypatch.setitem(sys.modules, module, None)
    applied = fit_with([km.PhaseLR(PHASES, log_dir=tmp_path)])
    monkeypatch.undo()
    steps, rates = logged(tmp_path)["learning_rate"]
    np.testing.assert_allclose(rates, applied, rtol=1e-5, atol=1e-7)


def test_event_file_checksums_and_long_runs(tmp_path):
    """CRC-32C's check value; steps whose varints grow from 1 to 3 bytes
    inside one epoch, all read back (a bad checksum drops a record)."""
    check = np.frombuffer(b"123456789", np.uint8)[None, :]
    assert event_file.crc32c(check)[0] == 0xE3069283
    writer = event_file.EventFile(str(tmp_path))
    steps = np.arange(100, 20_000)
    writer.write_scalars(steps, {"step/x": steps * 0.5, "step/y": -steps})
    writer.close()
    series = logged(tmp_path)
    np.testing.assert_array_equal(series["x"][0], steps)
    np.testing.assert_allclose(series["x"][1], steps * 0.5)
    np.testing.assert_allclose(series["y"][1], -steps)


def test_each_group_of_layers_has_its_rate_logged(tmp_path):
    """With `layer_rates` in PhaseLR's phases, `learning_rate/<group>` is
    each group's rate at each step: the phase's rate times its multiplier."""
    inputs = keras.Input((1,))
    trunk = keras.layers.Dense(1, use_bias=False, name="trunk")(inputs)
    head = keras.layers.Dense(1, use_bias=False, name="head")(inputs)
    model = keras.Model(inputs, keras.layers.Add()([trunk, head]))
    model.compile(keras.optimizers.SGD(1.0), loss=lambda t, p: ops.mean(p))
    phases = km.PhaseLR(
        [
            {"name": "a", "lr": 0.1, "steps": 3, "layer_rates": {"trunk": 0.0}},
            {"name": "b", "lr": 0.01, "layer_rates": {"trunk": 0.5}},
        ],
        log_dir=str(tmp_path),
    )
    x = np.ones((8, 1), "float32")
    model.fit(x, x, batch_size=2, epochs=2, verbose=0, callbacks=[phases])
    series = logged(tmp_path)
    steps, trunk_rates = series["learning_rate/trunk"]
    np.testing.assert_array_equal(steps, np.arange(8))
    np.testing.assert_allclose(trunk_rates, [0, 0, 0] + [0.005] * 5, rtol=1e-6)
    np.testing.assert_allclose(
        series["learning_rate/head"][1], [0.1] * 3 + [0.01] * 5, rtol=1e-6
    )
