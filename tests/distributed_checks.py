"""Runs the package's callbacks on 2 devices of this CPU and prints JSON.

    python tests/distributed_checks.py tf-mirrored     # tf.distribute
    python tests/distributed_checks.py jax-dataparallel # keras.distribution

Run in its own process by tests/test_distributed.py: the device split must
happen before TensorFlow's runtime starts (logical CPU devices) or before
JAX is imported (XLA_FLAGS=--xla_force_host_platform_device_count=2).

Each check measures what the train step did:

- `lr`: one weight `w` on `x = 1` with a per-sample loss `y_pred`, SGD: each
  step moves `w` by exactly `-lr`, so the per-epoch move of `w` is the sum
  of the rates the replicas applied. PhaseLR + WarmupCosineRestarts are
  compared with `preview()`, PlateauLR (forced to reduce) with its factors.
- `weights`: two such weights, one per output, weighted by a scheduled
  LossWeightBalancer: `w_i` moves by `lr * weight_i` per step, and the
  logged total equals the weighted sum of the logged components.
- `batch`: each sample owns an embedding row, SGD at rate 1 on `sum(y_pred)`
  moves a row by exactly -1 each time its sample is trained on (gradients
  are summed over replicas and each sample is on one replica); AdaptiveBatch
  changes the global batch 32 -> 16 -> 8 on 96 samples (arrays, then a
  shuffled tf.data): every row must be at -(epoch + 1) after each epoch.
"""

from __future__ import annotations

import json
import os
import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else "tf-mirrored"
REPLICAS = 2

if MODE == "tf-mirrored":
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * REPLICAS
    )
elif MODE == "tf-multiworker":
    # One replica per process; TF_CONFIG (set by the caller) names the
    # other worker on localhost.
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf
elif MODE.startswith("jax"):
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={REPLICAS}"
    )
else:
    raise SystemExit(f"unknown mode {MODE!r}")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_multiphase as km  # noqa: E402

EPOCHS, STEPS, BATCH = 4, 4, 4  # global batch 4 = 2 per replica
N = 96


def scope():
    """The strategy scope (TF) or the global distribution (JAX)."""
    if MODE == "tf-mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices).scope()
    import contextlib

    devices = keras.distribution.list_devices("cpu")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices))
    return contextlib.nullcontext()


def replicas() -> int:
    if MODE == "tf-mirrored":
        return tf.distribute.get_strategy().num_replicas_in_sync
    return len(keras.distribution.distribution().device_mesh.devices.ravel())


TRACED_BATCH = []


def per_sample(y_true, y_pred):
    # Not reduced here: Keras reduces it (and scales it per replica on TF).
    TRACED_BATCH.append(y_pred.shape[0])  # at trace time: the per-replica batch
    return y_pred[:, 0]


def placement(model) -> dict:
    """How many devices hold each model and optimizer variable."""
    out = {}
    ours = [v for v in model.metrics_variables if "loss_weight" in v.path]
    for variable in [*model.weights, *model.optimizer.variables, *ours]:
        value = variable.value
        if MODE.startswith("tf"):
            count = len(getattr(value, "values", [value]))
        else:
            count = len(value.sharding.device_set)
        out[variable.path] = count
    return out


def probe(outputs=("w",)):
    inputs = keras.Input((1,))
    heads = {
        name: keras.layers.Dense(
            1, use_bias=False, kernel_initializer="zeros", name=name
        )(inputs)
        for name in outputs
    }
    model = keras.Model(inputs, heads if len(outputs) > 1 else heads[outputs[0]])
    loss = {name: per_sample for name in outputs} if len(outputs) > 1 else per_sample
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    return model


class Weights(keras.callbacks.Callback):
    def __init__(self, names):
        super().__init__()
        self.names, self.values = names, []

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(
            [
                -float(np.asarray(self.model.get_layer(n).kernel.numpy()).ravel()[0])
                for n in self.names
            ]
        )

    def moves(self):
        return np.diff([[0.0] * len(self.names), *self.values], axis=0).tolist()


