"""normalize_heads: each small head reads unit-scale features through its
own BatchNormalization; the dominant head trains exactly as before."""

import warnings

import keras
import numpy as np
import pytest
from helpers import two_heads

import keras_multiphase as km


def _model(seed=0):
    """Raw inputs of scale ~700: the trunk's features are hundreds wide."""
    return two_heads(seed, ("value", "label"), "relu", "x", trunk_name="trunk")


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    level = rng.uniform(400, 1000, (n, 1))
    x = np.concatenate([level, z], axis=1).astype("float32")
    y = {
        "value": (level + 10 * z[:, :1]).astype("float32"),
        "label": (level + 30 * z[:, 1:] > 700).astype("float32"),
    }
    return x, y


def _sgd_step(model, x, y, weights, lr=1e-6):
    model.compile(
        keras.optimizers.SGD(lr),
        {"value": "mse", "label": "binary_crossentropy"},
        loss_weights=weights,
    )
    before = {w.path: np.array(w.numpy()) for w in model.trainable_weights}
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    return {
        w.path: np.array(w.numpy()) - before[w.path] for w in model.trainable_weights
    }


@pytest.mark.parametrize("shortcut", [False, True])
def test_the_dominant_head_and_the_trunk_train_as_before(shortcut):
    x, y = _data()
    plain = _sgd_step(_model(), x, y, {"value": 1.0, "label": 0.0})
    model = km.normalize_heads(_model(), y, x=x if shortcut else None, units="raw")
    normalized = _sgd_step(model, x, y, {"value": 1.0, "label": 0.0})
    for path in ("trunk/kernel", "value/kernel", "value/bias"):
        np.testing.assert_allclose(normalized[path], plain[path], rtol=1e-4)


def test_the_small_head_reads_unit_scale_features():
    x, y = _data()
    lr = 1e-3
    # stable_heads alone: the raw model's saturated head has no gradient
    # on JAX and PyTorch.
    plain = _sgd_step(km.stable_heads(_model()), x, y, {"value": 0.0, "label": 1.0}, lr)
    model = km.normalize_heads(_model(), y)
    normalized = _sgd_step(model, x, y, {"value": 0.0, "label": 1.0}, lr)
    # d loss / d kernel = mean((p - y) * features): |p - y| <= 1, and the
    # normalised features have unit sd, so no entry moves by more than lr
    # * sqrt(n); the raw features move the kernel by hundreds of lr.
    assert np.abs(normalized["label/kernel"]).max() < 10 * lr
    assert np.abs(plain["label/kernel"]).max() > 100 * lr
    # Its pull on the trunk is divided by the features' scale.
    assert (
        np.abs(normalized["trunk/kernel"]).max()
        < np.abs(plain["trunk/kernel"]).max() / 10
    )


def _label_accuracy(model, x, y):
    """The small classifier's training accuracy after 5 epochs of Adam."""
    model.compile(
        keras.optimizers.Adam(1e-2),
        {"value": "mse", "label": "binary_crossentropy"},
        metrics={"label": ["accuracy"]},
    )
    history = model.fit(x, y, batch_size=48, epochs=5, verbose=0)
    return history.history["label_accuracy"][-1]


def test_a_small_classifier_learns_beside_the_dominant_head():
    x, y = _data(n=960)
    accuracy = {}
    for name in ("stable only", "normalized"):
        keras.utils.set_random_seed(0)
        model = km.stable_heads(_model())
        if name == "normalized":
            model = km.normalize_heads(model, y)
        accuracy[name] = _label_accuracy(model, x, y)
    assert accuracy["normalized"] > 0.85, accuracy
    assert accuracy["stable only"] < 0.7, accuracy  # why normalize_heads exists


def _blind_trunk():
    """`_model()` whose frozen trunk reads only the first input (`level`)."""
    model = _model()
    trunk = model.get_layer("trunk")
    kernel, bias = trunk.get_weights()
    kernel[1:] = 0.0
    trunk.set_weights([kernel, bias])
    trunk.trainable = False
    return model


