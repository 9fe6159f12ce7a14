"""Two JAX processes on this CPU train one model together, as two hosts do.

    python tests/multiprocess_checks.py PROCESS_ID PORT OUT_JSON [MODE]

Each process joins `jax.distributed` (a local coordinator on PORT, CPU
collectives over gloo), has one CPU device, and trains a two-head model
under `keras.distribution.DataParallel` over the global mesh of both
devices, each with its own half of the data, with
`preset("multiphase", balance="magnitude", rebuild=...)`: the range test
(`peak_lr: auto`), the phases, PlateauLR, the balancer and AdaptiveBatch.
It writes what it decided and where it ended to OUT_JSON: the peak, each
epoch's logged rate, loss weights, batch size and loss, and the final
weights, for `test_multiprocess.py` to compare across the processes.

MODE `skew` gives process 1 another peak (`peak_lr` given, doubled there):
the comparison must see the difference (the test cannot pass blindly).
"""

import json
import os
import sys

PROCESS, PORT, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3]
MODE = sys.argv[4] if len(sys.argv) > 4 else "auto"
os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"localhost:{PORT}", num_processes=2, process_id=PROCESS)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_multiphase as km  # noqa: E402

EPOCHS = 6


def data():
    """The global data set; this process keeps its half."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = {
        "value": (50 * x[:, :1] + 5 * rng.normal(size=(512, 1))).astype("float32"),
        "cls": (x[:, 1:2] > 0).astype("float32"),
    }
    mine = slice(PROCESS, None, 2)
    return x[mine], {k: v[mine] for k, v in y.items()}


def model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    outputs = {
        "value": keras.layers.Dense(1, name="value")(hidden),
        "cls": keras.layers.Dense(1, activation="sigmoid", name="cls")(hidden),
    }
    net = keras.Model(inputs, outputs)
    net.compile(
        optimizer=keras.optimizers.AdamW(1e-3),
        loss={"value": "mse", "cls": "binary_crossentropy"},
    )
    return net


def main():
    devices = jax.devices()
    assert len(devices) == 2 and jax.process_count() == 2, devices
    distribution = keras.distribution.DataParallel(devices=devices)
    # Each process gives its own half of the data (as Keras's message says
    # to, for data sharded by the user).
    distribution.auto_shard_dataset = False
    keras.distribution.set_distribution(distribution)
    x, y = data()
    net = model()
    peak = {"auto": "auto", "skew": 1e-2 * (1 + PROCESS)}[MODE]
    callbacks = km.preset(
        "multiphase",
        peak_lr=peak,
        balance="magnitude",
        rebuild=lambda batch_size: (x, y),
        **{"PhaseLR.range_test": {"num_steps": 30}} if peak == "auto" else {},
    )
    history = net.fit(callbacks[-1].data, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    logged = {
        key: [float(v) for v in values]
        for key, values in history.history.items()
        if key in ("learning_rate", "peak_lr", "batch_size", "loss")
        or key.endswith("_loss_weight")
    }
    weights = [np.asarray(w).tolist() for w in net.get_weights()]
    with open(OUT, "w") as f:
        json.dump({"process": PROCESS, "logged": logged, "weights": weights}, f)


if __name__ == "__main__":
    main()
