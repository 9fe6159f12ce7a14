"""Suite problems beyond flat-input MLPs: the models most Keras users train.

Each has one dominant regression head in raw units and small heads, as
`problems.py`'s do, and data made in code or shipped in scikit-learn's
wheel (nothing is downloaded):

- `conv`: a Conv2D net from scratch on scikit-learn's 8x8 digit images
  (raw pixels 0-16): `ink` (the total, ~300: dominant), `digit` (10
  classes), `loops` (small regression: ink in the middle rows over ink in
  all, ~0.3).
- `sequence`: an LSTM over 30 days of 3 raw daily signals (temperature
  ~15 +- 10, price ~200 +- 50, a promotion flag): `demand` (next week's
  units, ~3,000: dominant), `regime` (5 classes: the season's phase),
  `trend` (small regression, ~0 +- 1).
- `encoder`: a character-level transformer encoder (token ids, an
  embedding, one attention block, mean-pooled), pretrained once per seed on
  an upstream task (which of 8 motifs a string holds, 6,000 strings) and
  fine-tuned whole with new heads: `price` (~2,000: dominant), `fragile`
  (binary: a motif), `category` (5 classes). `encoder_random` is the same
  model with the encoder left at its random initialisation: what the
  pretraining is worth.
- `raw_flat`: an MLP on badly scaled raw inputs (an income in the tens of
  thousands, an age, six standard features): `spend` (~900: dominant),
  `tier` (3 classes), `churn` (binary).

`ARCHITECTURES` holds them (the suite's `--problems conv sequence ...`).
"""

from __future__ import annotations

import keras
import numpy as np
from problems import Problem, _heads, _split

VOCAB, LENGTH, MOTIFS = 24, 24, 8
_ENCODERS: dict = {}


def _split_arrays(x, y, seed, fraction=0.2):
    train, val = _split(len(x), fraction, seed)
    pick = lambda idx: {k: v[idx] for k, v in y.items()}  # noqa: E731
    return x[train], pick(train), x[val], pick(val)


# -- conv: Conv2D on digit images ------------------------------------------------
def conv_data(seed):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype("float32")  # 1,797 x 8 x 8, raw 0-16
    ink = images.sum((1, 2))
    y = {
        "ink": ink[:, None].astype("float32"),
        "digit": digits.target[:, None].astype("int32"),
        "loops": (images[:, 3:5].sum((1, 2)) / np.maximum(ink, 1))[:, None].astype(
            "float32"
        ),
    }
    return _split_arrays(images[..., None], y, seed)


