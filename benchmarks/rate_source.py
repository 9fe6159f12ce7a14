"""How the rate reaches the compiled step, and what each way costs per step.

A JAX `fit` of a small model with one or two output heads (MLP 32-64,
batch 16, 1,024 steps per epoch, Adam), the rate given to the optimizer in
one of these ways:

  bare                  a float: Keras's own `learning_rate` variable
  CosineDecayRestarts   Keras's schedule: computed from the step, no variable
  scalar variable       a schedule returning one scalar variable (the
                        optimizer then has no `learning_rate` variable: as
                        many state variables as `bare`)
  table row             a schedule taking the step's row of an (8192, 1)
                        table variable (as many state variables as `bare`;
                        what this package's rate table does)
  table row, one more scalar
                        the same, with one scalar variable more that
                        nothing reads
  next row in the step  a schedule returning a scalar variable and writing
                        the next step's row of the table into it (one state
                        variable more than `bare`)
  preset                `preset("multiphase", peak_lr=1e-3)`
  preset, one more scalar
                        the same, with one scalar optimizer variable more
                        that nothing reads

Each run's time is its fastest epoch after the first, paired with the
`bare` run of the same round (configurations interleaved, the order
rotated each round); printed: the median over rounds of the microseconds
per step added, with the 25-75% range, and the throughput as a ratio to
`bare`. Run it on one core, where JAX's figures resolve a few us:

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
    KERAS_BACKEND=jax taskset -c 1 python benchmarks/rate_source.py [--rounds 6]

The schedules here are measuring devices, not usable schedules: `next row in
the step` writes its variable on every read of the rate (Keras reads it
again per variable for weight decay).
"""

import argparse

import keras
import numpy as np
from _fits import EpochTimer, mlp
from keras import ops

import keras_multiphase as km

CONFIGS = (
    "bare",
    "CosineDecayRestarts",
    "scalar variable",
    "table row",
    "table row, one more scalar",
    "next row in the step",
    "preset",
    "preset, one more scalar",
)
ROWS = 8192
STEPS = 1024


class _FromVariables(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, kind):
        self.kind = kind
        self.rate = self.table = None

    def attach(self, optimizer, trainable_variables):
        """Adds the variables this kind reads to the optimizer's state."""
        optimizer.build(trainable_variables)
        if self.kind != "table row":
            self.rate = optimizer.add_variable((), initializer="ones", name="rate")
            self.rate.assign(1e-3)
        if self.kind != "scalar variable":
            self.table = optimizer.add_variable(
                (ROWS, 1), initializer="ones", name="table"
            )
            self.table.assign(np.full((ROWS, 1), 1e-3, "float32"))
        if self.kind == "table row, one more scalar":
            self.kind = "table row"  # the scalar stays, read by nothing

    def __call__(self, step):
        if self.kind == "scalar variable":
            return self.rate.value
        index = ops.cast(ops.mod(step, ROWS), "int32")
        if self.kind == "table row":
            return ops.take(self.table.value, index, axis=0)[0]
        current = self.rate.value
        following = ops.cast(ops.mod(step + 1, ROWS), "int32")
        self.rate.assign(ops.take(self.table.value, following, axis=0)[0])
        return current


def build(kind, heads, x, y):
    keras.utils.set_random_seed(0)
    model, loss, targets = mlp(x.shape[1], (64,), heads, y)
    schedule = None
    if kind == "CosineDecayRestarts":
        rate = keras.optimizers.schedules.CosineDecayRestarts(1e-3, 2 * STEPS)
    elif kind in (
        "scalar variable",
        "table row",
        "table row, one more scalar",
        "next row in the step",
    ):
        rate = schedule = _FromVariables(kind)
    else:
        rate = 1e-3
    optimizer = keras.optimizers.Adam(rate)
    model.compile(optimizer=optimizer, loss=loss)
    if schedule is not None:
        schedule.attach(optimizer, model.trainable_variables)
    if kind == "preset, one more scalar":
        optimizer.build(model.trainable_variables)
        optimizer.add_variable((), name="unused")
    return model, targets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--heads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if keras.backend.backend() != "jax":
        raise SystemExit("Run with KERAS_BACKEND=jax.")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * 16, 32)).astype("float32")
    y = rng.normal(size=(STEPS * 16, 1)).astype("float32")
    for heads in args.heads:
        runs = {k: [] for k in CONFIGS}
        for round_ in range(args.rounds):
            shift = round_ % len(CONFIGS)
            for kind in CONFIGS[shift:] + CONFIGS[:shift]:
                keras.backend.clear_session()
                model, targets = build(kind, heads, x, y)
                callbacks = (
                    km.preset("multiphase", peak_lr=1e-3)
                    if kind.startswith("preset")
                    else []
                )
                timer = EpochTimer()
                model.fit(
                    x,
                    targets,
                    batch_size=16,
                    epochs=1 + args.epochs,
                    shuffle=False,
                    verbose=0,
                    callbacks=[*callbacks, timer],
                )
                runs[kind].append(min(timer.times[1:]) / STEPS * 1e6)
        bare = np.asarray(runs["bare"])
        print(
            f"\n{heads} head(s): MLP 32-64-1, batch 16, {STEPS} steps/epoch, "
            f"{args.rounds} rounds; bare {np.median(bare):.1f} us/step"
        )
        for kind in CONFIGS[1:]:
            times = np.asarray(runs[kind])
            low, mid, high = np.percentile(times - bare, [25, 50, 75])
            ratio = np.median(bare / times)
            print(
                f"  {kind:<22} {mid:+6.1f} us/step ({low:+.1f}..{high:+.1f}), "
                f"{ratio:.3f} x bare"
            )


if __name__ == "__main__":
    main()
