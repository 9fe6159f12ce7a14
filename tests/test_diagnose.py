"""diagnose() and TrainingDynamicsMonitor on synthetic and real histories."""

import warnings

import keras
import numpy as np
import pytest

import keras_multiphase as km

# The documented run: AdamW 2e-4 fixed, batch 48: epoch 0 took the loss from
# 537,177 to ~80, epochs 1 to 7 only from ~80 to ~78; threshold ~70 while the
# other components sat at ~0.5 to 3.
DOCUMENTED = {
    "loss": [537177.0, 80.0, 79.6, 79.3, 78.9, 78.6, 78.2, 78.0],
    "threshold_loss": [530000.0, 72.0, 71.4, 71.0, 70.6, 70.3, 70.1, 70.0],
    "cls_loss": [3.2, 3.1, 3.05, 3.0, 3.0, 3.0, 3.0, 3.0],
    "reg_loss": [1.0, 0.6, 0.55, 0.52, 0.5, 0.5, 0.5, 0.5],
    "learning_rate": [2e-4] * 8,
}
HEALTHY = {
    "loss": [10.0 * 0.8**t for t in range(10)],
    "a_loss": [5.0 * 0.8**t for t in range(10)],
    "b_loss": [5.0 * 0.8**t for t in range(10)],
    "learning_rate": [1e-3 * 0.9**t for t in range(10)],
}


def test_documented_run_shows_every_sign_with_its_numbers():
    report = km.diagnose(DOCUMENTED)
    assert report.problems == (
        "collapse",
        "plateau",
        "dominant_component",
        "constant_learning_rate",
    )
    collapse = report["collapse"].numbers
    assert collapse["start"] == 537177.0 and collapse["after_first_epoch"] == 80.0
    assert collapse["drop_fraction"] == pytest.approx(1 - 80 / 537177)
    assert collapse["share_of_total_improvement"] == pytest.approx(
        (537177 - 80) / (537177 - 78)
    )
    plateau = report["plateau"].numbers
    assert plateau["epochs"] == 6 and plateau["first"] == "epoch 2"
    assert plateau["improvement"] == pytest.approx(2 / 80)
    dominant = report["dominant_component"].numbers
    assert dominant["component"] == "threshold_loss"
    assert dominant["share"] == pytest.approx(70 / 73.5)
    assert report["constant_learning_rate"].numbers["max"] == 2e-4
    text = str(report)
    for phrase in (
        "537,177 (epoch 0) to 80 (epoch 1), a 99.99% drop",
        "6 epoch(s) (epoch 2 to epoch 7) improved the loss by 2.5% in all "
        "(80 -> 78), 0.4% per epoch, under the 1.0% threshold",
        "threshold_loss is 70 of the 73.5 total (95.2%",
        "the other component(s) are 0.5 to 3",
        "stayed at 0.0002 for all 8 epoch(s)",
        "lower, controlled learning rate",
        "Add a warmup",
        "smaller batch",
        "scaled = keras_multiphase.scale_outputs(model, y_train, x=x_train)",
        "loss_weights=scaled.loss_weights",
        "keras.layers.Normalization().adapt(x_train)",
    ):
        assert phrase in text, phrase
    as_dict = report.to_dict()
    assert as_dict["healthy"] is False
    assert as_dict["signs"]["plateau"]["numbers"]["epochs"] == 6
    assert len(as_dict["recommendations"]) == len(report.recommendations) == 6


def test_initial_loss_starts_the_curve_before_epoch_0():
    report = km.diagnose({"loss": DOCUMENTED["loss"][1:]}, initial_loss=537177.0)
    assert report.problems == ("collapse", "plateau")
    assert "537,177 (before training) to 80 (epoch 0)" in str(report)
    assert report["plateau"].numbers["first"] == "epoch 1"
    assert report["dominant_component"].found is None
    assert report["constant_learning_rate"].found is None


