"""AdaptiveBatch: every sample exactly once per epoch, at each epoch's size."""

import keras
import numpy as np
import pytest
from helpers import Script, WeightLog, assert_applied, phase_ref
from keras import ops

from keras_multiphase import AdaptiveBatch, PhaseLR

N = 96


def counting_model():
    """Each sample owns one embedding row; SGD at rate 1 on sum(y_pred)
    moves a row by exactly -1 each time its sample is trained on."""
    emb = keras.layers.Embedding(N, 1, embeddings_initializer="zeros")
    inputs = keras.Input((1,), dtype="int32")
    model = keras.Model(inputs, keras.layers.Flatten()(emb(inputs)))
    model.compile(
        optimizer=keras.optimizers.SGD(1.0),
        loss=lambda y_true, y_pred: ops.sum(y_pred),
    )
    return model, emb


class RowLog(keras.callbacks.Callback):
    """Records the embedding rows at each epoch end."""

    def __init__(self, emb):
        super().__init__()
        self.emb, self.rows = emb, []

    def on_epoch_end(self, epoch, logs=None):
        _ = self.model  # JAX: sync
        self.rows.append(np.asarray(self.emb.embeddings.numpy()).ravel().copy())


def arrays(batch_size):
    del batch_size
    x = np.arange(N, dtype="int32").reshape(-1, 1)
    return x, np.zeros((N, 1), "float32")


def pydataset(batch_size):
    class Data(keras.utils.PyDataset):
        def __len__(self):
            return -(-N // batch_size)

        def __getitem__(self, i):
            idx = np.arange(i * batch_size, min(N, (i + 1) * batch_size))
            return idx.reshape(-1, 1).astype("int32"), np.zeros(
                (len(idx), 1), "float32"
            )

    return Data()


def tf_dataset(batch_size):
    tf = pytest.importorskip("tensorflow")

    x, y = arrays(batch_size)
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(N).batch(batch_size)


@pytest.mark.parametrize(
    "rebuild", [arrays, pydataset, tf_dataset], ids=["arrays", "pydataset", "tf.data"]
)
@pytest.mark.parametrize("sizes", [[32, 16, 8], [8, 32]], ids=str)
def test_every_sample_exactly_once_per_epoch(rebuild, sizes):
    model, emb = counting_model()
    adaptive = AdaptiveBatch(rebuild, dict(enumerate(sizes)))
    rows, steps = RowLog(emb), []

    class Steps(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.n = 0

        def on_train_batch_end(self, batch, logs=None):
            self.n += 1

        def on_epoch_end(self, epoch, logs=None):
            steps.append(self.n)

    history = model.fit(
        adaptive.data, epochs=len(sizes), verbose=0, callbacks=[adaptive, rows, Steps()]
    )
    for epoch, row in enumerate(rows.rows):
        np.testing.assert_array_equal(row, -(epoch + 1.0))
    assert steps == [-(-N // b) for b in sizes]
    assert history.history["batch_size"] == sizes


@pytest.mark.parametrize(
    "scaling,factor",
    [("none", lambda r: 1.0), ("linear", lambda r: r), ("sqrt", np.sqrt)],
)
def test_lr_scaling_through_the_step(scaling, factor):
    # The probe: one weight, loss = mean(y_pred), x = 1 -> w moves by -lr.
    x = np.ones((32, 1), "float32")
    y = np.zeros((32, 1), "float32")
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=lambda t, p: ops.mean(p))
    adaptive = AdaptiveBatch(lambda b: (x, y), {0: 16, 1: 4}, lr_scaling=scaling)
    log = WeightLog()
    model.fit(adaptive.data, epochs=2, verbose=0, callbacks=[adaptive, log])
    # epoch 0: 2 steps at 0.1; epoch 1: 8 steps at 0.1 * factor(4/16)
    assert_applied(log, [2 * 0.1, 8 * 0.1 * factor(0.25)])


@pytest.mark.parametrize("device", ["here", "accelerator"])
def test_phase_boundaries_follow_the_changing_epoch_sizes(device, request):
    # "accelerator": eager PyTorch gathering each row on the device, the
    # table refreshed when the batch size changes (`begin_epoch` with steps).
    waited = request.getfixturevalue("accelerator_reads") if device != "here" else []
    x = np.ones((32, 1), "float32")
    y = np.zeros((32, 1), "float32")
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=lambda t, p: ops.mean(p))
    adaptive = AdaptiveBatch(lambda b: (x, y), {0: 16, 1: 4})
    phases = PhaseLR([{"lr": 0.01, "epochs": 1.5}, {"lr": 0.002}])
    log = WeightLog()
    model.fit(adaptive.data, epochs=3, verbose=0, callbacks=[phases, adaptive, log])
    # Epoch starts: steps 0, 2, 10 (2 then 8 steps per epoch); epoch 1.5 is
    # step 2 + 4 = 6.
    want = [
        sum(phase_ref(s, [0.01, 0.002], [6]) for s in r)
        for r in (range(0, 2), range(2, 10), range(10, 18))
    ]
    assert_applied(log, want)
    assert waited == []


def test_other_data_is_refused_at_train_begin():
    model, _ = counting_model()
    adaptive = AdaptiveBatch(arrays, {0: 32})
    x, y = arrays(32)
    with pytest.raises(ValueError, match="adaptive.data"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[adaptive])
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(
            adaptive.data, epochs=1, steps_per_epoch=2, verbose=0, callbacks=[adaptive]
        )


def test_growth_on_plateau_and_resume(tmp_dir):
    def run(callbacks, epochs=4):
        keras.utils.set_random_seed(0)
        model, emb = counting_model()
        adaptive = AdaptiveBatch(
            arrays,
            {0: 8},
            grow_on_plateau={
                "monitor": "score",
                "patience": 1,
                "mode": "min",
                "factor": 2,
                "max_batch_size": 32,
            },
        )
        rows = RowLog(emb)
        history = model.fit(
            adaptive.data,
            epochs=epochs,
            verbose=0,
            callbacks=[Script("score", [1.0] * 4), adaptive, *callbacks, rows],
        )
        return history.history, rows

    reference, rows = run([])
    assert reference["batch_size"] == [8, 8, 16, 32]
    for epoch, row in enumerate(rows.rows):
        np.testing.assert_array_equal(row, -(epoch + 1.0))

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    backup = keras.callbacks.BackupAndRestore(tmp_dir)
    with pytest.raises(RuntimeError):
        run([backup, Interrupt()])
    resumed, rows = run([keras.callbacks.BackupAndRestore(tmp_dir)])
    assert resumed["batch_size"] == reference["batch_size"][2:]
    np.testing.assert_array_equal(rows.rows[-1], -4.0)


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(rebuild=None, schedule={0: 8}), "rebuild"),
        (dict(rebuild=arrays, schedule={}), "schedule"),
        (dict(rebuild=arrays, schedule={1: 8}), "start at 0"),
        (dict(rebuild=arrays, schedule={0: 0}), r"schedule\[0\]"),
        (dict(rebuild=arrays, schedule={0: 8, 0.5: 4}), "all epochs"),
        (dict(rebuild=arrays, schedule={0: 8}, lr_scaling="cubic"), "lr_scaling"),
        (
            dict(
                rebuild=arrays,
                schedule={0: 8},
                grow_on_plateau={"monitor": "loss", "factor": 1},
            ),
            "factor",
        ),
    ],
)
def test_bad_arguments_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        AdaptiveBatch(**kw)


