"""for_inference: a model from the head helpers loads and predicts in a
process that never imports keras_multiphase."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_multiphase as km

# Runs in a fresh interpreter: loads the saved model with plain Keras and
# writes its predictions; fails if keras_multiphase was imported.
_LOAD = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    model = keras.models.load_model(sys.argv[1])
    x = np.load(sys.argv[2])
    out = model.predict(x, verbose=0)
    assert not any(m.startswith("keras_multiphase") for m in sys.modules)
    np.savez(sys.argv[3], **{k: np.asarray(v) for k, v in out.items()})
    """
)


def _trained_helper_model():
    """Three heads through normalize_heads(x=) and scale_outputs: every
    kind of layer the helpers add, trained a few steps."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = {
        "price": (500 + 100 * x[:, :1]).astype("float32"),
        "sold": (x[:, 1:2] > 0).astype("float32"),
        "kind": rng.integers(0, 3, size=(64,)),
    }
    inputs = keras.Input((4,), name="features")
    h = keras.layers.Dense(8, "relu")(inputs)
    model = keras.Model(
        inputs,
        {
            "price": keras.layers.Dense(1, name="price")(h),
            "sold": keras.layers.Dense(1, "sigmoid", name="sold")(h),
            "kind": keras.layers.Dense(3, "softmax", name="kind")(h),
        },
    )
    model = km.normalize_heads(model, y, x=x)
    scaled = km.scale_outputs(model, {"price": y["price"]})
    model = scaled.model
    model.compile(
        "adam",
        {
            "price": "mse",
            "sold": "binary_crossentropy",
            "kind": "sparse_categorical_crossentropy",
        },
    )
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model, x, y


def _load_elsewhere(path, x, tmp_path):
    x_path, out_path = tmp_path / "x.npy", tmp_path / "out.npz"
    np.save(x_path, x)
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, str(path), str(x_path), str(out_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, out_path


def test_the_served_model_loads_without_the_package(tmp_path):
    model, x, _ = _trained_helper_model()
    want = model.predict(x, verbose=0)
    served = km.for_inference(model)
    path = tmp_path / "served.keras"
    served.save(path)
    done, out_path = _load_elsewhere(path, x, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    got = dict(np.load(out_path))
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_the_training_model_itself_needs_the_package(tmp_path):
    # Why for_inference exists: the stable activations are this package's.
    model, x, _ = _trained_helper_model()
    path = tmp_path / "trained.keras"
    model.save(path)
    done, _ = _load_elsewhere(path, x, tmp_path)
    assert done.returncode != 0
    assert "stable_" in done.stderr


def _activations(model) -> list:
    """Every layer's activation, nested models' layers included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _activations(layer)
        found.append(getattr(layer, "activation", None))
    return found


def test_for_inference_leaves_the_original_model_training():
    model, x, y = _trained_helper_model()
    served = km.for_inference(model)
    assert getattr(served, "optimizer", None) is None
    activations = _activations(model)
    assert km.stable_sigmoid in activations and km.stable_softmax in activations
    served_activations = _activations(served)
    assert keras.activations.sigmoid in served_activations
    assert keras.activations.softmax in served_activations
    assert km.stable_sigmoid not in served_activations
    before = [np.array(w) for w in served.get_weights()]
    model.fit(x, y, epochs=1, verbose=0)
    for old, new in zip(before, served.get_weights(), strict=True):
        np.testing.assert_array_equal(old, np.asarray(new))


def test_for_inference_refuses_what_it_cannot_copy():
    with pytest.raises(ValueError, match="Received: model=3"):
        km.for_inference(3)

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

    model = Subclassed()
    model(np.zeros((1, 2), "float32"))
    with pytest.raises(ValueError, match="Subclassed could not be"):
        km.for_inference(model)