def test_healthy_curve_has_no_problem_and_no_recommendation():
    report = km.diagnose(HEALTHY)
    assert report.healthy and report.problems == () and not report.recommendations
    assert "no collapse-then-plateau sign" in str(report)
    assert "Recommendations" not in str(report)


def test_each_sign_alone():
    # Collapse without plateau: the curve keeps improving afterwards.
    loss = [1000.0, 10.0, 8.0, 6.4, 5.1]
    report = km.diagnose({"loss": loss})
    assert report.problems == ("collapse",)
    # Plateau without collapse: steady then flat.
    loss = [10.0, 8.0, 6.4, 6.38, 6.37, 6.36]
    report = km.diagnose({"loss": loss})
    assert report.problems == ("plateau",)
    assert report["plateau"].numbers["epochs"] == 3
    # Two flat epochs are not a plateau with the default patience of 3.
    assert km.diagnose({"loss": loss[:-1]}).problems == ()
    assert km.diagnose({"loss": loss[:-1]}, plateau_patience=2).problems == ("plateau",)
    # A dominant component on an otherwise healthy curve.
    history = dict(HEALTHY, a_loss=[9.0 * 0.8**t for t in range(10)])
    history["b_loss"] = [1.0 * 0.8**t for t in range(10)]
    report = km.diagnose(history)
    assert report.problems == ("dominant_component",)
    assert report["dominant_component"].numbers["share"] == pytest.approx(0.9)
    # A fixed rate with a loss that keeps improving is not a problem.
    history = dict(HEALTHY, learning_rate=[1e-3] * 10)
    report = km.diagnose(history)
    assert report["constant_learning_rate"].found is True
    assert report.healthy
    assert "not a problem while the loss keeps improving" in str(report)


def test_logged_loss_weights_weigh_the_components():
    history = dict(DOCUMENTED)
    history["threshold_loss_weight"] = [0.01] * 8
    report = km.diagnose(history)
    assert "dominant_component" not in report.problems
    # Weighted, threshold is 0.7 and cls (3.0) is the largest, at 3 / 4.2.
    dominant = report["dominant_component"].numbers
    assert dominant["component"] == "cls_loss"
    assert dominant["share"] == pytest.approx(3.0 / 4.2)
    report = km.diagnose(DOCUMENTED, loss_weights={"threshold": 0.01})
    assert "dominant_component" not in report.problems


