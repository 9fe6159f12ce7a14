"""LossWeightBalancer: the weights the compiled step really multiplies by."""

import warnings

import keras
import numpy as np
import pytest
from helpers import Script

from keras_multiphase import LossWeightBalancer, PhaseLR

NAMES = ("threshold", "cls")


def two_heads(lr=0.0, loss_weights=None):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    outputs = {
        "threshold": keras.layers.Dense(1, name="threshold")(inputs),
        "cls": keras.layers.Dense(1, name="cls")(inputs),
    }
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss={"threshold": "mse", "cls": "mse"},
        loss_weights=loss_weights,
    )
    return model


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = {
        "threshold": np.full((n, 1), 70.0, "float32"),
        "cls": rng.uniform(size=(n, 1)).astype("float32"),
    }
    return x, y


def fit(model, callbacks, epochs=4, **kw):
    x, y = data()
    return model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=8,
        verbose=0,
        shuffle=False,
        callbacks=callbacks,
        **kw,
    ).history


def weights_of(history):
    return np.stack([history[f"{n}_loss_weight"] for n in NAMES], axis=1)


def losses_of(history, prefix=""):
    return np.stack([history[f"{prefix}{n}_loss"] for n in NAMES], axis=1)


def assert_total_is_weighted_sum(history):
    total = (weights_of(history) * losses_of(history)).sum(axis=1)
    np.testing.assert_allclose(history["loss"], total, rtol=2e-5)


@pytest.mark.parametrize(
    "balancer",
    [
        LossWeightBalancer("magnitude"),
        LossWeightBalancer("dwa"),
        LossWeightBalancer(
            "schedule",
            schedule={0: {"threshold": 1.0}, 2: {"threshold": 0.01}},
            interpolate=True,
        ),
        LossWeightBalancer("fixed", weights={"threshold": 0.02, "cls": 3.0}),
    ],
    ids=lambda b: b.strategy,
)
def test_total_loss_equals_the_weighted_sum(balancer):
    # Training moves the components; the identity holds for every epoch
    # because the weights are constant within an epoch.
    history = fit(two_heads(lr=1e-3), [balancer], epochs=5)
    assert_total_is_weighted_sum(history)
    w = weights_of(history)
    if balancer.strategy == "fixed":
        np.testing.assert_allclose(w, [[0.02, 3.0]] * len(w))
    elif balancer.strategy == "dwa":  # formula: test_dwa_formula
        np.testing.assert_allclose(w.sum(axis=1), 2.0, rtol=1e-5)
    else:
        assert not np.allclose(w[0], w[-1])  # the weights really moved


def test_magnitude_formula_and_dominant_component():
    history = fit(two_heads(lr=1e-3), [LossWeightBalancer("magnitude", smoothing=0.5)])
    loss, w = losses_of(history), weights_of(history)
    ema = loss[0]
    np.testing.assert_allclose(w[0], [1.0, 1.0])
    for e in range(1, len(loss)):
        expected = (1 / ema) * 2 / (1 / ema).sum()
        np.testing.assert_allclose(w[e], expected, rtol=1e-5)
        ema = 0.5 * ema + 0.5 * loss[e]
    assert w[-1][0] < 0.01 < 1.9 < w[-1][1]  # the ~100x head is damped
    assert_total_is_weighted_sum(history)


def test_targets_set_the_contributions():
    balancer = LossWeightBalancer(
        "magnitude", smoothing=0.0, targets={"threshold": 3.0, "cls": 1.0}
    )
    history = fit(two_heads(), [balancer], epochs=2)
    contribution = weights_of(history)[1] * losses_of(history)[1]
    assert contribution[0] / contribution[1] == pytest.approx(3.0, rel=1e-4)


def test_dwa_formula():
    history = fit(two_heads(lr=5e-3), [LossWeightBalancer("dwa")], epochs=5)
    loss, w = losses_of(history), weights_of(history)
    np.testing.assert_allclose(w[:2], 1.0)
    for e in range(2, len(loss)):
        r = loss[e - 1] / loss[e - 2] / 2.0
        np.testing.assert_allclose(w[e], 2 * np.exp(r) / np.exp(r).sum(), rtol=1e-5)


def test_compile_loss_weights_are_the_start_and_normalisation_options():
    model = two_heads(loss_weights={"threshold": 0.5, "cls": 1.5})
    balancer = LossWeightBalancer(
        "magnitude",
        smoothing=0.0,
        normalize="initial_sum",
        warmup_epochs=1,
        update_every=2,
        max_weight=1.9,
    )
    history = fit(model, [balancer], epochs=5)
    w = weights_of(history)
    np.testing.assert_allclose(w[0], [0.5, 1.5])
    np.testing.assert_allclose(w[1], w[0])  # warm-up epoch
    np.testing.assert_allclose(w[2], w[1])  # updates every 2 epochs
    assert not np.allclose(w[3], w[2])
    assert w[3].max() <= 1.9 + 1e-6
    np.testing.assert_allclose(w[3].sum(), min(2.0, 1.9 + w[3].min()), rtol=1e-5)
    assert_total_is_weighted_sum(history)


