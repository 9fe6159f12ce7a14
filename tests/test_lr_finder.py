"""find_lr: the model is left bitwise as found, the suggestion is right on
a problem whose good rate is known, inconclusive sweeps say so."""

import inspect
import sys

import keras
import numpy as np
import pytest
from helpers import SPE_VALUES

import keras_multiphase as km
from keras_multiphase.lr_finder import suggestions


def quadratic(optimizer=None, steps_per_execution=1):
    """loss = (w - 3)^2 with x = 1: SGD with rate r multiplies the error by
    (1 - 2r) each step, so the fastest rate is 0.5 and rates above 1
    diverge."""
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(0.01),
        loss="mse",
        steps_per_execution=steps_per_execution,
    )
    return model


def quadratic_data(n=64):
    return np.ones((n, 1), "float32"), np.full((n, 1), 3.0, "float32")


def two_heads(seed=0):
    inputs = keras.Input((6,))
    h = keras.layers.Dense(16, activation="relu")(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(0.2)(h)
    outputs = {
        "big": keras.layers.Dense(1, name="big")(h),
        "cls": keras.layers.Dense(1, activation="sigmoid", name="cls")(h),
    }
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={"big": "mse", "cls": "binary_crossentropy"},
        metrics={"cls": ["accuracy"]},
    )
    return model


def two_head_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = {
        "big": (50 + 10 * x[:, :1]).astype("float32"),
        "cls": (x[:, 1:2] > 0).astype("float32"),
    }
    return x, y


class Pairs(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, i):
        part = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[part], {k: v[part] for k, v in self.y.items()}


def snapshot(model):
    variables = list(model.variables) + list(model.optimizer.variables)
    return [np.array(v.numpy(), copy=True) for v in variables]


def data_for(kind, x, y):
    if kind == "arrays":
        return {"x": x, "y": y, "batch_size": 16}
    if kind == "pydataset":
        return {"x": Pairs(x, y, 16)}
    if kind == "tf.data":
        tf = pytest.importorskip("tensorflow")
        return {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(16)}
    adaptive = km.AdaptiveBatch(lambda batch_size: (x, y), schedule={0: 16})
    return {"x": adaptive.data}


@pytest.mark.parametrize("kind", ["arrays", "pydataset", "tf.data", "adaptive"])
def test_model_left_bitwise_as_found(kind):
    x, y = two_head_data()
    model = two_heads()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # non-zero slots
    before = snapshot(model)
    iterations = int(model.optimizer.iterations.numpy())
    result = km.find_lr(model, **data_for(kind, x, y), num_steps=30, verbose=0)
    assert len(result.losses) > 10  # the sweep really trained
    after = snapshot(model)
    assert len(after) == len(before)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations.numpy()) == iterations
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-3)


def test_training_after_the_test_is_unchanged():
    """The next fit follows the trajectory it would have without the test:
    the rate, the slots and the traced step are all the optimizer's own."""
    x, y = two_head_data()
    finals = []
    for run_test in (False, True):
        keras.utils.set_random_seed(3)
        model = two_heads()
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
        if run_test:
            km.find_lr(model, x, y, batch_size=16, num_steps=20, verbose=0)
        keras.utils.set_random_seed(4)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
        finals.append(snapshot(model))
    for a, b in zip(*finals, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("steps_per_execution", SPE_VALUES)
def test_suggestion_on_a_problem_whose_good_rate_is_known(steps_per_execution):
    model = quadratic(steps_per_execution=steps_per_execution)
    x, y = quadratic_data()
    result = km.find_lr(model, x, y, batch_size=8, verbose=0)
    assert result.status == "ok", result.reason
    # Fastest at 0.5; every rate in (0, 1) converges; above 1 diverges.
    assert 0.05 <= result.suggestion <= 1.0
    assert result.diverged_at is not None and result.diverged_at > 1.0
    # The applied rates are the planned exponential sweep.
    ratios = result.rates[1:] / result.rates[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-4)
    # The first steps at tiny rates leave the loss at (0 - 3)^2 = 9.
    np.testing.assert_allclose(result.losses[0], 9.0, rtol=1e-5)
    assert float(model.layers[0].kernel.numpy()[0, 0]) == 0.0


def test_losses_are_those_of_the_steps_at_the_planned_rates():
    """Replays the sweep in NumPy: w <- w - r_i * 2 (w - 3)."""
    model = quadratic()
    x, y = quadratic_data()
    result = km.find_lr(model, x, y, batch_size=8, num_steps=40, end_lr=0.5, verbose=0)
    w, want = 0.0, []
    for rate in result.rates:
        want.append((w - 3.0) ** 2)
        w -= rate * 2 * (w - 3.0)
    np.testing.assert_allclose(result.losses, want, rtol=1e-4)


def test_multi_output_loss_is_the_weighted_total():
    x, y = two_head_data()
    model = two_heads()
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        loss={"big": "mse", "cls": "binary_crossentropy"},
        loss_weights={"big": 0.0, "cls": 1.0},
    )
    result = km.find_lr(
        model, x, y, batch_size=16, num_steps=12, end_lr=1e-6, verbose=0
    )
    # With the big head's weight 0 the total is the cross-entropy alone.
    assert np.all(result.losses < 5.0)


