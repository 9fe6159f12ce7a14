"""Problems written after `normalize_heads(units="auto")`'s rule was chosen
on the 13 of `problems.py` and `problems_arch.py`: the check on models the
rule never saw (issue 35's "keep holding out"). They also serve the
fine-tuning section (issue 37): a conv backbone with BatchNormalization.

- `conv_bn`: a functional Conv2D backbone with BatchNormalization, nested,
  pretrained once per seed on scikit-learn's digits 0-4 (8x8 images, raw
  pixels 0-16), fine-tuned on digits 5-9 with new heads: `energy` (the sum
  of squared pixels, ~3,800: dominant), `digit` (5 classes) and `top` (the
  top half's share of the ink, ~0.5: small regression). `conv_bn_random`
  is the same with the backbone at its random initialisation.
- `attention`: a self-attention block from scratch over 20 steps of 4 raw
  sensor channels (a pressure ~1,000 +- 10, a temperature ~20 +- 8, a flow
  ~500 +- 200, a valve flag): `load` (the flow's total, ~10,000:
  dominant), `hottest` (which third of the window holds the highest
  temperature: 3 classes) and `drift` (the pressure's slope per step,
  ~0 +- 1: small regression).
- `gru_ft` (written after `+auto+bn` was chosen on all of the above): a
  nested GRU backbone holding its own `Normalization` (adapted upstream:
  raw sensors in, as a keras-hub backbone takes them), pretrained to find
  the hottest third of the window, fine-tuned with new heads on the same
  sensors: `load` (dominant), `valves` (how often the valve was open, 4
  bins) and `drift`. `gru_ft_random`: the backbone at its random
  initialisation (its Normalization left at the identity).
"""

from __future__ import annotations

import keras
import numpy as np
from problems import Problem, _heads
from problems_arch import _split_arrays

_BACKBONES: dict = {}


