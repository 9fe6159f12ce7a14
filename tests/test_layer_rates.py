"""LayerRates: each layer moves by its multiplier times the rate, inside the
compiled step, on every backend and optimizer."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_multiphase import LayerRates, PhaseLR


def parallel(optimizer):
    """out = trunk(x) + head(x), one weight each (ones), loss = mean(out):
    with x = 1 each weight's gradient is exactly 1."""
    x = keras.Input((1,))
    trunk = keras.layers.Dense(
        1, use_bias=False, kernel_initializer="ones", name="trunk"
    )
    head = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", name="head")
    out = keras.layers.Add()([trunk(x), head(x)])
    model = keras.Model(x, out)
    model.compile(optimizer, loss=lambda t, p: ops.mean(p))
    return model


def fit(model, callbacks, epochs=1):
    x = np.ones((8, 1), "float32")
    model.fit(
        x, np.zeros_like(x), batch_size=8, epochs=epochs, verbose=0, callbacks=callbacks
    )


def weights(model):
    return {
        name: float(np.asarray(model.get_layer(name).kernel.numpy()).ravel()[0])
        for name in ("trunk", "head")
    }


def test_sgd_moves_each_layer_by_its_multiplier_times_the_rate():
    model = parallel(keras.optimizers.SGD(0.1))
    fit(model, [LayerRates({"trunk": 0.25})], epochs=2)
    w = weights(model)
    assert w["trunk"] == pytest.approx(1 - 2 * 0.1 * 0.25, abs=1e-6)
    assert w["head"] == pytest.approx(1 - 2 * 0.1, abs=1e-6)


def test_adam_moves_a_tenth_layer_a_tenth_as_far():
    model = parallel(keras.optimizers.Adam(0.01))
    fit(model, [LayerRates({"trunk": 0.1})])
    w = weights(model)
    assert (1 - w["trunk"]) / (1 - w["head"]) == pytest.approx(0.1, rel=1e-4)


def test_decoupled_weight_decay_follows_the_rate_and_spares_a_frozen_layer():
    model = parallel(keras.optimizers.SGD(0.1, weight_decay=0.1))
    fit(model, [LayerRates({"trunk": 0.5})])
    w = weights(model)
    # Keras decays first (w -= w * wd * rate), then steps (w -= rate * g).
    assert w["trunk"] == pytest.approx(1 - 0.1 * 0.1 * 0.5 - 0.1 * 0.5, abs=1e-6)
    assert w["head"] == pytest.approx(1 - 0.1 * 0.1 - 0.1, abs=1e-6)
    model = parallel(keras.optimizers.AdamW(0.01, weight_decay=0.5))
    fit(model, [LayerRates({"trunk": 0.0})], epochs=3)
    w = weights(model)
    assert w["trunk"] == 1.0  # neither moved nor decayed
    assert w["head"] < 1.0 - 0.02