def test_noisy_dip_before_the_fall_is_not_chosen():
    """A sweep whose flat start has one very low batch (the failure mode of
    a naive steepest-fall rule) and whose real fall is at indices 60-75."""
    rates = np.geomspace(1e-6, 1.0, 100)
    rng = np.random.default_rng(0)
    losses = np.full(100, 10.0) * np.exp(rng.normal(0, 0.05, 100))
    losses[15] = 2.0  # one noisy batch
    losses[60:76] = np.geomspace(10.0, 0.5, 16)
    losses[76:90] = 0.5
    losses[90:] = np.geomspace(0.5, 50, 10)
    naive = int(np.argmin(np.gradient(np.log(losses), np.log(rates))[10:])) + 10
    assert naive < 20  # what the naive rule picks: the noise
    index = suggestions.steep(rates, suggestions.smooth(losses))
    assert 58 <= index <= 76
    assert 58 <= suggestions.blend(rates, suggestions.smooth(losses)) <= 80


def test_inconclusive_nan_at_once():
    model = quadratic()
    x, y = quadratic_data()
    y[:] = np.nan
    result = km.find_lr(model, x, y, batch_size=8, verbose=0)
    assert result.status == "nan_at_once"
    assert result.suggestion is None and not result.conclusive
    assert "not finite" in result.reason


def test_inconclusive_never_fell():
    # relu(0 * x + 0) = 0 has zero gradient: the loss cannot change.
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, activation="relu", kernel_initializer="zeros"),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")
    x, y = quadratic_data()
    result = km.find_lr(model, x, y, batch_size=8, verbose=0)
    assert result.status == "never_fell"
    assert result.suggestion is None
    assert "never fell" in result.reason


def test_inconclusive_never_diverged():
    model = quadratic()
    x, y = quadratic_data()
    result = km.find_lr(model, x, y, batch_size=8, end_lr=0.03, verbose=0)
    assert result.status == "never_diverged"
    assert "end_lr" in result.reason


def test_other_rules_and_plot(tmp_path):
    model = quadratic()
    x, y = quadratic_data()
    result = km.find_lr(model, x, y, batch_size=8, verbose=0)
    for rule in ("steep", "valley", "minimum", "blend"):
        assert 1e-4 < result.suggest(rule) < 1.5
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    figure = result.plot(path=tmp_path / "lr.png")
    assert (tmp_path / "lr.png").exists()
    assert_nothing_clipped(figure)
    assert_nothing_clipped(km.plot_schedule(km.preview("multiphase", 4, 5)))
    peak = f"{result.suggestion:.3g}"
    assert str(result).startswith(f"LRFinderResult: range test: peak {peak}")