def test_validation_data_is_left_to_the_user():
    model, emb = counting_model()
    adaptive = AdaptiveBatch(arrays, {0: 32, 1: 8})
    x, y = arrays(8)
    seen = []

    class ValBatches(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            seen.append(batch)

    history = model.fit(
        adaptive.data,
        epochs=2,
        verbose=0,
        validation_data=(x, y),
        validation_batch_size=48,
        callbacks=[adaptive, ValBatches(), RowLog(emb)],
    )
    assert "val_loss" in history.history
    assert seen == [0, 1, 0, 1]  # 96 samples / 48 per batch, both epochs
    assert history.history["batch_size"] == [32, 8]


def test_config_round_trip():
    adaptive = AdaptiveBatch(
        arrays,
        {0.0: 64, 0.5: 16},
        lr_scaling="sqrt",
        grow_on_plateau={"monitor": "val_loss", "patience": 2},
    )
    clone = AdaptiveBatch.from_config(adaptive.get_config())
    assert clone.get_config() == adaptive.get_config()


def test_schedule_by_phase_and_progress_bar_counts(capsys):
    model, emb = counting_model()
    phases = PhaseLR(
        [{"name": "big", "lr": 1.0, "steps": 3}, {"name": "small", "lr": 1.0}]
    )
    adaptive = AdaptiveBatch(arrays, {"big": 32, "small": 8})
    rows = RowLog(emb)
    history = model.fit(
        adaptive.data, epochs=3, verbose=1, callbacks=[phases, adaptive, rows]
    )
    assert history.history["batch_size"] == [32, 8, 8]
    for epoch, row in enumerate(rows.rows):
        np.testing.assert_array_equal(row, -(epoch + 1.0))
    out = capsys.readouterr().out
    assert "3/3" in out and "12/12" in out


def _order_sensitive_model():
    """A weight moved by SGD on squared errors of varying samples: the
    result depends on which samples share a batch, and in which order."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones")]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def _regression(batch_size):
    del batch_size
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N, 2)).astype("float32")
    return x, (x @ np.array([[2.0], [-1.0]]) + rng.normal(0, 0.5, (N, 1))).astype(
        "float32"
    )


class _Stop(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("killed")


def test_resume_restores_the_shuffle_order(tmp_dir):
    schedule = {0: 32, 2: 16}

    def run(extra, model=None):
        model = model or _order_sensitive_model()
        adaptive = AdaptiveBatch(_regression, schedule, shuffle=True, seed=5)
        model.fit(adaptive.data, epochs=4, verbose=0, callbacks=[adaptive, *extra])
        return model

    reference = run([]).get_weights()
    model = _order_sensitive_model()
    with pytest.raises(RuntimeError):
        run([keras.callbacks.BackupAndRestore(tmp_dir), _Stop()], model)
    resumed = run([keras.callbacks.BackupAndRestore(tmp_dir)]).get_weights()
    for a, b in zip(reference, resumed, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_rebuild_output_is_checked():
    def ignores_batch_size(batch_size):
        return pydataset(32)

    model, _ = counting_model()
    adaptive = AdaptiveBatch(ignores_batch_size, {0: 16})
    with pytest.raises(ValueError, match=r"rebuild\(16\)` returned data whose first"):
        model.fit(adaptive.data, epochs=1, verbose=0, callbacks=[adaptive])

    def shrinking(batch_size):
        x, y = arrays(batch_size)
        keep = N if batch_size == 32 else N // 2
        return x[:keep], y[:keep]

    model, _ = counting_model()
    adaptive = AdaptiveBatch(shrinking, {0: 32, 1: 16})
    with pytest.raises(ValueError, match=r"rebuild\(16\)` returned 48 samples.*96"):
        model.fit(adaptive.data, epochs=2, verbose=0, callbacks=[adaptive])