def test_the_shortcut_gives_a_small_head_what_the_trunk_does_not_compute():
    x, y = _data(n=960)
    # Not linear in the inputs, and from inputs the trunk ignores.
    y["label"] = (np.abs(x[:, 2:]) > 0.67).astype("float32")
    accuracy, start = {}, {}
    for shortcut in (False, True):
        keras.utils.set_random_seed(0)
        model = km.normalize_heads(
            _blind_trunk(), y, x=x if shortcut else None, units="raw"
        )
        start[shortcut] = model.predict(x[:8], verbose=0)
        accuracy[shortcut] = _label_accuracy(model, x, y)
    for name in ("value", "label"):  # zero at the start: the same function
        np.testing.assert_allclose(start[True][name], start[False][name], rtol=1e-6)
    assert accuracy[True] > 0.9, accuracy
    assert accuracy[False] < 0.7, accuracy


def test_a_small_regression_head_starts_at_its_targets_mean():
    x, y = _data()
    inputs = keras.Input((3,), name="x")
    h = keras.layers.Dense(8, "relu", name="trunk")(inputs)
    names = ("value", "label", "aux")
    heads = [keras.layers.Dense(1, name=n)(h) for n in names]
    original = keras.Model(inputs, dict(zip(names, heads, strict=True)))
    y["aux"] = 3.0 + 0.1 * x[:, 1:2]  # small next to value, offset from 0
    before = original.get_layer("value").get_weights()
    model = km.normalize_heads(original, y)
    out = model(x, training=True)  # the normalisation on batch statistics
    mean = float(np.mean(keras.ops.convert_to_numpy(out["aux"])))
    assert abs(mean - y["aux"].mean()) < 0.05, mean
    for a, b in zip(original.get_layer("value").get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)  # the dominant head is left as it is
    assert float(original.get_layer("label").get_weights()[1][0]) == 0.0  # labels


def test_predict_reads_statistics_that_followed_the_training():
    # After ~100 steps the moving statistics `predict` uses match the batch
    # statistics of training (Keras's default momentum, 0.99, would still
    # hold a third of their initial mean 0 and variance 1).
    x, y = _data(n=960)
    model = km.normalize_heads(_model(), y, x=x)
    model.compile(
        keras.optimizers.SGD(1e-9), {"value": "mse", "label": "binary_crossentropy"}
    )
    model.fit(x, y, batch_size=20, epochs=2, verbose=0, shuffle=False)
    trained = keras.ops.convert_to_numpy(model(x, training=True)["label"])
    predicted = model.predict(x, verbose=0)["label"]
    np.testing.assert_allclose(predicted, trained, atol=0.05)


def test_the_primary_heads_come_from_the_targets_or_the_argument():
    x, y = _data()
    names = lambda m: sorted(  # noqa: E731
        layer.name for layer in m.layers if "input_norm" in layer.name
    )
    assert names(km.normalize_heads(_model(), y)) == ["label_input_norm"]
    assert names(km.normalize_heads(_model(), primary="label")) == ["value_input_norm"]
    # A list-output model's targets as a list, in its output order (a
    # dict-output model refuses one: test_what_a_new_user_passes_...).
    dict_model = _model()
    listed = keras.Model(
        dict_model.inputs, [dict_model.output["value"], dict_model.output["label"]]
    )
    assert names(km.normalize_heads(listed, [y["value"], y["label"]])) == [
        "label_input_norm"
    ]


@pytest.mark.parametrize(
    "shortcut,units", [(False, "auto"), (True, "raw"), (True, "auto")]
)
def test_the_weights_are_shared_and_a_saved_model_loads(tmp_path, shortcut, units):
    x, y = _data()
    original = _model()
    model = km.normalize_heads(original, y, x=x if shortcut else None, units=units)
    # With x, "auto" holds the normalised model as one layer (units.py).
    inner = model.get_layer(original.name) if shortcut and units == "auto" else model
    assert inner.get_layer("trunk") is original.get_layer("trunk")
    assert inner.get_layer("label").activation is km.stable_sigmoid
    model.compile("adam", {"value": "mse", "label": "binary_crossentropy"})
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    for name in ("value", "label"):
        np.testing.assert_allclose(
            loaded.predict(x, verbose=0)[name],
            model.predict(x, verbose=0)[name],
            rtol=1e-5,
        )


