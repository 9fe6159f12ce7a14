"""stable_heads: a saturated classifier head learns, on every backend, as
Keras's TensorFlow backend makes it learn (the logit loss's gradient)."""

import os

import keras
import numpy as np
import pytest

import keras_multiphase as km


def _head(activation, units, kernel=100.0):
    """x = 1 -> logits 100 * ones(units): saturated from the start."""
    inputs = keras.Input((1,))
    out = keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=keras.initializers.Constant(kernel),
        use_bias=False,
        name="label",
    )(inputs)
    return keras.Model(inputs, {"label": out})


def _one_sgd_step(model, loss, y, lr=0.1):
    model.compile(keras.optimizers.SGD(lr), {"label": loss})
    before = np.array(model.get_layer("label").kernel.numpy())
    x = np.ones((4, 1), "float32")
    model.fit(x, {"label": y}, batch_size=4, epochs=1, verbose=0)
    return np.array(model.get_layer("label").kernel.numpy()) - before


def test_a_saturated_sigmoid_head_moves_by_the_logit_gradient():
    y = np.zeros((4, 1), "float32")  # p = sigmoid(100) ~ 1, wrong
    moved = _one_sgd_step(
        km.stable_heads(_head("sigmoid", 1)), "binary_crossentropy", y
    )
    # d loss / d logit = p - y ~ 1; the kernel moves by -lr * 1 * x.
    np.testing.assert_allclose(moved, [[-0.1]], rtol=1e-4)


def test_a_saturated_softmax_head_moves_by_the_logit_gradient():
    model = _head("softmax", 3)
    model.get_layer("label").kernel.assign([[100.0, 0.0, 0.0]])  # p ~ (1, 0, 0)
    y = np.full((4, 1), 2, "int32")  # the class with p ~ 0
    moved = _one_sgd_step(km.stable_heads(model), "sparse_categorical_crossentropy", y)
    # p - onehot(2) ~ (1, 0, -1).
    np.testing.assert_allclose(moved, [[-0.1, 0.0, 0.1]], atol=1e-5)


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow",
    reason="TensorFlow's Keras already differentiates the logits",
)
def test_without_it_the_saturated_head_does_not_move():
    y = np.zeros((4, 1), "float32")
    moved = _one_sgd_step(_head("sigmoid", 1), "binary_crossentropy", y)
    np.testing.assert_array_equal(moved, 0.0)  # why stable_heads exists


def test_probabilities_are_unchanged():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=30, size=(64, 1)).astype("float32")  # some saturate
    for activation, units in (("sigmoid", 1), ("softmax", 4)):
        model = _head(activation, units, kernel=1.0)
        model.get_layer("label").kernel.assign(rng.normal(size=(1, units)))
        before = model.predict(x, verbose=0)["label"]
        after = km.stable_heads(model).predict(x, verbose=0)["label"]
        np.testing.assert_allclose(after, before, atol=units * 2e-7 + 1e-7)
        assert after.min() > 0 and after.max() < 1


def test_other_heads_are_left_alone_and_a_fit_model_is_rebuilt():
    inputs = keras.Input((1,))
    model = keras.Model(
        inputs,
        {
            "value": keras.layers.Dense(1, name="value")(inputs),
            "label": keras.layers.Dense(
                1,
                "sigmoid",
                kernel_initializer=keras.initializers.Constant(100.0),
                name="label",
            )(inputs),
        },
    )
    model.compile("sgd", {"value": "mse", "label": "binary_crossentropy"})
    x = np.ones((4, 1), "float32")
    y = {"value": np.zeros((4, 1)), "label": np.zeros((4, 1), "float32")}
    model.fit(x, y, verbose=0)  # builds (and traces) the step
    km.stable_heads(model)
    assert model.get_layer("value").activation is keras.activations.linear
    kernel = model.get_layer("label").kernel
    before = np.array(kernel.numpy())
    model.fit(x, y, batch_size=4, verbose=0)
    assert np.all(np.array(kernel.numpy()) < before)  # the new step moved it


def test_saves_and_loads(tmp_path):
    model = km.stable_heads(_head("softmax", 3, kernel=1.0))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("label").activation is km.stable_softmax
    x = np.linspace(-5, 5, 8, dtype="float32")[:, None]
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0)["label"], model.predict(x, verbose=0)["label"]
    )


def test_bad_models_are_refused():
    inputs = keras.Input((2,))
    linear = keras.Model(inputs, keras.layers.Dense(1, name="value")(inputs))
    with pytest.raises(ValueError, match="no output layer with a 'sigmoid'"):
        km.stable_heads(linear)
    with pytest.raises(ValueError, match="Argument `model`"):
        km.stable_heads("model")
