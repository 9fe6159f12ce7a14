"""The benchmark problems: one dominant unnormalised regression head plus
small heads, raw inputs (the shape of the collapse-then-plateau run).

Each problem is a `Problem`: `data(seed)` gives `(x, y, xv, yv)` (the
split depends on the seed), `model(seed)` an uncompiled model with the
seed's initial weights, and the losses, metrics and which head dominates.

- `collapse`: `keras_multiphase.synthetic`, the project's own problem
  (9,600 samples; `threshold` ~ a raw `level` input in [400, 1000]).
- `cancer`: real data shipped inside scikit-learn's wheel (the Wisconsin
  breast cancer set, 569 tumours): from the 20 raw "mean" and "error"
  measurements predict `area` (worst area, 185 to 4,254: dominant),
  `malignant` (binary) and `concavity` (worst concavity, 0 to 1.25).
- `finetune`: a trunk pretrained on an upstream task (8 standardised
  nonlinear signals of the inputs, 8,000 samples, Adam 1e-3, 8 epochs),
  then fine-tuned whole with new heads on 3,000 samples: `value` (~1,500,
  dominant), `grade` (4 classes), `score` (small regression).
- `noisy`: a dominant head, linear in a raw `capacity` input (100 to 300)
  and the features, with label noise of sd 25: it is learned within a few
  epochs, and then the loss hovers above the noise floor (625) by an amount
  set by the rate (gradient noise): a decaying rate is the cure. 9,600
  samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import numpy as np

from keras_multiphase import synthetic

BATCH = 48


@dataclasses.dataclass
class Problem:
    name: str
    data: Callable  # seed -> (x, y, xv, yv)
    model: Callable  # seed -> uncompiled keras.Model
    losses: dict
    metrics: dict
    dominant: str
    about: str


def _trunk(inputs, seed, width=64, prefix="trunk"):
    init = keras.initializers.GlorotUniform
    h = keras.layers.Dense(
        width, activation="relu", kernel_initializer=init(seed), name=f"{prefix}1"
    )(inputs)
    return keras.layers.Dense(
        width, activation="relu", kernel_initializer=init(seed + 1), name=f"{prefix}2"
    )(h)


def _heads(h, seed, spec):
    """spec: name -> (units, activation)."""
    init = keras.initializers.GlorotUniform
    return {
        name: keras.layers.Dense(
            units, activation=act, kernel_initializer=init(seed + 10 + i), name=name
        )(h)
        for i, (name, (units, act)) in enumerate(spec.items())
    }


def _split(n, fraction, seed):
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * (1 - fraction)))
    return order[:cut], order[cut:]


def _split_tabular(x, y, seed, fraction=0.2):
    """`(x, y, xv, yv)`: a seeded split of arrays `x` and dict `y`."""
    train, val = _split(len(x), fraction, seed)
    pick = lambda idx: {k: v[idx] for k, v in y.items()}  # noqa: E731
    return x[train], pick(train), x[val], pick(val)


# -- collapse ------------------------------------------------------------------
def collapse_data(seed):
    x, y = synthetic.make_problem(9600, seed=seed)
    xv, yv = synthetic.make_problem(1200, seed=1000 + seed)
    return x, y, xv, yv


# -- cancer (real data) --------------------------------------------------------
def cancer_data(seed):
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    names = list(d.feature_names)
    x = d.data[:, :20].astype("float32")  # "mean *" and "* error"
    y = {
        "area": d.data[:, [names.index("worst area")]].astype("float32"),
        "malignant": (1 - d.target)[:, None].astype("float32"),
        "concavity": d.data[:, [names.index("worst concavity")]].astype("float32"),
    }
    return _split_tabular(x, y, seed)


def cancer_model(seed):
    inputs = keras.Input((20,), name="x")
    h = _trunk(inputs, seed)
    spec = {"area": (1, None), "malignant": (1, "sigmoid"), "concavity": (1, None)}
    return keras.Model(inputs, _heads(h, seed, spec), name="cancer")


# -- finetune --------------------------------------------------------------------
_FT_FEATURES = 20


def _ft_directions():
    rng = np.random.default_rng(7)
    u = rng.normal(size=(8, _FT_FEATURES))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def _ft_inputs(n, rng):
    z = rng.normal(size=(n, _FT_FEATURES - 4))
    raw = rng.uniform(50.0, 400.0, size=(n, 4))  # raw, unnormalised readings
    return z, raw, np.concatenate([z, raw], axis=1).astype("float32")


def _ft_signals(z, raw):
    u = _ft_directions()[:, : _FT_FEATURES - 4]
    zr = (raw - 225.0) / 100.0
    s = np.tanh(z @ u.T) + 0.3 * (z @ u.T) ** 2 + 0.2 * zr @ np.ones((4, 8))
    return (s - s.mean(0)) / s.std(0)


def finetune_data(seed, n=3000):
    rng = np.random.default_rng(seed)
    out = []
    for count in (n, n // 4):
        z, raw, x = _ft_inputs(count, rng)
        s = _ft_signals(z, raw)
        value = 1500 + 300 * s[:, 0] + 2.0 * raw[:, 0] + rng.normal(0, 30, count)
        grade = np.digitize(s[:, 1] + s[:, 2], [-1.0, 0.0, 1.0])
        score = 0.5 * s[:, 3] + rng.normal(0, 0.1, count)
        out += [
            x,
            {
                "value": value[:, None].astype("float32"),
                "grade": grade[:, None].astype("int32"),
                "score": score[:, None].astype("float32"),
            },
        ]
    return tuple(out)


_PRETRAINED: dict = {}


def _pretrained_trunk(seed):
    """Trunk weights after the upstream task (cached per seed)."""
    if seed not in _PRETRAINED:
        keras.utils.set_random_seed(seed)
        rng = np.random.default_rng(500 + seed)
        z, raw, x = _ft_inputs(8000, rng)
        target = _ft_signals(z, raw).astype("float32")
        inputs = keras.Input((_FT_FEATURES,), name="x")
        h = _trunk(inputs, seed)
        up = keras.layers.Dense(8, name="upstream")(h)
        model = keras.Model(inputs, up)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        model.fit(x, target, batch_size=64, epochs=8, verbose=0)
        _PRETRAINED[seed] = [
            model.get_layer(n).get_weights() for n in ("trunk1", "trunk2")
        ]
    return _PRETRAINED[seed]


def finetune_model(seed):
    inputs = keras.Input((_FT_FEATURES,), name="x")
    h = _trunk(inputs, seed)
    spec = {"value": (1, None), "grade": (4, "softmax"), "score": (1, None)}
    model = keras.Model(inputs, _heads(h, seed, spec), name="finetune")
    for name, weights in zip(
        ("trunk1", "trunk2"), _pretrained_trunk(seed), strict=True
    ):
        model.get_layer(name).set_weights(weights)
    return model


# -- digits (held out: not in the suite's default problems) --------------------
def _digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data.astype("float32"), digits.target


def _backbone(seed):
    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, "relu", kernel_initializer=init(seed)),
            keras.layers.Dense(64, "relu", kernel_initializer=init(seed + 1)),
        ],
        name="backbone",
    )


def _pretrained_backbone(seed, upstream_low=True):
    """A backbone trained on digits 0-4 (or 5-9), cached per seed."""
    key = ("digits", seed, upstream_low)
    if key not in _PRETRAINED:
        keras.utils.set_random_seed(seed)
        x, label = _digits()
        upstream = (label < 5) if upstream_low else (label >= 5)
        inputs = keras.Input((64,))
        backbone = _backbone(seed)
        model = keras.Model(inputs, keras.layers.Dense(5, "softmax")(backbone(inputs)))
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        model.fit(x[upstream], label[upstream] % 5, batch_size=32, epochs=10, verbose=0)
        _PRETRAINED[key] = backbone.get_weights()
    return _PRETRAINED[key]


def _digit_targets(seed, low, targets):
    """Digits 5-9 (or 0-4; raw pixels 0-16), split per seed, with the
    targets `targets(x, label)` makes."""
    x, label = _digits()
    keep = (label < 5) if low else (label >= 5)
    x, label = x[keep], label[keep]
    y = targets(x, label)
    train, val = _split(len(x), 0.25, seed)
    pick = lambda idx: {k: v[idx] for k, v in y.items()}  # noqa: E731
    return x[train], pick(train), x[val], pick(val)


def digits_data(seed, low=False):
    """`ink` (the total, ~300: dominant) and `digit` (5 classes)."""
    return _digit_targets(
        seed,
        low,
        lambda x, label: {
            "ink": x.sum(1, keepdims=True).astype("float32"),
            "digit": (label % 5)[:, None].astype("int32"),
        },
    )


def digits_rows_data(seed):
    """Digits 5-9: `rows` (each of the 8 rows' ink, ~40 each: dominant) and
    `odd` (binary)."""
    return _digit_targets(
        seed,
        False,
        lambda x, label: {
            "rows": x.reshape(-1, 8, 8).sum(2).astype("float32"),
            "odd": (label % 2)[:, None].astype("float32"),
        },
    )


def _digits_model(seed, upstream_low, spec, name):
    """The pretrained backbone under new heads `spec`."""
    inputs = keras.Input((64,), name="pixels")
    backbone = _backbone(seed)
    backbone.set_weights(_pretrained_backbone(seed, upstream_low))
    return keras.Model(inputs, _heads(backbone(inputs), seed, spec), name=name)


def digits_model(seed, upstream_low=True):
    spec = {"ink": (1, None), "digit": (5, "softmax")}
    return _digits_model(seed, upstream_low, spec, "digits")


def digits_rows_model(seed):
    spec = {"rows": (8, None), "odd": (1, "sigmoid")}
    return _digits_model(seed, True, spec, "digits_rows")


# -- noisy ---------------------------------------------------------------------
def noisy_data(seed):
    def make(n, s):
        rng = np.random.default_rng(s)
        z = rng.normal(size=(n, 16))
        dirs = np.random.default_rng(3).normal(size=(4, 16))
        _, b, c, d = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        capacity = rng.uniform(100.0, 300.0, size=n)
        # Linear and quickly learned: what is left is label noise (variance
        # 625, the floor) and the jitter a fixed rate adds to it.
        demand = 0.5 * capacity + 20 * (z @ b) + rng.normal(0, 25, n)
        cls = ((z @ c) + 0.5 * rng.normal(size=n) > 0).astype("float32")
        small = 0.3 * np.sin(2 * (z @ d)) + rng.normal(0, 0.05, n)
        x = np.concatenate([z, capacity[:, None]], axis=1).astype("float32")
        return x, {
            "demand": demand[:, None].astype("float32"),
            "cls": cls[:, None],
            "small": small[:, None].astype("float32"),
        }

    return (*make(9600, seed), *make(1200, 1000 + seed))


def noisy_model(seed):
    inputs = keras.Input((17,), name="x")
    h = _trunk(inputs, seed)
    spec = {"demand": (1, None), "cls": (1, "sigmoid"), "small": (1, None)}
    return keras.Model(inputs, _heads(h, seed, spec), name="noisy")


# -- wine, diabetes (real, from scratch; held out) ------------------------------
def wine_data(seed):
    """Scikit-learn's wine: from 12 raw measurements predict `proline` (278
    to 1,680: dominant), the `cultivar` (3 classes) and the `hue` (0.48 to
    1.71)."""
    from sklearn.datasets import load_wine

    d = load_wine()
    names = list(d.feature_names)
    keep = [i for i, n in enumerate(names) if n not in ("proline", "hue")]
    x = d.data[:, keep].astype("float32")
    y = {
        "proline": d.data[:, [names.index("proline")]].astype("float32"),
        "cultivar": d.target[:, None].astype("int32"),
        "hue": d.data[:, [names.index("hue")]].astype("float32"),
    }
    return _split_tabular(x, y, seed)


def wine_model(seed):
    inputs = keras.Input((11,), name="x")
    h = _trunk(inputs, seed)
    spec = {"proline": (1, None), "cultivar": (3, "softmax"), "hue": (1, None)}
    return keras.Model(inputs, _heads(h, seed, spec), name="wine")


def diabetes_data(seed):
    """Scikit-learn's diabetes, raw units: from age, BMI, blood pressure and
    five serum measurements predict the disease `progression` (25 to 346:
    dominant), `sex` (binary) and `s4` (the cholesterol ratio, 2 to 9)."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes(scaled=False)
    names = list(d.feature_names)
    keep = [i for i, n in enumerate(names) if n not in ("sex", "s4")]
    x = d.data[:, keep].astype("float32")
    y = {
        "progression": d.target[:, None].astype("float32"),
        "sex": (d.data[:, [names.index("sex")]] > 1.5).astype("float32"),
        "s4": d.data[:, [names.index("s4")]].astype("float32"),
    }
    return _split_tabular(x, y, seed)