@pytest.mark.parametrize("shortcut", [False, True])
def test_a_second_call_adds_nothing(shortcut):
    x, y = _data()
    inputs = x if shortcut else None
    once = km.normalize_heads(_model(), y, x=inputs)
    twice = km.normalize_heads(once, y, x=inputs)
    assert [layer.name for layer in twice.layers] == [
        layer.name for layer in once.layers
    ]
    np.testing.assert_allclose(
        twice.predict(x, verbose=0)["label"], once.predict(x, verbose=0)["label"]
    )


def test_no_small_head_is_said():
    x, y = _data()
    y["value"] = y["value"] / 700.0  # both heads of order one
    with pytest.warns(UserWarning, match="found no small head"):
        model = km.normalize_heads(_model(), y)
    assert not [layer for layer in model.layers if "input_norm" in layer.name]


def test_bad_input_is_named():
    x, y = _data()
    with pytest.raises(ValueError, match="y=None, primary=None"):
        km.normalize_heads(_model())
    with pytest.raises(ValueError, match="primary='price'"):
        km.normalize_heads(_model(), primary="price")
    inputs = keras.Input((3,))
    single = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    with pytest.raises(ValueError, match="two or more outputs"):
        km.normalize_heads(single, y["value"])
    h = keras.layers.Dense(1)(inputs)
    no_weights = keras.Model(
        inputs,
        {"value": h, "label": keras.layers.Activation("sigmoid", name="p")(h)},
    )
    with pytest.raises(ValueError, match="no weights of its own"):
        km.normalize_heads(no_weights, y)


def test_bad_inputs_for_the_shortcut_are_named():
    x, y = _data()
    with pytest.raises(ValueError, match="one array per model input"):
        km.normalize_heads(_model(), y, x=[x, x])
    with pytest.raises(ValueError, match="arrays of numbers.*'x'.*PyDataset"):
        km.normalize_heads(_model(), y, x=keras.utils.PyDataset())
    days = keras.Input((None, 3), name="days")  # sequences of any length
    h = keras.layers.GRU(4)(days)
    heads = {n: keras.layers.Dense(1, name=n)(h) for n in ("value", "label")}
    with pytest.raises(ValueError, match=r"fixed shape; input 'days' has shape"):
        km.normalize_heads(keras.Model(days, heads), y, x=np.ones((96, 5, 3)))
    grid = keras.Input((3, 4), dtype="int32", name="grid")  # ids, not a sequence
    h = keras.layers.Flatten()(keras.layers.Embedding(10, 2)(grid))
    heads = {n: keras.layers.Dense(1, name=n)(h) for n in ("value", "label")}
    with pytest.raises(ValueError, match="float or token-id inputs.*grid"):
        km.normalize_heads(keras.Model(grid, heads), y, x=np.ones((96, 3, 4), "int32"))
    inputs = keras.Input((3,), name="x")
    h = keras.layers.Reshape((2, 4))(keras.layers.Dense(8)(inputs))
    heads = {n: keras.layers.Dense(1, name=n)(h) for n in ("value", "label", "aux")}
    y["aux"] = 3.0 + 0.1 * x[:, 1:2]  # a small regression head
    per_step = {n: np.repeat(v[:, None], 2, axis=1) for n, v in y.items()}
    model = keras.Model(inputs, heads)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="'label' reads shape"):
        km.normalize_heads(model, per_step, x=x)
    for after, was in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(after, was)  # a refused call changes nothing


def test_what_a_new_user_passes_by_mistake_is_named():
    x, y = _data()
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="Sequential model has one.*Received"):
        km.normalize_heads(sequential, y["value"])
    with pytest.raises(ValueError, match=r"'x' takes samples of shape \(3,\).*\(5,\)"):
        km.normalize_heads(_model(), y, x=np.ones((8, 5), "float32"))
    # A dict-output model's output_names are sorted: a tuple has no order.
    with pytest.raises(ValueError, match="dict keyed by output name.*tuple"):
        km.normalize_heads(_model(), (y["value"], y["label"]))
    with pytest.warns(UserWarning, match=r"no target for output\(s\) \['label'\]"):
        km.normalize_heads(_model(), {"value": y["value"]})


