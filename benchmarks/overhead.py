"""Throughput of model.fit with this package's callbacks, per backend.

Compares, in the same process and interleaved:
  bare       model.fit with no callback
  multiphase PhaseLR + WarmupCosineRestarts + PlateauLR (in-graph schedule)
  per-batch  a Python callback that sets the rate before every batch (what
             users write today without this package)
and prints each one's steady-state steps/s (epochs after the first) as a
ratio to the bare fit, plus the one-off cost of the first epoch (tracing)
beyond a steady epoch. Target: multiphase within 2% of bare.

    python benchmarks/overhead.py [--backends tensorflow jax torch]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

RUNS = ("bare", "multiphase", "per-batch")


def child(repeats, epochs, steps_per_epoch):
    import keras
    import numpy as np

    from keras_multiphase import PhaseLR, PlateauLR, WarmupCosineRestarts

    class PerBatchLR(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            step = int(self.model.optimizer.iterations)
            self.model.optimizer.learning_rate = 1e-3 * (0.5 if step > 100 else 1.0)

    def callbacks(kind):
        if kind == "bare":
            return []
        if kind == "per-batch":
            return [PerBatchLR()]
        return [
            PhaseLR(
                [
                    {"name": "a", "lr": 1e-3, "fraction": 0.3},
                    {"name": "b", "lr": 5e-3, "fraction": 0.4},
                    {"name": "c", "lr": 1e-4},
                ]
            ),
            WarmupCosineRestarts(first_cycle_steps=50, phases=["b"]),
            PlateauLR(monitor="loss", patience=2),
        ]

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    rng = np.random.default_rng(0)
    samples = 32 * steps_per_epoch
    x = rng.normal(size=(samples, 64)).astype("float32")
    y = rng.normal(size=(samples, 1)).astype("float32")
    steps = steps_per_epoch
    steady = {k: [] for k in RUNS}
    first = {k: [] for k in RUNS}
    for _ in range(repeats):
        for kind in RUNS:
            keras.backend.clear_session()
            keras.utils.set_random_seed(0)
            model = keras.Sequential(
                [
                    keras.Input((64,)),
                    keras.layers.Dense(256, activation="relu"),
                    keras.layers.Dense(256, activation="relu"),
                    keras.layers.Dense(1),
                ]
            )
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
            timer = EpochTimer()
            timer.times = []
            model.fit(
                x,
                y,
                batch_size=32,
                epochs=1 + epochs,
                verbose=0,
                callbacks=[*callbacks(kind), timer],
            )
            steady_epoch = statistics.median(timer.times[1:])
            steady[kind].append(steady_epoch)
            first[kind].append(timer.times[0] - steady_epoch)
    rate = {k: steps / statistics.median(v) for k, v in steady.items()}
    rate.update({f"first:{k}": statistics.median(v) for k, v in first.items()})
    print(json.dumps(rate))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=512)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.repeats, args.epochs, args.steps_per_epoch)
        return
    print(
        f"{'backend':<11} {'bare steps/s':>12} "
        + " ".join(f"{k + ' / bare':>18}" for k in RUNS[1:])
        + "   first-epoch extra s (bare, multiphase, per-batch)"
    )
    for backend in args.backends:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--repeats",
                str(args.repeats),
                "--epochs",
                str(args.epochs),
                "--steps-per-epoch",
                str(args.steps_per_epoch),
            ],
            env=dict(os.environ, KERAS_BACKEND=backend),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            check=True,
        )
        rate = json.loads(out.stdout.strip().splitlines()[-1])
        ratios = " ".join(f"{rate[k] / rate['bare']:>18.3f}" for k in RUNS[1:])
        extra = ", ".join(f"{rate['first:' + k]:.2f}" for k in RUNS)
        print(f"{backend:<11} {rate['bare']:>12.0f} {ratios}   {extra}", flush=True)


if __name__ == "__main__":
    main()
