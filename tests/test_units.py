"""`normalize_heads(..., units="standard")`: standardised float inputs and
centred dominant heads, in the model (keras_multiphase/units.py)."""

import keras
import numpy as np
import pytest

import keras_multiphase as km


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = np.stack(
        [rng.normal(20_000, 5_000, n), rng.normal(40, 10, n), rng.normal(0, 1, n)],
        axis=1,
    ).astype("float32")
    z = (x - x.mean(0)) / x.std(0)
    price = 3_000 + 300 * (z[:, :1] - z[:, 1:2])
    sold = (z[:, 2:] > 0).astype("float32")
    return x, {"price": price.astype("float32"), "sold": sold}


def _model(name="shop"):
    """A trunk with bounded features (tanh): a head reading them cannot
    carry a target in the thousands from raw units."""
    inputs = keras.Input((3,), name="features")
    h = keras.layers.Dense(16, activation="tanh", name="trunk")(inputs)
    return keras.Model(
        inputs,
        {
            "price": keras.layers.Dense(1, name="price")(h),
            "sold": keras.layers.Dense(1, activation="sigmoid", name="sold")(h),
        },
        name=name,
    )


def _fit(model, x, y, steps=60):
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss={"price": "mse", "sold": "binary_crossentropy"},
        metrics={"price": ["mae"]},
    )
    history = model.fit(x, y, batch_size=32, epochs=steps // 8, verbose=0)
    return history.history["price_mae"][-1]


def test_standard_units_let_a_bounded_trunk_reach_its_target():
    x, y = _data()
    keras.utils.set_random_seed(0)
    raw = km.normalize_heads(_model(), y, x=x, units="raw")
    keras.utils.set_random_seed(0)
    standard = km.normalize_heads(_model(), y, x=x, units="standard")
    raw_mae, standard_mae = _fit(raw, x, y), _fit(standard, x, y)
    # Raw: 60 Adam steps of 0.01 move the head's bias by about 0.6 of the
    # 3,000 it must travel. Centred: the head starts at the mean.
    assert raw_mae > 2_500
    assert standard_mae < 300


def test_inputs_standardised_per_channel_and_the_head_centred():
    x, y = _data()
    model = km.normalize_heads(_model(), y, x=x, units="standard")
    norm = model.get_layer("features_norm")
    inside = keras.Model(model.inputs, norm.output)
    z = keras.ops.convert_to_numpy(inside(x))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-3)
    # The price output is the inner head's times the target's sd plus its
    # mean; `sold` passes as it is.
    inner = model.get_layer("shop")
    raw = inner(z)
    out = model(x)
    sd, mean = y["price"].std(), y["price"].mean()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(out["price"]),
        keras.ops.convert_to_numpy(raw["price"]) * sd + mean,
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(out["sold"]),
        keras.ops.convert_to_numpy(raw["sold"]),
        rtol=1e-6,
    )


def test_outputs_keep_their_names_and_small_heads_get_their_path():
    x, y = _data()
    model = km.normalize_heads(_model(), y, x=x, units="standard")
    assert sorted(model.output_names) == ["price", "sold"]
    inner = model.get_layer("shop")
    assert "sold_input_norm" in [layer.name for layer in inner.layers]
    assert "price_input_norm" not in [layer.name for layer in inner.layers]


def test_token_ids_pass_unstandardised():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 20, (64, 6)).astype("int32")
    dense = rng.normal(100, 30, (64, 2)).astype("float32")
    t_in = keras.Input((6,), dtype="int32", name="tokens")
    d_in = keras.Input((2,), name="amounts")
    e = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 4)(t_in))
    h = keras.layers.Concatenate()([e, keras.layers.Dense(4)(d_in)])
    model = keras.Model(
        [t_in, d_in],
        {
            "price": keras.layers.Dense(1, name="price")(h),
            "sold": keras.layers.Dense(1, activation="sigmoid", name="sold")(h),
        },
    )
    y = {
        "price": rng.normal(2_000, 300, (64, 1)).astype("float32"),
        "sold": rng.integers(0, 2, (64, 1)).astype("float32"),
    }
    out = km.normalize_heads(model, y, x=[tokens, dense], units="standard")
    names = [layer.name for layer in out.layers]
    assert "amounts_norm" in names and "tokens_norm" not in names
    assert out.predict([tokens, dense], verbose=0)["price"].shape == (64, 1)


def test_for_inference_keeps_the_predictions():
    x, y = _data()
    model = km.normalize_heads(_model(), y, x=x, units="standard")
    served = km.for_inference(model)
    a, b = model.predict(x, verbose=0), served.predict(x, verbose=0)
    for name in ("price", "sold"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"units": "standardised"}, "units='standardised'"),
        ({"units": "standard", "x": None}, "x=None"),
        ({"units": "standard", "y": None, "primary": "price"}, "y=None"),
    ],
)
def test_bad_units_arguments_are_named(kwargs, named):
    x, y = _data()
    arguments = {"y": y, "x": x, **kwargs}
    with pytest.raises(ValueError, match="units") as info:
        km.normalize_heads(_model(), **arguments)
    assert named in str(info.value)


def _layer_names(model):
    return [layer.name for layer in model.layers]


