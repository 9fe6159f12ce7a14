"""The compiled train step alone: what the composed rate costs in it.

`overhead.py` times whole epochs of `fit`, where Python's loop around the
step and the machine's noise are larger than the step's own differences.
This script times only the train step built by `fit`, for: a bare model,
Keras's own `CosineDecayRestarts`, and `preset("multiphase",
peak_lr=1e-3)` (the step built by `fit` with the preset's callbacks
attached, taken at the end of its first epoch).

JAX: the jitted step called 2,000 times in a row on the same batch, best
of 5 blocks per configuration, rounds interleaved (the order rotated each
round), then the time to rebuild the bare step and make its first call
(what compiling the rates as constants would cost at each epoch-level
decision). TensorFlow: every configuration's `train_function` is built first,
then they are timed in interleaved blocks of 300 calls (`--rounds` x 10
alternations, the order rotated each time); printed: the median time, and
the median and 25-75% range of the difference with the bare step of the
same alternation, next to an A/A `bare (again)`.

    KERAS_BACKEND=jax python benchmarks/step_cost.py [--rounds 3]
    KERAS_BACKEND=tensorflow python benchmarks/step_cost.py [--rounds 4]
"""

import argparse
import time

import keras
import numpy as np

import keras_multiphase as km

CONFIGS = ("bare", "CosineDecayRestarts", "preset(multiphase)")


def fit_one_epoch(kind, x, y, at_epoch_end):
    """Fits one epoch of the configuration `kind`; `at_epoch_end(model)`
    runs at its end, with the train step the fit uses."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    rate = 1e-3
    if kind == "CosineDecayRestarts":
        rate = keras.optimizers.schedules.CosineDecayRestarts(1e-3, 2048)
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="mse")
    callbacks = (
        km.preset("multiphase", peak_lr=1e-3) if kind.startswith("preset") else []
    )

    class AtEpochEnd(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            at_epoch_end(self.model)

    model.fit(
        x, y, batch_size=16, epochs=1, verbose=0, callbacks=[*callbacks, AtEpochEnd()]
    )


def jax_step_time(kind, x, y, calls=2000, blocks=5):
    import jax

    found = {}

    def time_step(model):
        state = model._get_jax_state(  # syncs the state
            trainable_variables=True,
            non_trainable_variables=True,
            optimizer_variables=True,
            metrics_variables=True,
        )
        function, batch = model.train_function, [(x[:16], y[:16])]
        for _ in range(200):
            _, state = function(state, iter(batch))
        jax.block_until_ready(state)
        best = float("inf")
        for _ in range(blocks):
            start = time.perf_counter()
            for _ in range(calls):
                _, state = function(state, iter(batch))
            jax.block_until_ready(state)
            best = min(best, (time.perf_counter() - start) / calls)
        found["us"] = best * 1e6

    fit_one_epoch(kind, x, y, time_step)
    return found["us"]


def jax_rebuild_time(x, y, rebuilds=3):
    """Seconds to rebuild the bare train step and make its first call:
    what compiling the rates into the step as constants would cost at each
    epoch-level decision (a plateau reduction), instead of a table write."""
    found = []

    def time_rebuilds(model):
        for _ in range(rebuilds):
            model.make_train_function(force=True)
            start = time.perf_counter()
            model.train_on_batch(x[:16], y[:16])
            found.append(time.perf_counter() - start)

    fit_one_epoch("bare", x, y, time_rebuilds)
    return min(found)


def run_jax(rounds, x, y):
    best = {k: float("inf") for k in CONFIGS}
    for round_ in range(rounds):
        shift = round_ % len(CONFIGS)  # every configuration in every position
        for kind in CONFIGS[shift:] + CONFIGS[:shift]:
            best[kind] = min(best[kind], jax_step_time(kind, x, y))
    print("MLP 32-64-1, batch 16, Adam; compiled train step alone (JAX):")
    for kind in CONFIGS:
        added = best[kind] - best["bare"]
        print(f"  {kind:<22} {best[kind]:7.2f} us/step ({added:+.2f} vs bare)")
    rebuild = jax_rebuild_time(x, y)
    print(
        f"  a rebuild of the bare step and its first call: {rebuild * 1e3:.0f} ms "
        f"(= {rebuild / 2e-6:,.0f} steps at the ~2 us/step one state "
        "variable costs, overhead.py)"
    )


def run_tensorflow(rounds, x, y, calls=300):
    import tensorflow as tf

    configs = ("bare", "bare (again)", *CONFIGS[1:])
    steps = {}
    for kind in configs:

        def keep(model, kind=kind):
            batches = tf.data.Dataset.from_tensors((x[:16], y[:16])).repeat()
            steps[kind] = (model.train_function, iter(batches))

        fit_one_epoch(kind, x, y, keep)
    for function, batches in steps.values():
        for _ in range(calls):
            function(batches)
    times = {k: [] for k in configs}
    for turn in range(rounds * 10):
        shift = turn % len(configs)
        for kind in configs[shift:] + configs[:shift]:
            function, batches = steps[kind]
            start = time.perf_counter()
            for _ in range(calls):
                function(batches)
            times[kind].append((time.perf_counter() - start) / calls * 1e6)
    bare = np.asarray(times["bare"])
    print(
        "MLP 32-64-1, batch 16, Adam; compiled train step alone (TensorFlow), "
        f"{rounds * 10} interleaved blocks of {calls} calls:"
    )
    for kind in configs:
        added = np.asarray(times[kind]) - bare
        low, mid, high = np.percentile(added, [25, 50, 75])
        print(
            f"  {kind:<22} {np.median(times[kind]):7.1f} us/step "
            f"({mid:+.1f} vs bare, 25-75% {low:+.1f}..{high:+.1f})"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16 * 64, 32)).astype("float32")
    y = rng.normal(size=(16 * 64, 1)).astype("float32")
    backend = keras.backend.backend()
    if backend == "jax":
        run_jax(args.rounds, x, y)
    elif backend == "tensorflow":
        run_tensorflow(args.rounds, x, y)
    else:
        raise SystemExit("Run with KERAS_BACKEND=jax or tensorflow.")


if __name__ == "__main__":
    main()