def test_adamw_step_equals_torch_param_groups():
    """Two steps of Keras AdamW with LayerRates against torch.optim.AdamW with
    one parameter group per multiplier (lr x multiplier each)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    w1 = rng.normal(size=(3, 4)).astype("float32")
    w2 = rng.normal(size=(4, 1)).astype("float32")
    lr, wd, eps = 0.01, 0.1, 1e-7
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, use_bias=False, name="trunk"),
            keras.layers.Dense(1, use_bias=False, name="head"),
        ]
    )
    model.set_weights([w1, w2])
    model.compile(keras.optimizers.AdamW(lr, weight_decay=wd, epsilon=eps), "mse")
    model.fit(
        x, y, batch_size=16, epochs=2, verbose=0, callbacks=[LayerRates({"trunk": 0.1})]
    )
    t1 = torch.tensor(w1, requires_grad=True)
    t2 = torch.tensor(w2, requires_grad=True)
    reference = torch.optim.AdamW(
        [{"params": [t1], "lr": lr * 0.1}, {"params": [t2], "lr": lr}],
        weight_decay=wd,
        eps=eps,
    )
    for _ in range(2):
        reference.zero_grad()
        loss = ((torch.tensor(x) @ t1 @ t2 - torch.tensor(y)) ** 2).mean()
        loss.backward()
        reference.step()
    got = model.get_weights()
    # Keras adds epsilon to sqrt(v) before the bias correction, PyTorch
    # after: alike to well within this tolerance at these gradients.
    np.testing.assert_allclose(got[0], t1.detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[1], t2.detach().numpy(), rtol=1e-4, atol=1e-6)


def test_layer_decay_counts_from_the_output():
    model = parallel(keras.optimizers.SGD(0.1))
    rates = LayerRates(layer_decay=0.5)
    fit(model, [rates])
    assert rates.multipliers == {"trunk/kernel": 0.5, "head/kernel": 1.0}
    w = weights(model)
    assert w["trunk"] == pytest.approx(1 - 0.05, abs=1e-6)
    assert w["head"] == pytest.approx(1 - 0.1, abs=1e-6)


def test_composes_with_the_phase_rates():
    model = parallel(keras.optimizers.SGD(1.0))
    phases = PhaseLR([{"name": "a", "lr": 0.1, "steps": 1}, {"name": "b", "lr": 0.01}])
    fit(model, [phases, LayerRates({"trunk": 0.5})], epochs=2)
    w = weights(model)
    assert w["trunk"] == pytest.approx(1 - 0.5 * (0.1 + 0.01), abs=1e-6)
    assert w["head"] == pytest.approx(1 - (0.1 + 0.01), abs=1e-6)


def test_the_optimizer_updates_every_layer_alike_after_the_fit():
    model = parallel(keras.optimizers.SGD(0.1))
    fit(model, [LayerRates({"trunk": 0.0})])
    fit(model, [])
    w = weights(model)
    assert w["trunk"] == pytest.approx(1 - 0.1, abs=1e-6)
    assert w["head"] == pytest.approx(1 - 0.2, abs=1e-6)


def test_a_layer_object_and_a_path_pattern_are_keys():
    model = parallel(keras.optimizers.SGD(0.1))
    rates = LayerRates({model.get_layer("head"): 0.5, "tr*": 0.2})
    fit(model, [rates])
    assert rates.multipliers == {"trunk/kernel": 0.2, "head/kernel": 0.5}
    w = weights(model)  # what the step applied
    assert w["trunk"] == pytest.approx(1 - 0.1 * 0.2, abs=1e-6)
    assert w["head"] == pytest.approx(1 - 0.1 * 0.5, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "needs `rates` or `layer_decay`"),
        ({"rates": [("trunk", 0.1)]}, "must be a non-empty mapping"),
        ({"rates": {3: 0.1}}, "Keys of `rates`"),
        ({"rates": {"trunk": -1}}, "rates\\['trunk'\\]"),
        ({"layer_decay": 0.0}, "layer_decay"),
        ({"layer_decay": 1.5}, "layer_decay"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LayerRates(**kwargs)


def test_a_pattern_matching_no_layer_names_the_layers():
    model = parallel(keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match="'backbone'.*Layers: \\['head', 'trunk'\\]"):
        fit(model, [LayerRates({"backbone": 0.1})])


@pytest.mark.parametrize("where", ["table", "formulas"])
def test_phase_layer_rates_change_inside_an_epoch_with_one_trace(where, monkeypatch):
    """A PhaseLR phase's `layer_rates` hold during that phase only; the
    multipliers change at the boundary inside an epoch, read by the step
    (from the rate table, or from the formulas in the step), with no new
    trace of the step."""
    from keras_multiphase.engine import table as table_module

    if where == "formulas":
        monkeypatch.setattr(table_module, "TABLE_LIMIT", 0)
    model = parallel(keras.optimizers.SGD(1.0))
    step = model.train_step
    traced = []

    def train_step(*args):
        traced.append(model.train_function)
        return step(*args)

    model.train_step = train_step
    phases = PhaseLR(
        [
            {"name": "head", "lr": 0.1, "steps": 1, "layer_rates": {"trunk": 0}},
            {"name": "all", "lr": 0.01, "layer_rates": {"trunk": 0.5}},
        ]
    )
    x = np.ones((8, 1), "float32")
    model.fit(x, x, batch_size=4, epochs=1, verbose=0, callbacks=[phases])
    w = weights(model)
    assert w["trunk"] == pytest.approx(1 - 0.5 * 0.01, abs=1e-6)
    assert w["head"] == pytest.approx(1 - 0.1 - 0.01, abs=1e-6)
    if keras.backend.backend() != "torch":  # compiled: one trace
        assert len({id(f) for f in traced}) == 1 and len(traced) == 1


def test_a_key_covering_every_variable_freezes_then_trains_the_whole_model():
    """One group of variables (a key that matches them all, as `fine_tune`'s
    trunk on a model nested whole) is one column of the rate table: the
    first step is frozen, the next two move each weight by the rate."""
    model = parallel(keras.optimizers.SGD(1.0))
    phases = PhaseLR(
        [
            {"name": "frozen", "lr": 0.1, "steps": 1, "layer_rates": {"*": 0}},
            {"name": "all", "lr": 0.1},
        ]
    )
    fit(model, [phases], epochs=3)
    w = weights(model)
    assert w["trunk"] == pytest.approx(1 - 2 * 0.1, abs=1e-6)
    assert w["head"] == pytest.approx(1 - 2 * 0.1, abs=1e-6)


def test_phase_layer_rates_compose_with_layer_rates():
    model = parallel(keras.optimizers.SGD(1.0))
    phases = PhaseLR(
        [
            {"name": "a", "lr": 0.1, "steps": 1, "layer_rates": {"trunk": 0.5}},
            {"name": "b", "lr": 0.1},
        ]
    )
    fit(model, [phases, LayerRates({"head": 0.2})], epochs=2)
    w = weights(model)
    assert w["trunk"] == pytest.approx(1 - 0.1 * 0.5 - 0.1, abs=1e-6)
    assert w["head"] == pytest.approx(1 - 2 * 0.1 * 0.2, abs=1e-6)


def test_phase_layer_rates_are_checked():
    with pytest.raises(ValueError, match="phases\\[0\\].layer_rates"):
        PhaseLR([{"lr": 0.1, "layer_rates": {"trunk": -1}}])
    with pytest.raises(ValueError, match="non-empty mapping"):
        PhaseLR([{"lr": 0.1, "layer_rates": ["trunk"]}])
    model = parallel(keras.optimizers.SGD(0.1))
    phases = PhaseLR([{"lr": 0.1, "layer_rates": {"backbone": 0.1}}])
    with pytest.raises(ValueError, match="phases\\[0\\].layer_rates`? key 'backbone'"):
        fit(model, [phases])


def _bn_backbone_model():
    """A nested backbone (Dense, BatchNormalization) under a head, SGD."""
    backbone = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, name="conv"),
            keras.layers.BatchNormalization(name="bn"),
        ],
        name="backbone",
    )
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(backbone(inputs)))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


@pytest.mark.parametrize("train_bn", [False, True])
def test_train_bn_trains_a_frozen_trunks_batch_norm(train_bn):
    """fastai's train_bn: with the trunk frozen, its BatchNormalization's
    scale and offset move at the phase's rate (train_bn) or stay (not)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    model = _bn_backbone_model()
    bn = model.get_layer("backbone").get_layer("bn")
    dense = model.get_layer("backbone").get_layer("conv")
    start = [np.array(w) for w in (*bn.get_weights()[:2], dense.get_weights()[0])]
    phase = {"lr": 0.1, "layer_rates": {"backbone": 0.0}, "train_bn": train_bn}
    model.fit(
        x,
        x.sum(1, keepdims=True) * 5,
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[PhaseLR([phase])],
    )
    gamma, beta, kernel = (
        bn.get_weights()[0],
        bn.get_weights()[1],
        dense.get_weights()[0],
    )
    np.testing.assert_array_equal(kernel, start[2])  # the rest stays frozen
    moved = not np.allclose(gamma, start[0]) and not np.allclose(beta, start[1])
    assert moved == train_bn