def test_converged_component_is_frozen():
    # cls's loss is constant with lr=0: it converges after 2 epochs, so its
    # weight stays while threshold keeps moving with the scripted values.
    script = Script("threshold_loss", [100.0, 50.0, 20.0, 10.0, 5.0])
    balancer = LossWeightBalancer(
        "magnitude",
        smoothing=0.0,
        normalize="none",
        freeze_converged=True,
        converged_patience=2,
    )
    history = fit(two_heads(), [script, balancer], epochs=5)
    w = weights_of(history)
    assert w[3][1] == pytest.approx(w[2][1]) == pytest.approx(w[4][1])
    assert w[4][0] != pytest.approx(w[3][0])


def test_schedule_by_phase():
    phases = PhaseLR(
        [{"name": "a", "lr": 1e-3, "epochs": 2}, {"name": "b", "lr": 1e-4}]
    )
    balancer = LossWeightBalancer(
        "schedule",
        schedule={"a": {"threshold": 1.0, "cls": 1.0}, "b": {"threshold": 0.1}},
    )
    history = fit(two_heads(), [phases, balancer], epochs=4)
    np.testing.assert_allclose(weights_of(history)[:, 0], [1, 1, 0.1, 0.1])
    assert_total_is_weighted_sum(history)


def test_non_finite_losses_keep_the_weights_with_one_warning():
    script = Script("cls_loss", [1.0, float("nan"), float("inf"), 1.0])
    balancer = LossWeightBalancer("magnitude", smoothing=0.0)
    with pytest.warns(UserWarning, match="non-finite") as caught:
        history = fit(two_heads(), [script, balancer], epochs=4)
    assert sum("non-finite" in str(w.message) for w in caught) == 1
    w = weights_of(history)
    np.testing.assert_allclose(w[2], w[1])
    np.testing.assert_allclose(w[3], w[1])
    assert np.all(np.isfinite(w))


def test_validation_losses_drive_the_weights():
    x, y = data(seed=1)
    yv = {"threshold": np.full_like(y["threshold"], 10.0), "cls": y["cls"]}
    balancer = LossWeightBalancer("magnitude", smoothing=0.0, use_validation=True)
    history = fit(two_heads(), [balancer], epochs=2, validation_data=(x, yv))
    loss = losses_of(history, "val_")
    np.testing.assert_allclose(
        weights_of(history)[1], (1 / loss[0]) * 2 / (1 / loss[0]).sum(), rtol=1e-5
    )


def test_sample_weight_and_subclassed_dict_model():
    class TwoHeads(keras.Model):
        def __init__(self):
            super().__init__()
            self.a = keras.layers.Dense(1)
            self.b = keras.layers.Dense(1)

        def call(self, x):
            return {"threshold": self.a(x), "cls": self.b(x)}

    model = TwoHeads()
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3), loss={"threshold": "mse", "cls": "mse"}
    )
    x, y = data()
    model(x[:1])
    sw = np.linspace(0.5, 1.5, len(x)).astype("float32")
    history = model.fit(
        x,
        y,
        sample_weight=sw,
        epochs=3,
        batch_size=8,
        verbose=0,
        callbacks=[LossWeightBalancer()],
    ).history
    assert_total_is_weighted_sum(history)
    assert weights_of(history)[-1][0] < weights_of(history)[-1][1]


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_weights_and_smoothing(tmp_dir):
    reference = fit(two_heads(lr=1e-3), [LossWeightBalancer(smoothing=0.7)], epochs=5)
    backup = keras.callbacks.BackupAndRestore(tmp_dir)
    with pytest.raises(RuntimeError):
        fit(
            two_heads(lr=1e-3),
            [LossWeightBalancer(smoothing=0.7), backup, Interrupt()],
            epochs=5,
        )
    keras.backend.clear_session()
    resumed = fit(
        two_heads(lr=1e-3),
        [LossWeightBalancer(smoothing=0.7), keras.callbacks.BackupAndRestore(tmp_dir)],
        epochs=5,
    )
    np.testing.assert_allclose(
        weights_of(resumed), weights_of(reference)[2:], rtol=1e-5
    )


