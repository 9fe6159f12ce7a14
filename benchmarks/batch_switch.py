"""Cost of a batch-size change with AdaptiveBatch, per backend.

Two fits in the same process on the same data (8192 samples, MLP), both
through AdaptiveBatch so that the data path is the same:
  fixed      batch size 64 every epoch (never changes)
  switching  alternating 64 and 128 every epoch (10 changes)
Prints, per backend: the median time of an epoch that changes size against a
steady epoch of the fixed fit, the number of traces of the train step (a
retrace costs a trace; PyTorch runs eagerly, so it has none), and the
process memory (RSS) after the 2nd and the
10th change: memory must not grow with repeated changes.

    python benchmarks/batch_switch.py [--backends tensorflow jax torch]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(changes):
    import keras
    import numpy as np

    from keras_multiphase import AdaptiveBatch

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8192, 32)).astype("float32")
    y = rng.normal(size=(8192, 1)).astype("float32")

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.rss = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)
            self.rss.append(rss_mb())

    def model():
        keras.utils.set_random_seed(0)
        m = keras.Sequential(
            [
                keras.Input((32,)),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(1),
            ]
        )
        m.compile(optimizer="adam", loss="mse")
        traces = [0]
        step = m.train_step

        def counting_step(*args, **kwargs):
            traces[0] += 1
            return step(*args, **kwargs)

        m.train_step = counting_step
        return m, traces

    epochs = changes + 1
    fixed, fixed_traces = model()
    timer = Timer()
    constant = AdaptiveBatch(lambda b: (x, y), {0: 64})
    fixed.fit(constant.data, epochs=epochs, verbose=0, callbacks=[constant, timer])
    steady = statistics.median(timer.times[1:])

    switching, traces = model()
    schedule = {e: (64 if e % 2 == 0 else 128) for e in range(epochs)}
    adaptive = AdaptiveBatch(lambda b: (x, y), schedule)
    timer2 = Timer()
    switching.fit(adaptive.data, epochs=epochs, verbose=0, callbacks=[adaptive, timer2])
    # Compare epochs of the same size: the 64-sample epochs after a change.
    change_64 = [t for e, t in enumerate(timer2.times) if e and e % 2 == 0]
    print(
        json.dumps(
            {
                "steady_s": steady,
                "change_s": statistics.median(change_64),
                "traces_fixed": fixed_traces[0],
                "traces_switching": traces[0],
                "rss_after_change_2": timer2.rss[2],
                "rss_after_change_10": timer2.rss[-1],
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.changes)
        return
    print(
        f"{'backend':<11} {'64-epoch after change / steady':>31} "
        f"{'traces fixed/switching':>23} {'RSS MB after change 2 -> 10':>28}"
    )
    for backend in args.backends:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--changes", str(args.changes)],
            env=dict(os.environ, KERAS_BACKEND=backend),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        traces = f"{r['traces_fixed']}/{r['traces_switching']}"
        if backend == "torch":
            traces = "eager"
        print(
            f"{backend:<11} {r['change_s'] / r['steady_s']:>31.3f} "
            f"{traces:>23} "
            f"{r['rss_after_change_2']:>13.0f} -> {r['rss_after_change_10']:<.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
