"""A synthetic multi-head problem that reproduces collapse-then-plateau.

Used by `benchmarks/collapse_plateau.py` and the example notebooks, and
shipped so a notebook can `pip install` the package and get the same data.

How the data is made (`make_problem`): 16 standard-normal features plus one
unnormalised feature, `level`, uniform in [400, 1000] (raw units, the way a
sensor reading or a price arrives). Three targets share them:

- `threshold` (regression, unnormalised, the dominant head):
  `level + 10 * sin(3 x . a) + 3 * (x . b) + noise(sd 3)`. A network that
  outputs ~0 starts with a mean squared error of order 5e5; copying `level`
  takes it to the residual (~65) within an epoch; the residual's
  oscillating part (variance 50) is learned slowly, so the loss then
  creeps (the best possible is the noise variance, 9).
- `cls` (binary classification, the first small head): `1` where
  `x . c + 0.8 * x0 * x1 > 0`, with 5% of labels flipped; cross-entropy
  starts at ~0.69.
- `reg` (small regression, the second small head):
  `0.5 * tanh(x . d) + 0.3 * x2 ** 2 + noise(sd 0.1)`; MSE starts near 0.4.

`a`, `b`, `c`, `d` are fixed random unit directions (a generator seeded
with 0), so every seed is the same problem with different samples and
initial weights.
"""

from __future__ import annotations

import keras
import numpy as np

OUTPUTS = ("threshold", "cls", "reg")
FEATURES = 16


def _directions() -> np.ndarray:
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(4, FEATURES))
    return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)


def make_problem(samples: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Returns `(x, y)`: `x` float32 of shape `(samples, 17)` (16 normal
    features then `level`), `y` a dict of float32 `(samples, 1)` arrays
    keyed by `OUTPUTS`."""
    a, b, c, d = _directions()
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(samples, FEATURES))
    level = rng.uniform(400.0, 1000.0, size=(samples, 1))
    threshold = (
        level
        + 10.0 * np.sin(3.0 * (z @ a))[:, None]
        + 3.0 * (z @ b)[:, None]
        + rng.normal(0.0, 3.0, (samples, 1))
    )
    logit = z @ c + 0.8 * z[:, 0] * z[:, 1]
    label = (logit > 0).astype("float64")
    flip = rng.random(samples) < 0.05
    label[flip] = 1.0 - label[flip]
    reg = 0.5 * np.tanh(z @ d) + 0.3 * z[:, 2] ** 2 + rng.normal(0.0, 0.1, samples)
    x = np.concatenate([z, level], axis=1).astype("float32")
    y = {
        "threshold": threshold.astype("float32"),
        "cls": label[:, None].astype("float32"),
        "reg": reg[:, None].astype("float32"),
    }
    return x, y


def make_model(seed: int = 0, width: int = 64) -> keras.Model:
    """A shared trunk (two Dense layers) with one head per output, not
    compiled; the same `seed` gives the same initial weights."""
    init = keras.initializers.GlorotUniform
    inputs = keras.Input((FEATURES + 1,), name="x")
    h = keras.layers.Dense(
        width, activation="relu", kernel_initializer=init(seed), name="trunk1"
    )(inputs)
    h = keras.layers.Dense(
        width, activation="relu", kernel_initializer=init(seed + 1), name="trunk2"
    )(h)
    outputs = {
        "threshold": keras.layers.Dense(
            1, kernel_initializer=init(seed + 2), name="threshold"
        )(h),
        "cls": keras.layers.Dense(
            1, activation="sigmoid", kernel_initializer=init(seed + 3), name="cls"
        )(h),
        "reg": keras.layers.Dense(1, kernel_initializer=init(seed + 4), name="reg")(h),
    }
    return keras.Model(inputs, outputs, name="collapse_plateau")


LOSSES = {"threshold": "mse", "cls": "binary_crossentropy", "reg": "mse"}
METRICS = {"threshold": ["mae"], "cls": ["accuracy"], "reg": ["mae"]}