def test_checkpoint_loads_into_a_plain_model(tmp_dir):
    model = two_heads(lr=1e-3)
    path = f"{tmp_dir}/w.weights.h5"
    fit(
        model,
        [
            LossWeightBalancer(),
            keras.callbacks.ModelCheckpoint(path, save_weights_only=True),
        ],
    )
    plain = two_heads(lr=1e-3)
    plain.optimizer.build(plain.trainable_variables)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain.load_weights(path)
    for a, b in zip(plain.weights, model.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    model.save(f"{tmp_dir}/m.keras")
    keras.models.load_model(f"{tmp_dir}/m.keras")


def test_single_output_model_is_left_alone():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x, y = data()
    history = model.fit(
        x, y["cls"], epochs=1, verbose=0, callbacks=[LossWeightBalancer()]
    ).history
    assert not any(k.endswith("_loss_weight") for k in history)


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(strategy="magnitudes"), "Did you mean 'magnitude'"),
        (dict(smoothing=1.0), "smoothing"),
        (dict(temperature=0.0), "temperature"),
        (dict(update_every=0), "update_every"),
        (dict(min_weight=2.0, max_weight=1.0), "min_weight"),
        (dict(normalize="sum"), "normalize"),
        (dict(strategy="schedule"), "schedule"),
        (dict(strategy="schedule", schedule={3: {"a": 1.0}}), "epoch 0"),
        (dict(targets={"a": -1.0}), r"targets\['a'\]"),
    ],
)
def test_bad_arguments_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        LossWeightBalancer(**kw)


def test_unknown_component_is_refused_at_train_begin():
    balancer = LossWeightBalancer(targets={"treshold": 2.0})
    with pytest.raises(ValueError, match="Did you mean 'threshold'"):
        fit(two_heads(), [balancer], epochs=1)


def test_round_trip():
    balancer = LossWeightBalancer(
        "schedule", schedule={0: {"a": 1.0}}, interpolate=True, min_weight=0.1
    )
    serialized = keras.saving.serialize_keras_object(balancer)
    clone = keras.saving.deserialize_keras_object(serialized)
    assert clone.get_config() == balancer.get_config()


def test_schedule_interpolates_between_epochs_and_fixed_holds():
    balancer = LossWeightBalancer(
        "schedule",
        schedule={0: {"threshold": 1.0, "cls": 1.0}, 4: {"threshold": 0.2}},
        interpolate=True,
        normalize="none",
    )
    history = fit(two_heads(), [balancer], epochs=5)
    np.testing.assert_allclose(
        weights_of(history)[:, 0], [1.0, 0.8, 0.6, 0.4, 0.2], rtol=1e-6
    )
    fixed = LossWeightBalancer("fixed", weights={"cls": 4.0})
    history = fit(two_heads(), [fixed], epochs=2)
    np.testing.assert_allclose(weights_of(history), [[1.0, 4.0], [1.0, 4.0]])
    assert_total_is_weighted_sum(history)


@pytest.mark.parametrize("form", ["list", "single"])
def test_list_and_single_losses(form):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    outputs = [
        keras.layers.Dense(1, name="threshold")(inputs),
        keras.layers.Dense(1, name="cls")(inputs),
    ]
    model = keras.Model(inputs, outputs)
    loss = ["mse", "mse"] if form == "list" else "mse"
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss=loss)
    x, y = data()
    history = model.fit(
        x,
        [y["threshold"], y["cls"]],
        epochs=3,
        batch_size=8,
        verbose=0,
        callbacks=[LossWeightBalancer()],
    ).history
    assert_total_is_weighted_sum(history)
    assert weights_of(history)[-1][0] < weights_of(history)[-1][1]


@pytest.mark.parametrize("weights", [None, {"cls": 1.5}])
def test_fixed_at_the_compiled_weights_adds_no_state_to_the_step(weights):
    # `fixed` at the weights given to compile has nothing to change: the
    # compiled loss keeps its constants and the step carries no variable of
    # ours (each costs Keras's JAX loop ~2 us per step). The weights are
    # still logged, and the total is still their weighted sum.
    compiled = {"threshold": 0.5, "cls": 1.5}

    def fit_with(callbacks):
        model = two_heads(lr=1e-3, loss_weights=compiled)
        history = fit(model, callbacks, epochs=2)
        return len(model.metrics_variables), history

    bare, plain = fit_with([])
    carried, history = fit_with([LossWeightBalancer("fixed", weights=weights)])
    assert carried == bare
    np.testing.assert_allclose(weights_of(history), [[0.5, 1.5]] * 2)
    assert_total_is_weighted_sum(history)
    # And training is the fit without the callback, step for step.
    for key in ("loss", *(f"{n}_loss" for n in NAMES)):
        np.testing.assert_allclose(history[key], plain[key], rtol=1e-6)
    # Other fixed weights do need the variables, and the count sees them.
    carried, history = fit_with([LossWeightBalancer("fixed", weights={"cls": 3.0})])
    assert carried == bare + 2
    np.testing.assert_allclose(weights_of(history), [[0.5, 3.0]] * 2)
    assert_total_is_weighted_sum(history)