def _backbone_model(preprocess=None, activation="tanh"):
    """Inputs -> (optional weightless preprocessing) -> a nested backbone
    -> two heads: the shape of a model built on `keras.applications`."""
    inputs = keras.Input((3,), name="features")
    backbone = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(16, activation=activation)],
        name="backbone",
    )
    h = backbone(preprocess(inputs) if preprocess else inputs)
    return keras.Model(
        inputs,
        {
            "price": keras.layers.Dense(1, name="price")(h),
            "sold": keras.layers.Dense(1, activation="sigmoid", name="sold")(h),
        },
        name="shop",
    )


def _same_predictions(a, b, x):
    pa, pb = a.predict(x, verbose=0), b.predict(x, verbose=0)
    for name in ("price", "sold"):
        np.testing.assert_allclose(pa[name], pb[name], rtol=1e-5, atol=1e-6)


def test_auto_is_standard_for_a_model_of_its_own_layers():
    x, y = _data()
    keras.utils.set_random_seed(0)
    auto = km.normalize_heads(_model(), y, x=x)
    keras.utils.set_random_seed(0)
    standard = km.normalize_heads(_model(), y, x=x, units="standard")
    assert _layer_names(auto) == _layer_names(standard)
    assert "features_norm" in _layer_names(auto)
    auto.set_weights(standard.get_weights())
    _same_predictions(auto, standard, x)
    assert _fit(auto, x, y) < 300  # the centred head reaches its target


@pytest.mark.parametrize(
    "preprocess",
    [None, lambda t: keras.layers.Rescaling(1 / 255, name="to_unit")(t)],
    ids=["direct", "behind_rescaling"],
)
def test_auto_leaves_the_units_of_a_nested_backbone(preprocess):
    """A float input that reaches a nested model through weightless layers
    only stays raw: the backbone was pretrained in those units. Its tanh
    features (at most 16 in sum) cannot reach a price of 3,000: the head
    is centred."""
    from keras_multiphase.units import backbone_inputs

    x, y = _data()
    model = _backbone_model(preprocess)
    assert backbone_inputs(model) == ["features"]
    auto = km.normalize_heads(model, y, x=x)
    assert "features_norm" not in _layer_names(auto)
    assert isinstance(auto.get_layer("price"), keras.layers.Rescaling)
    assert auto.get_layer("price").scale == pytest.approx(float(y["price"].std()))


def test_auto_centres_only_a_head_its_features_cannot_reach():
    """ReLU features of raw inputs in the tens of thousands sum far past the
    price: the head reaches it in its own units and is left as it is (and
    with the inputs kept for the backbone, nothing changes)."""
    from keras_multiphase.units import reach_ratio

    x, y = _data()
    model = _backbone_model(activation="relu")
    head = model.get_layer("price")
    assert reach_ratio(model, head, [x], y["price"]) < 1
    tanh = _backbone_model()
    assert reach_ratio(tanh, tanh.get_layer("price"), [x], y["price"]) > 100
    auto = km.normalize_heads(model, y, x=x)
    assert auto.get_layer("price") is head
    assert "features_norm" not in _layer_names(auto)


def test_a_backbone_behind_a_trained_layer_is_not_reading_the_inputs():
    from keras_multiphase.units import backbone_inputs

    inputs = keras.Input((3,), name="features")
    h = keras.layers.Dense(3, name="stem")(inputs)
    h = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)], name="bb")(h)
    model = keras.Model(
        inputs,
        {
            "price": keras.layers.Dense(1, name="price")(h),
            "sold": keras.layers.Dense(1, name="sold")(h),
        },
    )
    assert backbone_inputs(model) == []


def test_auto_without_x_or_y_is_raw():
    x, y = _data()
    without_x = km.normalize_heads(_model(), y)
    assert "features_norm" not in _layer_names(without_x)
    without_y = km.normalize_heads(_model(), primary="price", x=x)
    assert "features_norm" not in _layer_names(without_y)
    assert "sold_input_norm" in _layer_names(without_y)


def test_a_second_call_adds_nothing():
    x, y = _data()
    once = km.normalize_heads(_model(), y, x=x)
    assert km.normalize_heads(once, y, x=x) is once
    assert km.normalize_heads(once, y, x=x, units="standard") is once


class _Kernels(keras.callbacks.Callback):
    def __init__(self, layers):
        super().__init__()
        self.layers, self.seen = layers, []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append([np.array(layer.kernel.numpy()) for layer in self.layers])


def test_fine_tune_freezes_the_trunk_inside_the_units_model():
    """`fine_tune`'s trunk rule looks through the units wrapper: its first
    epoch trains the heads with the trunk frozen (not the whole model
    frozen, nor nothing)."""
    from keras_multiphase.layer_groups import trunk_layers

    x, y = _data(n=320)
    original = _model()
    model = km.normalize_heads(original, y, x=x, units="standard")
    assert [layer.name for layer in trunk_layers(model)] == ["trunk"]
    trunk, head = original.get_layer("trunk"), original.get_layer("sold")
    start = [np.array(trunk.kernel.numpy()), np.array(head.kernel.numpy())]
    model.compile(
        keras.optimizers.AdamW(1e-3), {"price": "mse", "sold": "binary_crossentropy"}
    )
    kernels = _Kernels([trunk, head])
    # 20 epochs of 10 steps: the frozen 5% is the first epoch.
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=20,
        verbose=0,
        callbacks=[*km.preset("fine_tune", peak_lr=1e-3), kernels],
    )
    first, second = kernels.seen[0], kernels.seen[1]
    np.testing.assert_array_equal(first[0], start[0])  # the trunk: frozen
    assert not np.array_equal(first[1], start[1])  # the head: trained
    assert not np.array_equal(second[0], first[0])  # then the trunk trains