def assert_nothing_clipped(figure):
    """Everything each axes draws (title, labels, tick labels, legend) lies
    inside the figure as a plain savefig draws it."""
    figure.canvas.draw()
    inside = figure.bbox
    for ax in figure.axes:
        box = ax.get_tightbbox()
        assert box.x0 >= inside.x0 - 1 and box.x1 <= inside.x1 + 1, (ax, box)
        assert box.y0 >= inside.y0 - 1 and box.y1 <= inside.y1 + 1, (ax, box)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"start_lr": 0}, "start_lr"),
        ({"end_lr": 1e-8}, "end_lr"),
        ({"num_steps": 3}, "num_steps"),
        ({"suggestion": "best"}, "suggestion"),
        ({"diverge_threshold": 1.0}, "diverge_threshold"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments(kwargs, name):
    model = quadratic()
    x, y = quadratic_data()
    with pytest.raises(ValueError, match=name):
        km.find_lr(model, x, y, verbose=0, **kwargs)


def test_uncompiled_model_and_y_with_dataset():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    x, y = quadratic_data()
    with pytest.raises(ValueError, match="compile"):
        km.find_lr(model, x, y)
    model = quadratic()
    with pytest.raises(ValueError, match="`y`"):
        km.find_lr(model, Pairs(x, {"dense": y}, 8), y, verbose=0)


def test_train_function_rebuilt_or_left_unbuilt():
    model = quadratic()
    x, y = quadratic_data()
    assert model.train_function is None
    km.find_lr(model, x, y, batch_size=8, num_steps=12, verbose=0)
    assert model.train_function is None


def test_default_rule_is_the_geometric_mean_of_steep_and_minimum():
    """Pins the default rule's formula on a sweep where its two parts are
    far apart: the steepest fall at index 40 and a tenth of the minimum's
    rate at index 70, on a geometric grid, so the geometric mean is index
    55 exactly (an arithmetic mean of the rates would give 65, either part
    alone 40 or 70)."""
    rates = np.geomspace(1e-6, 1.0, 100)
    steps = np.arange(100, dtype="float64")
    logs = -3.0 * (1.0 + np.tanh((steps - 40.0) / 4.0))  # falls, steepest at 40
    logs -= 0.02 * np.clip(steps - 50.0, 0.0, None)  # then slowly, to the edge
    logs += np.where(steps > 90, 0.5 * (steps - 90.0) ** 2, 0.0)  # diverges
    losses = 10.0 * np.exp(logs)
    smoothed = suggestions.smooth(losses)
    assert suggestions.steep(rates, smoothed) == 40
    assert suggestions.minimum(rates, smoothed) == 70
    assert suggestions.blend(rates, smoothed) == 55
    default = inspect.signature(km.find_lr).parameters["suggestion"].default
    assert default == "blend"
    assert suggestions.SUGGESTIONS[default] is suggestions.blend


def test_plots_name_their_extra_when_matplotlib_is_missing(monkeypatch):
    model = quadratic()
    x, y = quadratic_data()
    result = km.find_lr(model, x, y, batch_size=8, num_steps=20, verbose=0)
    schedule = km.preview("multiphase", epochs=2, steps_per_epoch=2)
    for name in ("matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ModuleNotFoundError, match=r"keras-multiphase\[plot\]"):
        result.plot()
    with pytest.raises(ModuleNotFoundError, match=r"keras-multiphase\[plot\]"):
        km.plot_schedule(schedule)


def test_progress_follows_fits_verbose_rule(capsys):
    """verbose=2 (Keras's advice for logs that are not a terminal) prints
    plain lines: the title, the bar's one line, the result; 1 and "auto"
    draw Keras's bar; anything else is refused."""
    x, y = quadratic_data()
    km.find_lr(quadratic(), x, y, batch_size=8, num_steps=20, verbose=2)
    title, bar, result = capsys.readouterr().out.splitlines()
    assert title.startswith("Learning-rate range test: rate 1.0e-07 to 1.0e+01")
    assert bar.startswith("20/20") and result.startswith("range test: ")
    out = "\n".join([title, bar, result])
    assert not any(code in out for code in ("\r", "\b", "\x1b"))
    for verbose in (1, "auto"):
        km.find_lr(quadratic(), x, y, batch_size=8, num_steps=20, verbose=verbose)
        assert "\r" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"verbose.*Received: verbose=3"):
        km.find_lr(quadratic(), x, y, verbose=3)


@pytest.mark.filterwarnings("ignore:PhaseLR")
def test_auto_peak_sweep_reports_as_fit_does(capsys):
    """PhaseLR's range test inside `fit(verbose=2)` writes no control codes."""
    x, y = quadratic_data()
    model = quadratic()
    callback = km.PhaseLR(
        peak_lr="auto",
        phases=[{"name": "a", "ratio": 1.0}],
        range_test={"num_steps": 20},
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=2, callbacks=[callback])
    out = capsys.readouterr().out
    assert "20/20" in out  # the sweep's one line
    assert not any(code in out for code in ("\r", "\b", "\x1b"))
