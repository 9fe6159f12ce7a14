"""scale_outputs: heads learn standardised targets, predictions stay in
original units, the file loads without this package."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import two_heads

import keras_multiphase as km


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = {
        "price": (700 + 150 * x[:, :1] + rng.normal(0, 5, (n, 1))).astype("float32"),
        "cls": (x[:, 1:2] > 0).astype("float32"),
    }
    return x, y


def test_predicts_in_original_units_with_matching_loss_weights():
    x, y = data()
    scaled = km.scale_outputs(two_heads(), y)
    mean, sd = y["price"].mean(), y["price"].std()
    assert scaled.loss_weights["price"] == pytest.approx(1 / sd**2, rel=1e-5)
    assert scaled.loss_weights["cls"] == 1.0
    assert list(scaled.mean) == ["price"]  # 0/1 labels are left alone
    assert scaled.model.output_names == two_heads().output_names
    raw = two_heads().predict(x, verbose=0)
    out = scaled.model.predict(x, verbose=0)
    np.testing.assert_allclose(out["price"], raw["price"] * sd + mean, rtol=1e-5)
    np.testing.assert_allclose(out["cls"], raw["cls"], rtol=1e-6)
    mae = km.scale_outputs(two_heads(), y, loss="mae")
    assert mae.loss_weights["price"] == pytest.approx(1 / sd, rel=1e-5)


def test_training_is_training_on_the_standardised_target():
    """SGD on the scaled model with its loss weights moves every weight
    exactly as SGD on the plain model with the z-scored target."""
    x, y = data()
    mean, sd = y["price"].mean(), y["price"].std()
    scaled = km.scale_outputs(two_heads(), y)
    scaled.model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss={"price": "mse", "cls": "binary_crossentropy"},
        loss_weights=scaled.loss_weights,
    )
    plain = two_heads()
    plain.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss={"price": "mse", "cls": "binary_crossentropy"},
    )
    z = dict(y, price=(y["price"] - mean) / sd)
    h1 = scaled.model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    h2 = plain.fit(x, z, batch_size=16, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(scaled.model.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
    # Logged losses: the component in original units, the total weighted.
    np.testing.assert_allclose(
        h1.history["price_loss"], np.array(h2.history["price_loss"]) * sd**2, rtol=1e-3
    )
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-3)


def test_inputs_are_standardised_with_x():
    x, y = data()
    x = x * 100 + 500
    scaled = km.scale_outputs(two_heads(), y, x=x)
    norm = scaled.model.get_layer("features_norm")
    standardised = keras.ops.convert_to_numpy(norm(x))
    np.testing.assert_allclose(standardised.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(standardised.std(0), 1, atol=1e-3)


def test_a_feature_constant_in_x_is_centred_not_blown_up():
    x, y = data()
    x[:, 2] = 0.0  # a pixel that is blank in every training image
    scaled = km.scale_outputs(two_heads(), y, x=x)
    norm = scaled.model.get_layer("features_norm")
    later = np.array([[0.0, 0.0, 3.0]], "float32")  # not blank later
    standardised = keras.ops.convert_to_numpy(norm(later))
    np.testing.assert_allclose(standardised[0, 2], 3.0)  # not 3e7


def test_saved_model_loads_without_the_package(tmp_dir):
    x, y = data()
    scaled = km.scale_outputs(two_heads(), y, x=x)
    scaled.model.compile(
        optimizer="adam",
        loss={"price": "mse", "cls": "binary_crossentropy"},
        loss_weights=scaled.loss_weights,
    )
    scaled.model.fit(x, y, epochs=1, verbose=0)
    path = os.path.join(tmp_dir, "scaled.keras")
    scaled.model.save(path)
    np.save(os.path.join(tmp_dir, "x.npy"), x)
    code = (
        "import sys, numpy as np, keras\n"
        f"m = keras.saving.load_model({path!r})\n"
        f"p = m.predict(np.load({os.path.join(tmp_dir, 'x.npy')!r}), verbose=0)\n"
        f"np.save({os.path.join(tmp_dir, 'p.npy')!r}, p['price'])\n"
        "assert 'keras_multiphase' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ
    )
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(
        np.load(os.path.join(tmp_dir, "p.npy")),
        scaled.model.predict(x, verbose=0)["price"],
        rtol=1e-5,
    )


def test_which_heads_are_scaled():
    inputs = keras.Input((2,))
    model = keras.Model(
        inputs,
        [keras.layers.Dense(1, name=n)(inputs) for n in ("a", "b", "c")],
    )
    y = [
        np.array([[0.5], [2.0], [3.5]], "float32"),  # regression
        np.array([[0], [3], [9]], "int32"),  # class indices
        np.array([[0.0], [1.0], [2.0]], "float32"),  # integer-valued labels
    ]
    scaled = km.scale_outputs(model, y)
    assert list(scaled.mean) == ["a"]
    assert isinstance(scaled.model.output, list) and len(scaled.model.output) == 3
    chosen = km.scale_outputs(model, y, outputs=["c"])
    assert list(chosen.mean) == ["c"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"y": {"nope": np.ones((4, 1))}}, "nope"),
        ({"outputs": ["nope"]}, "outputs"),
        ({"loss": "huber"}, "loss"),
        ({"x": [np.ones((4, 3)), np.ones((4, 3))]}, "one array per model input"),
        ({"x": keras.utils.PyDataset()}, "arrays of numbers"),
    ],
)
def test_bad_arguments(kwargs, match):
    _, y = data(4)
    args = {"y": y, **kwargs}
    with pytest.raises(ValueError, match=match):
        km.scale_outputs(two_heads(), **args)


def test_an_output_named_like_the_model():
    inputs = keras.Input((3,))
    h = keras.layers.Dense(4)(inputs)
    heads = [keras.layers.Dense(1, name=n)(h) for n in ("price", "cls")]
    model = keras.Model(inputs, heads, name="price")
    y = [np.linspace(400, 1000, 8)[:, None], np.linspace(0, 0.5, 8)[:, None]]
    with pytest.raises(ValueError, match="'price'.*Received: outputs"):
        km.scale_outputs(model, y)


def test_subclassed_model_is_refused():
    class Mine(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="functional"):
        km.scale_outputs(Mine(), np.ones((4, 1)))


def test_a_sequential_model_is_scaled_and_bad_x_is_named():
    # The docstring promises a Sequential built with an Input.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="price")])
    y = np.random.default_rng(0).uniform(400, 1000, (32, 1)).astype("float32")
    scaled = km.scale_outputs(model, y)
    prediction = scaled.model.predict(np.zeros((2, 2)), verbose=0)
    assert np.allclose(prediction, y.mean(), rtol=1e-4)
    with pytest.raises(ValueError, match=r"takes samples of shape \(2,\).*\(3,\)"):
        km.scale_outputs(model, y, x=np.ones((8, 3)))