def test_val_loss_reads_val_components_only():
    history = {
        "loss": [1.0] * 5,
        "a_loss": [1.0] * 5,
        "b_loss": [1.0] * 5,
        "val_loss": [100.0, 50.0, 25.0, 12.0, 6.0],
        "val_a_loss": [5.9] * 5,
        "val_b_loss": [0.1] * 5,
    }
    report = km.diagnose(history, monitor="val_loss")
    assert report.problems == ("dominant_component",)
    assert report["dominant_component"].numbers["component"] == "a_loss"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"monitor": "val_loss"}, "monitor='val_loss'"),
        ({"collapse_share": 1.5}, "collapse_share=1.5"),
        ({"plateau_patience": 0}, "plateau_patience=0"),
        ({"initial_loss": "big"}, "initial_loss='big'"),
        ({"loss_weights": {"a": None}}, "loss_weights['a']=None"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(
        ValueError, match=message.replace("[", r"\[").replace("(", r"\(")
    ):
        km.diagnose({"loss": [3.0, 2.0, 1.0]}, **kwargs)


def test_bad_histories():
    with pytest.raises(ValueError, match="keras.callbacks.History"):
        km.diagnose([1.0, 2.0])
    with pytest.raises(ValueError, match="non-finite"):
        km.diagnose({"loss": [1.0, float("nan")]})
    with pytest.raises(ValueError, match="empty"):
        km.diagnose({"loss": []})


def _offset_regression(rate, n=64, seed=0):
    """y = 300 + small noise from a constant input: SGD fits the offset, then
    sits on the noise floor (collapse, then plateau)."""
    rng = np.random.default_rng(seed)
    x = np.ones((n, 1), "float32")
    y = (300.0 + rng.normal(0, 1.0, (n, 1))).astype("float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(rate), loss="mse")
    return model, x, y


def test_history_object_reads_the_optimizer_rate():
    model, x, y = _offset_regression(0.2)
    history = model.fit(x, y, batch_size=16, epochs=8, shuffle=False, verbose=0)
    report = km.diagnose(history)
    assert "collapse" in report.problems and "plateau" in report.problems
    assert report["constant_learning_rate"].found is True
    assert "constant_learning_rate" in report.problems
    # The same run with a schedule on the optimizer: the rate changed.
    model, x, y = _offset_regression(
        keras.optimizers.schedules.ExponentialDecay(0.2, 4, 0.5)
    )
    history = model.fit(x, y, batch_size=16, epochs=8, shuffle=False, verbose=0)
    assert km.diagnose(history)["constant_learning_rate"].found is False


def test_monitor_warns_once_early_and_stops_on_plateau():
    model, x, y = _offset_regression(0.2)
    monitor = km.TrainingDynamicsMonitor(stop_on="plateau")
    with pytest.warns(km.TrainingDynamicsWarning) as caught:
        history = model.fit(
            x,
            y,
            batch_size=16,
            epochs=30,
            shuffle=False,
            verbose=0,
            callbacks=[monitor],
        )
    texts = [str(w.message) for w in caught if w.category is km.TrainingDynamicsWarning]
    # Collapse (with the fixed rate) after epoch 2, the first epoch at which
    # it can be told (a drop and an epoch after it), then the plateau.
    assert len(texts) == 2
    assert texts[0].startswith("Training dynamics after epoch 2:")
    assert "first-epoch collapse" in texts[0] and "Add a warmup" in texts[0]
    assert "plateau" in texts[1] and "smaller batch" in texts[1]
    assert monitor.warned == ["collapse", "constant_learning_rate", "plateau"]
    # It stopped training as soon as the plateau was seen.
    epochs = len(history.history["loss"])
    assert epochs == monitor.report.epochs < 30
    assert monitor.report["plateau"].numbers["epochs"] == 3
    # Same wording as diagnose() on the same history.
    report = km.diagnose(history.history)
    assert report["plateau"].text in texts[1]
    assert report["collapse"].text in texts[0]


def test_monitor_stays_silent_on_a_healthy_run():
    # SGD on (w - 1)^2 with x = 1, one step per epoch: the loss falls by the
    # factor (1 - 2 lr)^2 = 0.81 every epoch, a steady curve with no collapse.
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    monitor = km.TrainingDynamicsMonitor(stop_on="any")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(
            np.ones((4, 1)),
            np.ones((4, 1)),
            batch_size=4,
            epochs=10,
            verbose=0,
            callbacks=[monitor],
        )
    assert not [w for w in caught if w.category is km.TrainingDynamicsWarning]
    loss = history.history["loss"]
    assert len(loss) == 10
    np.testing.assert_allclose(np.array(loss[1:]) / loss[:-1], 0.81, rtol=1e-4)
    assert monitor.report.healthy


def test_monitor_warns_about_a_dominant_component():
    inputs = keras.Input((2,))
    model = keras.Model(
        inputs,
        {
            "big": keras.layers.Dense(1, name="big")(inputs),
            "small": keras.layers.Dense(1, name="small")(inputs),
        },
    )
    model.compile(optimizer=keras.optimizers.SGD(1e-4), loss="mse")
    x = np.ones((8, 2), "float32")
    y = {"big": np.full((8, 1), 100.0, "float32"), "small": np.ones((8, 1), "float32")}
    monitor = km.TrainingDynamicsMonitor()
    with pytest.warns(km.TrainingDynamicsWarning, match="big_loss is"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.warned == ["dominant_component"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stop_on": "plateaus"}, "stop_on='plateaus'"),
        ({"stop_on": ["collapse", 3]}, "stop_on=\\['collapse', 3\\]"),
        ({"monitor": ""}, "monitor=''"),
        ({"dominance_share": -1}, "dominance_share=-1"),
    ],
)
def test_monitor_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        km.TrainingDynamicsMonitor(**kwargs)


def _two_heads(cls_loss):
    return {
        "loss": [5000.0, 90.0, 80.0, 72.0, 70.0, 69.5],
        "threshold_loss": [4999.0, 89.0, 79.0, 71.0, 69.0, 68.8],
        "cls_loss": cls_loss,
        "cls_accuracy": [0.5, 0.51, 0.49, 0.5, 0.52, 0.5],
    }


def test_a_head_hidden_by_a_dominant_one_is_named_with_its_fix():
    history = _two_heads([0.70, 0.69, 0.70, 0.69, 0.69, 0.70])
    report = km.diagnose(history)
    heads = {head.name: head for head in report.heads}
    assert heads["cls"].problems[-1] == "not_learning"  # (a flat loss is a plateau)
    assert "not_learning" not in heads["threshold"].problems
    learning = heads["cls"].signs[2]
    assert learning.numbers["accuracy"] == 0.5
    assert learning.numbers["improvement"] == pytest.approx(0.01 / 0.70)
    (advice,) = heads["cls"].recommendations
    assert "dominant threshold" in advice and "scale_outputs" in advice
    assert "normalize_heads(model, y_train, x=x_train)" in advice
    assert "stable_heads" in advice  # a classifier: it may be saturated
    assert not report.healthy
    assert "not_learning" in report.to_dict()["heads"]["cls"]["problems"]
    text = str(report)
    assert "cls: [PROBLEM] not learning: its loss" in text and "accuracy 0.5" in text


def test_heads_that_learn_are_ok():
    history = _two_heads([0.70, 0.50, 0.40, 0.35, 0.30, 0.20])
    report = km.diagnose(history)
    heads = {head.name: head for head in report.heads}
    assert "not_learning" not in heads["cls"].problems
    assert "cls: ok, its loss went from 0.7" in str(report)


def test_a_head_stuck_on_its_own_is_told_to_check_its_targets():
    history = {
        "loss": [2.0, 1.9, 1.9, 1.9],
        "a_loss": [1.0, 0.5, 0.4, 0.39],
        "b_loss": [1.0, 1.4, 1.5, 1.51],
    }
    report = km.diagnose(history, learning_share=0.2)
    heads = {head.name: head for head in report.heads}
    assert heads["b"].problems[-1] == "not_learning"
    assert "check its targets" in heads["b"].recommendations[0]
    assert "stable_heads" not in heads["b"].recommendations[0]  # no accuracy
    assert "not_learning" not in heads["a"].problems


def test_one_output_has_no_heads_and_learning_share_is_checked():
    assert km.diagnose({"loss": [3.0, 2.0, 1.0]}).heads == ()
    with pytest.raises(ValueError, match="learning_share"):
        km.diagnose({"loss": [3.0, 2.0]}, learning_share=1.5)


def test_a_classifier_stuck_on_its_own_is_told_about_saturation():
    history = {
        "loss": [2.0, 1.9, 1.9, 1.9],
        "a_loss": [1.0, 0.5, 0.4, 0.39],
        "b_loss": [1.0, 1.4, 1.5, 1.51],
        "b_accuracy": [0.5, 0.5, 0.5, 0.5],
    }
    report = km.diagnose(history, learning_share=0.2)
    (advice,) = {head.name: head for head in report.heads}["b"].recommendations
    assert "may be saturated" in advice and "stable_heads(model)" in advice
    assert "check its targets" in advice