def test_train_bn_is_checked():
    with pytest.raises(ValueError, match="phases\\[0\\].train_bn.*Received"):
        PhaseLR([{"lr": 0.1, "train_bn": "yes"}])


def test_the_trunk_rule():
    from keras_multiphase.layer_groups import trunk_layers

    backbone = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(4)],
        name="backbone",
    )
    inputs = keras.Input((3,))
    nested = keras.Model(inputs, keras.layers.Dense(1, name="head")(backbone(inputs)))
    assert [layer.name for layer in trunk_layers(nested)] == ["backbone"]
    h = keras.layers.Dense(4, name="t1")(inputs)
    h = keras.layers.Dense(4, name="t2")(h)
    own = keras.layers.Dense(4, name="own")(h)
    heads = {
        "a": keras.layers.Dense(1, name="a")(own),
        "b": keras.layers.Dense(1, name="b")(h),
    }
    shared = keras.Model(inputs, heads)
    assert [layer.name for layer in trunk_layers(shared)] == ["t1", "t2"]
    stacked = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, name="s1"), keras.layers.Dense(1)]
    )
    assert [layer.name for layer in trunk_layers(stacked)] == ["s1"]


class Kernels(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(
            {
                name: np.array(self.model.get_layer(name).kernel.numpy())
                for name in ("t1", "head")
            }
        )


def _trunk_and_head():
    inputs = keras.Input((3,))
    h = keras.layers.Dense(4, activation="tanh", name="t1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(h))
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    return model


def test_fine_tune_trains_the_head_alone_then_the_whole_model():
    import keras_multiphase as km

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = x.sum(1, keepdims=True)
    model = _trunk_and_head()
    start = {n: np.array(model.get_layer(n).kernel.numpy()) for n in ("t1", "head")}
    kernels = Kernels()
    callbacks = km.preset("fine_tune", peak_lr=1e-2)  # trunk: auto -> t1
    # 20 epochs of 4 steps: the frozen 5% is the first epoch.
    model.fit(x, y, batch_size=8, epochs=20, verbose=0, callbacks=[*callbacks, kernels])
    frozen, after = kernels.seen[0], kernels.seen[1]
    np.testing.assert_array_equal(frozen["t1"], start["t1"])  # epoch 1: frozen
    assert not np.array_equal(frozen["head"], start["head"])
    assert not np.array_equal(after["t1"], frozen["t1"])  # then it trains


def test_the_range_test_measures_the_whole_model_then_the_trunk_is_frozen(
    monkeypatch,
):
    import keras_multiphase as km
    from keras_multiphase.lr_finder import range_test

    trunk_moved = []
    original = range_test._train_on

    def train_on(model, batch):
        before = np.array(model.get_layer("t1").kernel.numpy())
        loss = original(model, batch)
        after = np.array(model.get_layer("t1").kernel.numpy())
        trunk_moved.append(not np.array_equal(before, after))
        return loss

    monkeypatch.setattr(range_test, "_train_on", train_on)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    model = _trunk_and_head()
    kernels = Kernels()
    callbacks = km.preset("fine_tune", trunk="t1")
    callbacks[0].range_test.update(num_steps=20)
    start = np.array(model.get_layer("t1").kernel.numpy())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an inconclusive sweep falls back
        model.fit(
            x,
            x.sum(1, keepdims=True),
            batch_size=16,  # 20 epochs of 4 steps: the first is frozen
            epochs=20,
            verbose=0,
            callbacks=[*callbacks, kernels],
        )
    assert trunk_moved and all(trunk_moved)  # the sweep trains every layer
    # find_lr restores the weights; the first phase then leaves t1 alone.
    np.testing.assert_array_equal(kernels.seen[0]["t1"], start)
    assert not np.array_equal(kernels.seen[-1]["t1"], start)


def test_preview_shows_each_layer_keys_rate():
    import keras_multiphase as km

    phases = PhaseLR(
        [
            {"name": "a", "lr": 0.1, "steps": 2, "layer_rates": {"trunk": 0.0}},
            {"name": "b", "lr": 0.01, "layer_rates": {"trunk": 0.5}},
        ]
    )
    table = km.preview([phases, LayerRates({"head": 0.2})], epochs=2, steps_per_epoch=2)
    np.testing.assert_allclose(table["layer_rates"]["trunk"], [0, 0, 0.005, 0.005])
    np.testing.assert_allclose(
        table["layer_rates"]["head"], [0.02, 0.02, 0.002, 0.002], rtol=1e-6
    )


@pytest.mark.parametrize("trunk_ratio", [1.0, 0.1])
def test_fine_tune_schedule_frozen_then_the_trunk_at_its_ratio(trunk_ratio):
    import keras_multiphase as km

    callbacks = km.preset("fine_tune", peak_lr=1e-2, trunk_ratio=trunk_ratio)
    table = km.preview(callbacks, epochs=20, steps_per_epoch=10)
    trunk, rate = table["layer_rates"]["auto"], table["learning_rate"]
    np.testing.assert_array_equal(trunk[:10], 0.0)  # the first 5% frozen
    np.testing.assert_allclose(rate[:10], 1e-2)  # the heads at the peak
    np.testing.assert_allclose(trunk[10:], trunk_ratio * rate[10:], rtol=1e-6)
    assert rate[10:].max() == pytest.approx(1e-2)  # the whole model's peak


def _functional_backbone_model():
    """A functional backbone nested in a model: its variables' paths
    (`bb1/kernel`) do not hold the name `backbone`."""
    inner = keras.Input((3,))
    h = keras.layers.Dense(4, activation="tanh", name="bb1")(inner)
    backbone = keras.Model(inner, keras.layers.Dense(4, name="bb2")(h), name="backbone")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(backbone(inputs)))
    model.compile(keras.optimizers.SGD(0.05), "mse")
    assert not any("backbone" in v.path for v in model.trainable_variables)
    return model, backbone


def _moved_after_fit(model, callbacks):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    before = {v.path: np.array(v.numpy()) for v in model.trainable_variables}
    model.fit(x, x.sum(1), batch_size=8, epochs=1, verbose=0, callbacks=callbacks)
    return {
        path: not np.array_equal(before[path], np.asarray(v.numpy()))
        for path, v in ((v.path, v) for v in model.trainable_variables)
    }


@pytest.mark.parametrize("key", ["backbone", "back*", "backbone/bb1", "object"])
def test_a_functional_backbone_is_selected_by_name_pattern_and_object(key):
    model, backbone = _functional_backbone_model()
    key = backbone if key == "object" else key
    moved = _moved_after_fit(model, [LayerRates({key: 0.0})])
    frozen = {"bb1/kernel", "bb1/bias"} | (
        set() if key == "backbone/bb1" else {"bb2/kernel", "bb2/bias"}
    )
    assert all(not moved[p] for p in frozen), moved
    assert all(moved[p] for p in moved if p not in frozen), moved


def test_a_bad_key_names_the_nested_layers():
    model, _ = _functional_backbone_model()
    with pytest.raises(ValueError, match=r"'bakbone'.*'backbone', 'backbone/bb1'"):
        _moved_after_fit(model, [LayerRates({"bakbone": 0.0})])


class BackboneKernels(keras.callbacks.Callback):
    def __init__(self, backbone):
        super().__init__()
        self.backbone, self.seen = backbone, []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(np.array(self.backbone.get_layer("bb1").kernel.numpy()))


@pytest.mark.parametrize("trunk", ["object", "backbone", "back*"])
def test_the_fine_tune_preset_freezes_a_functional_backbone(trunk):
    """By object (the preset used to copy it, and the copy matched no layer
    of the model), by name and by pattern."""
    import keras_multiphase as km

    model, backbone = _functional_backbone_model()
    callbacks = km.preset(
        "fine_tune", peak_lr=1e-2, trunk=backbone if trunk == "object" else trunk
    )
    if trunk == "object":
        phase_lr = next(c for c in callbacks if isinstance(c, PhaseLR))
        assert next(iter(phase_lr.phases[0]["layer_rates"])) is backbone
    start = np.array(backbone.get_layer("bb1").kernel.numpy())
    kernels = BackboneKernels(backbone)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    # 20 epochs of 4 steps: the frozen 5% is the first epoch.
    model.fit(
        x, x.sum(1), batch_size=8, epochs=20, verbose=0, callbacks=[*callbacks, kernels]
    )
    np.testing.assert_array_equal(kernels.seen[0], start)  # epoch 1: frozen
    assert not np.array_equal(kernels.seen[-1], start)  # then it trains


class _Block(keras.layers.Layer):
    """A subclassed layer holding two Dense layers."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = keras.layers.Dense(4, activation="tanh", name="first")
        self.second = keras.layers.Dense(4, name="second")

    def call(self, x):
        return self.second(self.first(x))


class _HubStyleBackbone(keras.Model):
    """A keras-hub-style backbone: a functional model's subclass."""

    def __init__(self, **kwargs):
        inputs = keras.Input((3,), name="features")
        h = keras.layers.Dense(4, activation="tanh", name="layer_0")(inputs)
        super().__init__(inputs, keras.layers.Dense(4, name="layer_1")(h), **kwargs)


def _backbone(kind):
    if kind == "sequential":
        return keras.Sequential(
            [keras.Input((3,)), keras.layers.Dense(4, name="s1")], name="trunk_net"
        )
    if kind == "functional":
        inner = keras.Input((3,))
        out = keras.layers.Dense(4, name="f2")(keras.layers.Dense(4, name="f1")(inner))
        return keras.Model(inner, out, name="trunk_net")
    if kind == "hub":
        return _HubStyleBackbone(name="trunk_net")
    return _Block(name="trunk_net")


@pytest.mark.parametrize("kind", ["sequential", "functional", "hub", "subclassed"])
@pytest.mark.parametrize("key", ["trunk_net", "trunk_*", "object"])
def test_every_kind_of_backbone_is_frozen_by_name_pattern_and_object(kind, key):
    backbone = _backbone(kind)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(backbone(inputs)))
    model.compile(keras.optimizers.SGD(0.05), "mse")
    key = backbone if key == "object" else key
    moved = _moved_after_fit(model, [LayerRates({key: 0.0})])
    mine = {v.path for v in backbone.trainable_variables}
    assert mine and not any(moved[p] for p in mine), moved
    assert moved["head/kernel"], moved


def test_a_keras_applications_backbone_is_frozen_by_its_name():
    backbone = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3),
        include_top=False,
        weights=None,  # built locally: no download
        include_preprocessing=False,
    )
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(pooled))
    model.compile(keras.optimizers.SGD(0.05), "mse")
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    before = [np.array(v.numpy()) for v in backbone.trainable_variables]
    head = np.array(model.get_layer("head").kernel.numpy())
    model.fit(
        x,
        np.ones((4, 1)),
        batch_size=4,
        epochs=1,
        verbose=0,
        callbacks=[LayerRates({backbone.name: 0.0})],
    )
    for was, v in zip(before, backbone.trainable_variables, strict=True):
        np.testing.assert_array_equal(was, np.asarray(v.numpy()))
    assert not np.array_equal(head, np.asarray(model.get_layer("head").kernel.numpy()))