def conv_model(seed):
    init = keras.initializers.GlorotUniform
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(16, 3, activation="relu", kernel_initializer=init(seed))(
        inputs
    )
    h = keras.layers.Conv2D(
        32, 3, activation="relu", kernel_initializer=init(seed + 1)
    )(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    spec = {"ink": (1, None), "digit": (10, "softmax"), "loops": (1, None)}
    return keras.Model(inputs, _heads(h, seed, spec), name="conv")


# -- sequence: an LSTM over daily signals -----------------------------------------
def sequence_data(seed):
    def make(n, s):
        rng = np.random.default_rng(s)
        day = np.arange(30)[None, :]
        phase = rng.uniform(0, 2 * np.pi, (n, 1))
        trend = rng.normal(0, 1, (n, 1))
        temperature = 15 + 10 * np.sin(2 * np.pi * day / 30 + phase)
        temperature += rng.normal(0, 2, (n, 30))
        price = 200 + 50 * rng.normal(size=(n, 1)) + trend * day
        promo = (rng.uniform(size=(n, 30)) < 0.15).astype("float32")
        x = np.stack([temperature, price, promo], axis=-1).astype("float32")
        base = 3000 + 40 * temperature[:, -7:].mean(1) - 6 * (price[:, -1] - 200)
        demand = base + 800 * promo[:, -7:].mean(1) + rng.normal(0, 60, n)
        regime = (np.floor((phase[:, 0] % (2 * np.pi)) / (2 * np.pi) * 5)) % 5
        return x, {
            "demand": demand[:, None].astype("float32"),
            "regime": regime[:, None].astype("int32"),
            "trend": trend.astype("float32"),
        }

    return (*make(3000, seed), *make(600, 1000 + seed))


def sequence_model(seed):
    init = keras.initializers.GlorotUniform
    inputs = keras.Input((30, 3), name="days")
    h = keras.layers.LSTM(32, kernel_initializer=init(seed), name="lstm")(inputs)
    h = keras.layers.Dense(32, "relu", kernel_initializer=init(seed + 1))(h)
    spec = {"demand": (1, None), "regime": (5, "softmax"), "trend": (1, None)}
    return keras.Model(inputs, _heads(h, seed, spec), name="sequence")


# -- encoder: a pretrained transformer encoder on token ids ------------------------
def _strings(n, rng):
    """Token strings (0 is padding, never used) with motifs planted."""
    tokens = rng.integers(1, VOCAB, (n, LENGTH))
    motifs = rng.uniform(size=(n, MOTIFS)) < 0.3
    for m in range(MOTIFS):
        at = rng.integers(0, LENGTH - 2, n)
        rows = np.flatnonzero(motifs[:, m])
        for offset, token in enumerate((1 + m, 1 + (m + 3) % 8, 9 + m)):
            tokens[rows, at[rows] + offset] = token
    return tokens.astype("int32"), motifs.astype("float32")


def _encoder(seed):
    init = keras.initializers.GlorotUniform
    tokens = keras.Input((LENGTH,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(VOCAB, 32, embeddings_initializer="uniform")(tokens)
    # Where a token is comes from a convolution over its neighbours (no
    # custom position layer: the model stays plain Keras).
    h = keras.layers.Conv1D(
        32, 3, padding="same", activation="relu", kernel_initializer=init(seed + 3)
    )(h)
    attended = keras.layers.MultiHeadAttention(4, 8, kernel_initializer=init(seed))(
        h, h
    )
    h = keras.layers.LayerNormalization()(h + attended)
    ffn = keras.layers.Dense(64, "relu", kernel_initializer=init(seed + 1))(h)
    ffn = keras.layers.Dense(32, kernel_initializer=init(seed + 2))(ffn)
    h = keras.layers.LayerNormalization()(h + ffn)
    pooled = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(tokens, pooled, name="encoder")


def _pretrained_encoder(seed):
    """The encoder trained on the upstream task, cached per seed."""
    if seed not in _ENCODERS:
        keras.utils.set_random_seed(seed)
        tokens, motifs = _strings(6000, np.random.default_rng(500 + seed))
        encoder = _encoder(seed)
        inputs = keras.Input((LENGTH,), dtype="int32")
        upstream = keras.Model(
            inputs, keras.layers.Dense(MOTIFS, "sigmoid")(encoder(inputs))
        )
        upstream.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
        upstream.fit(tokens, motifs, batch_size=64, epochs=6, verbose=0)
        _ENCODERS[seed] = encoder.get_weights()
    return _ENCODERS[seed]


def encoder_data(seed):
    def make(n, s):
        rng = np.random.default_rng(s)
        tokens, motifs = _strings(n, rng)
        price = 2000 + 600 * motifs[:, 0] - 400 * motifs[:, 1] + 300 * motifs[:, 2]
        price += 200 * motifs[:, 3] * motifs[:, 4] + rng.normal(0, 50, n)
        category = (motifs[:, 4] + 2 * motifs[:, 5] + motifs[:, 6]).clip(0, 4)
        return tokens, {
            "price": price[:, None].astype("float32"),
            "fragile": motifs[:, 7:8],
            "category": category[:, None].astype("int32"),
        }

    return (*make(2000, seed), *make(500, 1000 + seed))


def encoder_model(seed, pretrained=True):
    tokens = keras.Input((LENGTH,), dtype="int32", name="tokens")
    encoder = _encoder(seed)
    if pretrained:
        encoder.set_weights(_pretrained_encoder(seed))
    spec = {"price": (1, None), "fragile": (1, "sigmoid"), "category": (5, "softmax")}
    name = "encoder" if pretrained else "encoder_random"
    return keras.Model(tokens, _heads(encoder(tokens), seed, spec), name=f"{name}_m")


# -- raw_flat: badly scaled raw inputs ---------------------------------------------
def raw_flat_data(seed):
    def make(n, s):
        rng = np.random.default_rng(s)
        income = rng.lognormal(np.log(40000), 0.5, n)
        age = rng.uniform(18, 80, n)
        z = rng.normal(size=(n, 6))
        spend = 0.015 * income + 4 * (age - 50) + 80 * z[:, 0] + rng.normal(0, 40, n)
        tier = np.digitize(income, [30000, 60000])
        churn = z[:, 1] + 0.03 * (age - 50) + 0.5 * rng.normal(size=n) > 0
        x = np.concatenate([income[:, None], age[:, None], z], axis=1)
        return x.astype("float32"), {
            "spend": spend[:, None].astype("float32"),
            "tier": tier[:, None].astype("int32"),
            "churn": churn[:, None].astype("float32"),
        }

    return (*make(4000, seed), *make(800, 1000 + seed))


def raw_flat_model(seed):
    from problems import _trunk

    inputs = keras.Input((8,), name="x")
    spec = {"spend": (1, None), "tier": (3, "softmax"), "churn": (1, "sigmoid")}
    heads = _heads(_trunk(inputs, seed), seed, spec)
    return keras.Model(inputs, heads, name="raw_flat")


ENCODER_LOSSES = {
    "price": "mse",
    "fragile": "binary_crossentropy",
    "category": "sparse_categorical_crossentropy",
}
ENCODER_METRICS = {"price": ["mae"], "fragile": ["accuracy"], "category": ["accuracy"]}
ARCHITECTURES = {
    "conv": Problem(
        "conv",
        conv_data,
        conv_model,
        {"ink": "mse", "digit": "sparse_categorical_crossentropy", "loops": "mse"},
        {"ink": ["mae"], "digit": ["accuracy"], "loops": ["mae"]},
        "ink",
        "Conv2D from scratch on 8x8 digit images (1,438 training images)",
    ),
    "sequence": Problem(
        "sequence",
        sequence_data,
        sequence_model,
        {"demand": "mse", "regime": "sparse_categorical_crossentropy", "trend": "mse"},
        {"demand": ["mae"], "regime": ["accuracy"], "trend": ["mae"]},
        "demand",
        "LSTM over 30 days x 3 raw signals, 3,000 sequences",
    ),
    "encoder": Problem(
        "encoder",
        encoder_data,
        encoder_model,
        ENCODER_LOSSES,
        ENCODER_METRICS,
        "price",
        "pretrained transformer encoder on token ids, fine-tuned whole, 2,000 strings",
    ),
    "encoder_random": Problem(
        "encoder_random",
        encoder_data,
        lambda seed: encoder_model(seed, pretrained=False),
        ENCODER_LOSSES,
        ENCODER_METRICS,
        "price",
        "the encoder problem with the encoder at its random initialisation",
    ),
    "raw_flat": Problem(
        "raw_flat",
        raw_flat_data,
        raw_flat_model,
        {
            "spend": "mse",
            "tier": "sparse_categorical_crossentropy",
            "churn": "binary_crossentropy",
        },
        {"spend": ["mae"], "tier": ["accuracy"], "churn": ["accuracy"]},
        "spend",
        "MLP on raw inputs of badly mixed scales (an income ~40,000), 4,000 rows",
    ),
}
