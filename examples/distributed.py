"""Multi-device training with keras-multiphase, on one machine.

The same callbacks, unchanged, on two devices: the model is built and
compiled under `tf.distribute.MirroredStrategy().scope()` (TensorFlow) or
after `keras.distribution.set_distribution(DataParallel(...))` (JAX). On a
CPU-only machine the CPU is split into 2 devices, which is what this script
does (set before TensorFlow starts / before JAX is imported):

    KERAS_BACKEND=tensorflow python examples/distributed.py  # MirroredStrategy
    KERAS_BACKEND=jax python examples/distributed.py         # DataParallel
    KERAS_BACKEND=torch python examples/distributed.py       # one process

On a real machine with GPUs, drop the device split: MirroredStrategy() and
DataParallel() take every GPU they see. The batch sizes in AdaptiveBatch
are global batches (split over the replicas); on JAX they must be
divisible by the number of devices.
"""

import argparse
import os

BACKEND = os.environ.setdefault("KERAS_BACKEND", "jax")
DEVICES = 2

if BACKEND == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * DEVICES
    )
elif BACKEND == "jax":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={DEVICES}"
    )

import contextlib  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_multiphase as km  # noqa: E402


def distribution_scope():
    """Where to build and compile the model, and how many replicas."""
    if BACKEND == "tensorflow":
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        return strategy.scope(), strategy.num_replicas_in_sync
    if BACKEND == "jax":
        devices = keras.distribution.list_devices("cpu")
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices)
        )
        return contextlib.nullcontext(), len(devices)
    # PyTorch: Keras 3 has no multi-device API on this backend; the package
    # runs in one process and refuses a torch.distributed group of > 1.
    return contextlib.nullcontext(), 1


def make_data(samples=4096, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 16)).astype("float32")
    y = {
        "threshold": (70 + 3 * x[:, :4].sum(1, keepdims=True)).astype("float32"),
        "cls": (x[:, 4:5] + x[:, 5:6] > 0).astype("float32"),
    }
    return x, y


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    scope, replicas = distribution_scope()
    x, y = make_data()
    with scope:
        inputs = keras.Input((16,))
        hidden = keras.layers.Dense(64, activation="relu")(inputs)
        model = keras.Model(
            inputs,
            {
                "threshold": keras.layers.Dense(1, name="threshold")(hidden),
                "cls": keras.layers.Dense(1, activation="sigmoid", name="cls")(hidden),
            },
        )
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-3),
            loss={"threshold": "mse", "cls": "binary_crossentropy"},
        )
    # The whole recipe: phases, warm restarts, plateau, balancing, and the
    # batch schedule 64 -> 32 -> 16 (global batches) through `rebuild`.
    callbacks = km.preset("multiphase", rebuild=lambda batch_size: (x, y))
    adaptive = next(c for c in callbacks if isinstance(c, km.AdaptiveBatch))
    print(f"backend {BACKEND}: {replicas} replica(s)")
    history = model.fit(
        adaptive.data, epochs=args.epochs, verbose=0, callbacks=callbacks
    )
    logs = history.history
    for epoch in range(args.epochs):
        print(
            f"epoch {epoch:2d}  batch {logs['batch_size'][epoch]:3.0f}  "
            f"lr {logs['learning_rate'][epoch]:.2e}  "
            f"threshold {logs['threshold_loss'][epoch]:9.2f}  "
            f"cls {logs['cls_loss'][epoch]:.3f}  weights "
            f"{logs['threshold_loss_weight'][epoch]:.3g}/"
            f"{logs['cls_loss_weight'][epoch]:.3g}"
        )


if __name__ == "__main__":
    main()