def check_lr(strategy_scope):
    x = np.ones((STEPS * BATCH, 1), "float32")
    y = np.zeros_like(x)
    out = {}
    with strategy_scope():
        model = probe()
    schedule = [
        km.PhaseLR(
            [
                {"name": "start", "lr": 0.1, "epochs": 2},
                {"name": "end", "lr": 0.02},
            ]
        ),
        km.WarmupCosineRestarts(first_cycle_steps=3, min_ratio=0.1),
    ]
    log = Weights(["w"])
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=EPOCHS,
        verbose=0,
        shuffle=False,
        callbacks=[*schedule, log],
    )
    expected = km.preview(schedule, epochs=EPOCHS, steps_per_epoch=STEPS)
    rates = np.asarray(expected["learning_rate"]).reshape(EPOCHS, STEPS)
    out["placement"] = placement(model)
    out["traced_batch"] = sorted(set(TRACED_BATCH))
    out["schedule_moves"] = [m[0] for m in log.moves()]
    out["schedule_expected"] = rates.sum(axis=1).tolist()

    with strategy_scope():
        model = probe()
    # mode="max" on a falling loss: never an improvement, so from epoch 1 on
    # the rate halves at the end of every epoch.
    plateau = km.PlateauLR(monitor="loss", mode="max", factor=0.5, patience=1)
    log = Weights(["w"])
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=EPOCHS,
        verbose=0,
        shuffle=False,
        callbacks=[plateau, log],
    )
    out["plateau_moves"] = [m[0] for m in log.moves()]
    out["plateau_expected"] = [0.1 * STEPS * f for f in (1, 1, 0.5, 0.25)]
    return out


def check_weights(strategy_scope):
    x = np.ones((STEPS * BATCH, 1), "float32")
    y = {"a": np.zeros_like(x), "b": np.zeros_like(x)}
    plan = {0: {"a": 1.0, "b": 1.0}, 1: {"a": 2.0, "b": 0.5}, 2: {"a": 0.25, "b": 3.0}}
    with strategy_scope():
        model = probe(("a", "b"))
    balancer = km.LossWeightBalancer("schedule", schedule=plan, normalize="none")
    log = Weights(["a", "b"])
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=3,
        verbose=0,
        shuffle=False,
        callbacks=[balancer, log],
    )
    logs = history.history
    return {
        "placement": placement(model),
        "moves": log.moves(),
        "expected": [[0.1 * STEPS * plan[e][k] for k in "ab"] for e in range(3)],
        "loss": logs["loss"],
        "weighted_sum": [
            logs["a_loss"][e] * logs["a_loss_weight"][e]
            + logs["b_loss"][e] * logs["b_loss_weight"][e]
            for e in range(3)
        ],
    }


def check_batch(strategy_scope, source):
    def rebuild(batch_size):
        x = np.arange(N, dtype="int32").reshape(-1, 1)
        y = np.zeros((N, 1), "float32")
        if source == "arrays":
            return x, y
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((x, y))
        return data.shuffle(N, seed=1).batch(batch_size)

    from test_adaptive_batch import counting_model  # this folder; after the split

    with strategy_scope():
        model, emb = counting_model()
    adaptive = km.AdaptiveBatch(rebuild, {0: 32, 1: 16, 2: 8})

    class Rows(keras.callbacks.Callback):
        rows, steps = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.n = 0

        def on_train_batch_end(self, batch, logs=None):
            self.n += 1

        def on_epoch_end(self, epoch, logs=None):
            self.steps.append(self.n)
            rows = np.asarray(emb.embeddings.numpy()).ravel()
            self.rows.append(sorted(set(rows.round(6).tolist())))

    rows = Rows()
    history = model.fit(adaptive.data, epochs=3, verbose=0, callbacks=[adaptive, rows])
    return {
        "row_values": rows.rows,
        "steps": rows.steps,
        "batch_size": history.history["batch_size"],
    }


def check_indivisible(strategy_scope):
    """JAX shards each batch evenly over the devices: 95 samples at batch 32
    leave a last batch of 31. AdaptiveBatch must say so at train begin."""
    x = np.ones((95, 1), "float32")
    with strategy_scope():
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    adaptive = km.AdaptiveBatch(lambda batch_size: (x, x), {0: 32})
    try:
        model.fit(adaptive.data, epochs=1, verbose=0, callbacks=[adaptive])
    except ValueError as error:
        return str(error)
    return None


def main():
    import contextlib

    if MODE == "tf-mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        strategy_scope = strategy.scope
    elif MODE == "tf-multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        strategy_scope = strategy.scope
    else:
        devices = keras.distribution.list_devices("cpu")
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices)
        )
        strategy_scope = contextlib.nullcontext
    result = {
        "mode": MODE,
        "replicas": (
            strategy.num_replicas_in_sync if MODE.startswith("tf") else len(devices)
        ),
        "lr": check_lr(strategy_scope),
        "weights": check_weights(strategy_scope),
        "batch_arrays": check_batch(strategy_scope, "arrays"),
    }
    try:
        import tensorflow  # noqa: F401
    except ImportError:  # an optional dependency: the test says it skipped
        pass
    else:
        result["batch_tf_data"] = check_batch(strategy_scope, "tf.data")
    if MODE.startswith("jax"):
        result["indivisible"] = check_indivisible(strategy_scope)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