# -- conv_bn: a pretrained conv backbone with BatchNormalization ---------------------
def _conv_backbone(seed):
    init = keras.initializers.GlorotUniform
    image = keras.Input((8, 8, 1), name="image")
    h = image
    for i, filters in enumerate((16, 32)):
        h = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer=init(seed + i),
        )(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.Activation("relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(image, h, name="backbone")


def _images():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype("float32")[..., None], digits.target


def _pretrained_conv(seed):
    """The backbone trained on digits 0-4, cached per seed."""
    if seed not in _BACKBONES:
        keras.utils.set_random_seed(seed)
        images, label = _images()
        upstream = label < 5
        backbone = _conv_backbone(seed)
        inputs = keras.Input((8, 8, 1))
        model = keras.Model(inputs, keras.layers.Dense(5, "softmax")(backbone(inputs)))
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        model.fit(
            images[upstream], label[upstream], batch_size=32, epochs=10, verbose=0
        )
        _BACKBONES[seed] = backbone.get_weights()
    return _BACKBONES[seed]


def conv_bn_data(seed):
    images, label = _images()
    keep = label >= 5
    images, label = images[keep], label[keep]
    ink = images.sum((1, 2, 3))
    y = {
        "energy": (images**2).sum((1, 2, 3))[:, None].astype("float32"),
        "digit": (label % 5)[:, None].astype("int32"),
        "top": (images[:, :4].sum((1, 2, 3)) / np.maximum(ink, 1))[:, None].astype(
            "float32"
        ),
    }
    return _split_arrays(images, y, seed, fraction=0.25)


def conv_bn_model(seed, pretrained=True):
    image = keras.Input((8, 8, 1), name="image")
    backbone = _conv_backbone(seed)
    if pretrained:
        backbone.set_weights(_pretrained_conv(seed))
    spec = {"energy": (1, None), "digit": (5, "softmax"), "top": (1, None)}
    name = "conv_bn" if pretrained else "conv_bn_random"
    return keras.Model(image, _heads(backbone(image), seed, spec), name=name)


# -- attention: self-attention from scratch over raw sensor channels ----------------
def attention_data(seed):
    def make(n, s):
        rng = np.random.default_rng(s)
        step = np.arange(20)[None, :]
        drift = rng.normal(0, 1, (n, 1))
        pressure = 1000 + 10 * rng.normal(size=(n, 1)) + drift * step
        pressure = pressure + rng.normal(0, 0.5, (n, 20))
        peak = rng.integers(0, 20, (n, 1))
        temperature = (
            20
            + 8 * rng.normal(size=(n, 1))
            + 6 * np.exp(-0.5 * ((step - peak) / 1.5) ** 2)
        )
        temperature = temperature + rng.normal(0, 0.3, (n, 20))
        valve = (rng.uniform(size=(n, 20)) < 0.5).astype("float32")
        flow = (500 + 200 * rng.normal(size=(n, 1))) * (0.5 + valve)
        flow = flow + rng.normal(0, 20, (n, 20))
        x = np.stack([pressure, temperature, flow, valve], -1).astype("float32")
        hottest = np.minimum(temperature.argmax(1) * 3 // 20, 2)
        return x, {
            "load": flow.sum(1, keepdims=True).astype("float32"),
            "hottest": hottest[:, None].astype("int32"),
            "drift": drift.astype("float32"),
        }

    return (*make(3000, seed), *make(600, 1000 + seed))


def attention_model(seed):
    init = keras.initializers.GlorotUniform
    steps = keras.Input((20, 4), name="sensors")
    h = keras.layers.Dense(32, kernel_initializer=init(seed), name="embed")(steps)
    h = keras.layers.Conv1D(32, 3, padding="same", activation="relu")(h)
    attended = keras.layers.MultiHeadAttention(4, 8, kernel_initializer=init(seed + 1))(
        h, h
    )
    h = keras.layers.LayerNormalization()(h + attended)
    h = keras.layers.GlobalAveragePooling1D()(h)
    h = keras.layers.Dense(32, "relu", kernel_initializer=init(seed + 2))(h)
    spec = {"load": (1, None), "hottest": (3, "softmax"), "drift": (1, None)}
    return keras.Model(steps, _heads(h, seed, spec), name="attention")


# -- gru_ft: a pretrained GRU backbone with its own input normalisation -------------
_GRUS: dict = {}


def _gru_backbone(seed):
    init = keras.initializers.GlorotUniform
    steps = keras.Input((20, 4), name="sensors")
    norm = keras.layers.Normalization(name="sensor_norm")
    h = keras.layers.GRU(32, kernel_initializer=init(seed), name="gru")(norm(steps))
    return keras.Model(steps, h, name="backbone"), norm


def _pretrained_gru(seed):
    """The backbone (its Normalization adapted to the upstream inputs)
    trained to tell which third of the window is hottest, cached per seed."""
    if seed not in _GRUS:
        keras.utils.set_random_seed(seed)
        x, y, _, _ = attention_data(500 + seed)
        backbone, norm = _gru_backbone(seed)
        norm.adapt(x)
        inputs = keras.Input((20, 4))
        model = keras.Model(inputs, keras.layers.Dense(3, "softmax")(backbone(inputs)))
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        model.fit(x, y["hottest"], batch_size=64, epochs=5, verbose=0)
        _GRUS[seed] = backbone.get_weights()
    return _GRUS[seed]


def gru_ft_data(seed):
    """The attention problem's sensors; heads `load` (dominant), `valves`
    (how many of the 20 steps had the valve open, binned in 4: classes)
    and `drift` (small regression)."""
    x, y, xv, yv = attention_data(seed)

    def heads(x, y):
        opened = x[:, :, 3].sum(1)
        bins = np.digitize(opened, [8, 10, 12])
        return {
            "load": y["load"],
            "valves": bins[:, None].astype("int32"),
            "drift": y["drift"],
        }

    return x, heads(x, y), xv, heads(xv, yv)


def gru_ft_model(seed, pretrained=True):
    steps = keras.Input((20, 4), name="sensors")
    backbone, _ = _gru_backbone(seed)
    if pretrained:
        backbone.set_weights(_pretrained_gru(seed))
    spec = {"load": (1, None), "valves": (4, "softmax"), "drift": (1, None)}
    name = "gru_ft" if pretrained else "gru_ft_random"
    return keras.Model(steps, _heads(backbone(steps), seed, spec), name=name)


CONV_BN_LOSSES = {
    "energy": "mse",
    "digit": "sparse_categorical_crossentropy",
    "top": "mse",
}
CONV_BN_METRICS = {"energy": ["mae"], "digit": ["accuracy"], "top": ["mae"]}
GRU_LOSSES = {
    "load": "mse",
    "valves": "sparse_categorical_crossentropy",
    "drift": "mse",
}
GRU_METRICS = {"load": ["mae"], "valves": ["accuracy"], "drift": ["mae"]}
HOLDOUT = {
    "conv_bn": Problem(
        "conv_bn",
        conv_bn_data,
        conv_bn_model,
        CONV_BN_LOSSES,
        CONV_BN_METRICS,
        "energy",
        "Conv2D+BN backbone pretrained on digits 0-4, fine-tuned on 5-9 (673 images)",
    ),
    "conv_bn_random": Problem(
        "conv_bn_random",
        conv_bn_data,
        lambda seed: conv_bn_model(seed, pretrained=False),
        CONV_BN_LOSSES,
        CONV_BN_METRICS,
        "energy",
        "the conv_bn problem with the backbone at its random initialisation",
    ),
    "gru_ft": Problem(
        "gru_ft",
        gru_ft_data,
        gru_ft_model,
        GRU_LOSSES,
        GRU_METRICS,
        "load",
        "GRU backbone (its own Normalization) pretrained upstream, new heads, 3,000",
    ),
    "gru_ft_random": Problem(
        "gru_ft_random",
        gru_ft_data,
        lambda seed: gru_ft_model(seed, pretrained=False),
        GRU_LOSSES,
        GRU_METRICS,
        "load",
        "the gru_ft problem with the backbone at its random initialisation",
    ),
    "attention": Problem(
        "attention",
        attention_data,
        attention_model,
        {"load": "mse", "hottest": "sparse_categorical_crossentropy", "drift": "mse"},
        {"load": ["mae"], "hottest": ["accuracy"], "drift": ["mae"]},
        "load",
        "self-attention from scratch over 20 steps x 4 raw sensor channels, 3,000",
    ),
}
