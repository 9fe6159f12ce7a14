"""The compiled train step alone, on JAX: what the composed rate costs in it.

`overhead.py` times whole epochs of `fit`, where Python's loop around the
step and the machine's noise are larger than the step's own differences.
This script times only the jitted train step (JAX backend), called 2,000
times in a row on the same batch, for: a bare model, Keras's own
`CosineDecayRestarts`, and `preset("multiphase", peak_lr=1e-3)` (the step
built by `fit` with the preset's callbacks attached, taken at the end of
its first epoch). Best of 5 blocks, per configuration, rounds interleaved
(the order rotated each round).

    KERAS_BACKEND=jax python benchmarks/step_cost.py [--rounds 3]
"""

import argparse
import time

import keras
import numpy as np

import keras_multiphase as km

CONFIGS = ("bare", "CosineDecayRestarts", "preset(multiphase)")


def step_time(kind, x, y, calls=2000, blocks=5):
    import jax

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
    found = {}

    class TimeStep(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            model = self.model  # syncs the state
            state = model._get_jax_state(
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

    model.fit(
        x, y, batch_size=16, epochs=1, verbose=0, callbacks=[*callbacks, TimeStep()]
    )
    return found["us"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if keras.backend.backend() != "jax":
        raise SystemExit("Run with KERAS_BACKEND=jax.")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16 * 64, 32)).astype("float32")
    y = rng.normal(size=(16 * 64, 1)).astype("float32")
    best = {k: float("inf") for k in CONFIGS}
    for round_ in range(args.rounds):
        shift = round_ % len(CONFIGS)  # every configuration in every position
        for kind in CONFIGS[shift:] + CONFIGS[:shift]:
            best[kind] = min(best[kind], step_time(kind, x, y))
    print("MLP 32-64-1, batch 16, Adam; compiled train step alone (JAX):")
    for kind in CONFIGS:
        added = best[kind] - best["bare"]
        print(f"  {kind:<22} {best[kind]:7.2f} us/step ({added:+.2f} vs bare)")


if __name__ == "__main__":
    main()