def _blind_model(inputs, features):
    """A frozen trunk that computes nothing of the inputs (its output is
    a constant), a dominant `value` head and a small `label` head."""
    trunk = keras.layers.Dense(8, "relu", kernel_initializer="zeros", name="trunk")
    trunk.trainable = False
    h = trunk(features)
    return keras.Model(
        inputs,
        {
            "value": keras.layers.Dense(1, name="value")(h),
            "label": keras.layers.Dense(1, "sigmoid", name="label")(h),
        },
    )


@pytest.mark.parametrize("kind", ["image", "tokens"])
def test_the_path_reads_images_and_token_ids(kind):
    """normalize_heads(x=) on a conv-shaped and a token-id input: the path
    alone lets the small head learn what the blind trunk cannot give it."""
    rng = np.random.default_rng(0)
    n = 960
    if kind == "image":
        x = rng.uniform(0, 16, (n, 6, 6, 1)).astype("float32")  # raw pixels
        label = x[:, :3].mean((1, 2, 3)) > x[:, 3:].mean((1, 2, 3))
        inputs = keras.Input((6, 6, 1), name="image")
        features = keras.layers.GlobalAveragePooling2D()(
            keras.layers.Conv2D(4, 3)(inputs)
        )
    else:
        x = rng.integers(0, 12, (n, 10)).astype("int32")
        label = (x == 7).any(1)
        inputs = keras.Input((10,), dtype="int32", name="tokens")
        features = keras.layers.GlobalAveragePooling1D()(
            keras.layers.Embedding(12, 4)(inputs)
        )
    y = {
        "value": (500 + 100 * rng.normal(size=(n, 1))).astype("float32"),
        "label": label[:, None].astype("float32"),
    }
    accuracy, start = {}, {}
    for path in (False, True):
        keras.utils.set_random_seed(0)
        model = km.normalize_heads(
            _blind_model(inputs, features), y, x=x if path else None
        )
        start[path] = model.predict(x[:8], verbose=0)
        accuracy[path] = _label_accuracy(model, x, y)
    np.testing.assert_allclose(start[True]["label"], start[False]["label"], rtol=1e-6)
    assert accuracy[True] > 0.85, accuracy
    assert accuracy[False] < 0.75, accuracy


def _preset_fit(model, x, y, epochs=6):
    model.compile(
        keras.optimizers.AdamW(1e-3),
        {"value": "mse", "label": "binary_crossentropy"},
    )
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model.fit(
            x,
            y,
            batch_size=48,
            epochs=epochs,
            verbose=0,
            callbacks=km.preset("multiphase"),
        )
    return [w for w in seen if issubclass(w.category, km.TrainingDynamicsWarning)]


def test_a_hidden_head_is_warned_of_during_fit_with_its_fix():
    """A small head a frozen trunk that computes nothing starves (random
    labels: nothing to learn): the preset says so at an epoch's end, naming
    normalize_heads(x=); once the head has it and still cannot learn, it
    names scale_outputs instead."""
    x, y = _data(n=960)
    y["label"] = np.random.default_rng(1).integers(0, 2, (960, 1)).astype("float32")

    def blind():
        inputs = keras.Input((3,), name="x")
        return _blind_model(inputs, inputs)

    found = _preset_fit(blind(), x, y)
    assert len(found) == 1, [str(w.message) for w in found]
    message = str(found[0].message)
    assert "output 'label' is not learning" in message
    assert "'value' dominates the loss" in message
    assert "normalize_heads(model, y_train, x=x_train)" in message
    found = _preset_fit(km.normalize_heads(blind(), y, x=x), x, y)
    assert len(found) == 1 and "scale_outputs" in str(found[0].message)


def test_a_learning_small_head_is_not_warned_of():
    x, y = _data(n=960)
    assert _preset_fit(km.normalize_heads(_model(), y, x=x), x, y) == []