def diabetes_model(seed):
    inputs = keras.Input((8,), name="x")
    h = _trunk(inputs, seed)
    spec = {"progression": (1, None), "sex": (1, "sigmoid"), "s4": (1, None)}
    return keras.Model(inputs, _heads(h, seed, spec), name="diabetes")


PROBLEMS = {
    "collapse": Problem(
        "collapse",
        collapse_data,
        lambda seed: synthetic.make_model(seed),
        synthetic.LOSSES,
        synthetic.METRICS,
        "threshold",
        "synthetic (the project's), 9,600 samples",
    ),
    "cancer": Problem(
        "cancer",
        cancer_data,
        cancer_model,
        {"area": "mse", "malignant": "binary_crossentropy", "concavity": "mse"},
        {"area": ["mae"], "malignant": ["accuracy"], "concavity": ["mae"]},
        "area",
        "real: scikit-learn breast cancer, 455 training tumours",
    ),
    "finetune": Problem(
        "finetune",
        finetune_data,
        finetune_model,
        {"value": "mse", "grade": "sparse_categorical_crossentropy", "score": "mse"},
        {"value": ["mae"], "grade": ["accuracy"], "score": ["mae"]},
        "value",
        "pretrained trunk, new heads, 3,000 samples",
    ),
    "noisy": Problem(
        "noisy",
        noisy_data,
        noisy_model,
        {"demand": "mse", "cls": "binary_crossentropy", "small": "mse"},
        {"demand": ["mae"], "cls": ["accuracy"], "small": ["mae"]},
        "demand",
        "gradient-noise plateau: label noise sd 25 (floor 625), 9,600 samples",
    ),
}
# Problems the suite's default runs do not contain (`--problems digits
# wine`): checks on data nothing was chosen on. The digits ones fine-tune a
# pretrained backbone; wine and diabetes (tabular, small, from scratch) were
# added after `normalize_heads(x=)`'s path was chosen, to check it (its
# starting bias and momentum were set after seeing them).
HELD_OUT = {
    "digits": Problem(
        "digits",
        digits_data,
        digits_model,
        {"ink": "mse", "digit": "sparse_categorical_crossentropy"},
        {"ink": ["mae"], "digit": ["accuracy"]},
        "ink",
        "real: scikit-learn digits 5-9 (1,348 training images), backbone "
        "pretrained on digits 0-4",
    ),
    "digits_low": Problem(
        "digits_low",
        lambda seed: digits_data(seed, low=True),
        lambda seed: digits_model(seed, upstream_low=False),
        {"ink": "mse", "digit": "sparse_categorical_crossentropy"},
        {"ink": ["mae"], "digit": ["accuracy"]},
        "ink",
        "real: scikit-learn digits 0-4, backbone pretrained on digits 5-9",
    ),
    "digits_rows": Problem(
        "digits_rows",
        digits_rows_data,
        digits_rows_model,
        {"rows": "mse", "odd": "binary_crossentropy"},
        {"rows": ["mae"], "odd": ["accuracy"]},
        "rows",
        "real: scikit-learn digits 5-9, backbone pretrained on digits 0-4; "
        "new heads: each row's ink (8 values) and odd/even",
    ),
    "wine": Problem(
        "wine",
        wine_data,
        wine_model,
        {"proline": "mse", "cultivar": "sparse_categorical_crossentropy", "hue": "mse"},
        {"proline": ["mae"], "cultivar": ["accuracy"], "hue": ["mae"]},
        "proline",
        "real: scikit-learn wine, 142 training wines, from scratch (90 steps)",
    ),
    "diabetes": Problem(
        "diabetes",
        diabetes_data,
        diabetes_model,
        {"progression": "mse", "sex": "binary_crossentropy", "s4": "mse"},
        {"progression": ["mae"], "sex": ["accuracy"], "s4": ["mae"]},
        "progression",
        "real: scikit-learn diabetes (raw units), 354 training patients, from scratch",
    ),
}
