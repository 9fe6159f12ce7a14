"""The effect-measuring model used across the tests, and NumPy references.

`rate_probe()` is a single weight `w` (no bias) trained by SGD on
`loss = mean(y_pred)` with `x = 1`: each step moves `w` by exactly `-lr`,
so `-w` is the sum of the rates the compiled step really applied.
"""

import math

import keras
import numpy as np
from keras import ops

BACKEND = keras.backend.backend()
SPE_VALUES = (1,) if BACKEND == "torch" else (1, 4)


# Three phases, the middle one entered by a linear transition: the
# composition tests' base schedule (see `phase_ref(s, [0.01, 0.04, 0.002],
# [6, 8], ["step", "linear", "step"], [0, 2, 0])`).
PHASES = [
    {"name": "start", "lr": 0.01, "steps": 6},
    {
        "name": "middle",
        "lr": 0.04,
        "steps": 8,
        "transition": "linear",
        "transition_steps": 2,
    },
    {"name": "end", "lr": 0.002},
]


@keras.saving.register_keras_serializable(package="tests")
def mean_prediction(y_true, y_pred):
    return ops.mean(y_pred)


def rate_probe(optimizer=None, steps_per_execution=1, jit_compile="auto"):
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(learning_rate=0.1),
        loss=mean_prediction,
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    return model


def probe_data(steps_per_epoch, batch_size=2):
    n = steps_per_epoch * batch_size
    return np.ones((n, 1), "float32"), np.zeros((n, 1), "float32")


def weight(model) -> float:
    return float(np.asarray(model.layers[0].kernel.numpy()).ravel()[0])


class WeightLog(keras.callbacks.Callback):
    """Records `-w` (the cumulated applied rate) at each epoch end."""

    def __init__(self):
        super().__init__()
        self.totals = []

    def on_epoch_end(self, epoch, logs=None):
        self.totals.append(-weight(self.model))

    def per_epoch(self):
        return np.diff([0.0, *self.totals])


class Script(keras.callbacks.Callback):
    """Writes scripted values under `key` in each epoch's logs."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = float(self.values[min(epoch, len(self.values) - 1)])


def fit_probe(callbacks, epochs, steps_per_epoch, model=None, **compile_kw):
    model = model or rate_probe(**compile_kw)
    log = WeightLog()
    x, y = probe_data(steps_per_epoch)
    history = model.fit(
        x,
        y,
        batch_size=2,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[*callbacks, log],
    )
    return model, log, history.history


def applied_per_epoch(rate_fn, epochs, steps_per_epoch):
    """Sum of `rate_fn(step)` over each epoch's steps."""
    return np.array(
        [
            sum(rate_fn(e * steps_per_epoch + s) for s in range(steps_per_epoch))
            for e in range(epochs)
        ]
    )


# -- NumPy references, written independently of the keras.ops code --------
def phase_ref(step, rates, lengths, transitions=None, transition_steps=None):
    transitions = transitions or ["step"] * len(rates)
    transition_steps = transition_steps or [0] * len(rates)
    starts = [0]
    for length in lengths:
        starts.append(starts[-1] + length)
    k = max(i for i, s in enumerate(starts) if step >= s)
    if k == 0:
        return rates[0]
    u, span = step - starts[k], transition_steps[k]
    if transitions[k] == "step" or span == 0 or u >= span:
        return rates[k]
    frac = u / span
    if transitions[k] == "linear":
        return rates[k - 1] + (rates[k] - rates[k - 1]) * frac
    return rates[k] + (rates[k - 1] - rates[k]) * (1 + math.cos(math.pi * frac)) / 2


def wcr_ref(
    t,
    first,
    mult=1.0,
    decay=1.0,
    min_ratio=0.0,
    warmup=0,
    start_ratio=0.0,
    each=False,
    max_cycles=None,
):
    if t < warmup:
        return start_ratio + (1 - start_ratio) * t / warmup
    u, i, start = t - warmup, 0, 0
    while True:
        length = first * mult**i  # timm: no rounding
        if u < start + length:
            break
        start += length
        i += 1
    if max_cycles is not None and i >= max_cycles:
        return min_ratio
    peak = max(decay**i, min_ratio)
    local = u - start
    wi = warmup if (each and i >= 1) else 0
    if local < wi:
        return start_ratio * peak + (peak - start_ratio * peak) * local / wi
    v = (local - wi) / (length - wi)
    return min_ratio + (peak - min_ratio) * (1 + math.cos(math.pi * v)) / 2


def assert_applied(log, want):
    """Per-epoch applied rates equal `want`, to float32 accumulation error."""
    scale = max(abs(t) for t in log.totals) or 1.0
    np.testing.assert_allclose(log.per_epoch(), want, rtol=1e-5, atol=1e-6 * scale)


def two_heads(
    seed=0,
    names=("price", "cls"),
    activation="tanh",
    input_name="features",
    trunk_name=None,
):
    """A 3-input model with one hidden layer of 8, a regression head and a
    sigmoid classifier head (`names`), seeded initial weights."""
    init = keras.initializers.GlorotUniform
    inputs = keras.Input((3,), name=input_name)
    h = keras.layers.Dense(
        8, activation=activation, kernel_initializer=init(seed), name=trunk_name
    )(inputs)
    value, label = names
    return keras.Model(
        inputs,
        {
            value: keras.layers.Dense(1, kernel_initializer=init(seed + 1), name=value)(
                h
            ),
            label: keras.layers.Dense(
                1, activation="sigmoid", kernel_initializer=init(seed + 2), name=label
            )(h),
        },
    )
