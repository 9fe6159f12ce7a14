"""PhaseLR(peak_lr=...): ratios of a peak, the peak found by a range test
at train begin, used in the step, logged, kept on resume, and a fallback
that says why."""

import warnings

import keras
import numpy as np
import pytest
from helpers import probe_data, rate_probe
from test_lr_finder import quadratic, quadratic_data

import keras_multiphase as km
from keras_multiphase import PhaseLR
from keras_multiphase.lr_finder import range_test

RATIOS = (0.2, 1.0, 0.02)


def shape(**kwargs):
    return PhaseLR(
        peak_lr="auto",
        phases=[
            {"name": "a", "ratio": RATIOS[0], "steps": 4},
            {"name": "b", "ratio": RATIOS[1], "steps": 4},
            {"name": "c", "ratio": RATIOS[2]},
        ],
        **kwargs,
    )


def replay(peak, steps):
    """SGD on (w - 3)^2 from w = 0 at ratio x peak, in float32 rates."""
    w = 0.0
    for step in range(steps):
        ratio = RATIOS[min(step // 4, 2)]
        rate = float(np.float32(ratio) * np.float32(peak))
        w -= rate * 2 * (w - 3.0)
    return w


def test_auto_peak_is_found_logged_and_applied_in_the_step():
    model = quadratic()
    x, y = quadratic_data(32)
    phase_lr = shape()
    history = model.fit(
        x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[phase_lr]
    ).history
    peaks = history["peak_lr"]
    assert peaks == [peaks[0]] * 3
    result = phase_lr.range_test_result
    assert result.conclusive and peaks[0] == pytest.approx(result.suggestion)
    assert 0.05 <= peaks[0] <= 1.0  # the good rates of this problem
    # The weight moved by ratio x peak from w = 0: the range test left the
    # starting point as it was and the step used the found peak.
    w = float(model.layers[0].kernel.numpy()[0, 0])
    np.testing.assert_allclose(w, replay(peaks[0], 12), rtol=1e-5)
    assert history["learning_rate"][1] == pytest.approx(peaks[0], rel=1e-6)


@pytest.fixture
def range_tests(monkeypatch):
    """The range tests run (one entry each)."""
    calls = []
    original = range_test.find_lr

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr("keras_multiphase.lr_finder.find_lr", counting)
    return calls


def test_continuation_reuses_the_peak(range_tests):
    calls = range_tests
    model = quadratic()
    x, y = quadratic_data(32)
    phase_lr = shape()
    first = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[phase_lr])
    second = model.fit(
        x, y, batch_size=8, epochs=3, initial_epoch=1, verbose=0, callbacks=[phase_lr]
    )
    assert len(calls) == 1
    assert second.history["peak_lr"][0] == first.history["peak_lr"][0]


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_with_the_peak_it_used(tmp_dir, monkeypatch):
    x, y = quadratic_data(32)
    model = quadratic()
    backup = keras.callbacks.BackupAndRestore(tmp_dir)
    with pytest.raises(RuntimeError):
        model.fit(
            x,
            y,
            batch_size=8,
            epochs=3,
            shuffle=False,
            verbose=0,
            callbacks=[shape(), backup, Interrupt()],
        )
    first_peak = None
    # A new process would test a fresh model again; make that test find
    # another value, to see which one the resumed run uses.
    original = range_test.find_lr

    def other(*args, **kwargs):
        result = original(*args, **kwargs)
        nonlocal first_peak
        first_peak = result.suggestion
        result.suggestion = result.suggestion / 7
        return result

    monkeypatch.setattr("keras_multiphase.lr_finder.find_lr", other)
    resumed_model = quadratic()
    history = resumed_model.fit(
        x,
        y,
        batch_size=8,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[shape(), keras.callbacks.BackupAndRestore(tmp_dir)],
    ).history
    # Resumed at epoch 2 with the peak of the interrupted run.
    assert len(history["peak_lr"]) == 1
    assert history["peak_lr"][0] == pytest.approx(first_peak, rel=1e-6)
    np.testing.assert_allclose(
        float(resumed_model.layers[0].kernel.numpy()[0, 0]),
        replay(first_peak, 12),
        rtol=1e-5,
    )


def test_inconclusive_test_falls_back_to_the_optimizer_rate_with_a_warning():
    model = rate_probe(keras.optimizers.SGD(0.01))  # loss = mean(y_pred) < 0
    x, y = probe_data(4)
    with pytest.warns(UserWarning, match="negative_loss.*optimizer's own rate"):
        history = model.fit(
            x, y, batch_size=2, epochs=2, verbose=0, callbacks=[shape()]
        ).history
    assert history["peak_lr"] == [pytest.approx(0.01)] * 2
    # The step ran at ratio x 0.01: -w is the sum of the applied rates.
    applied = -float(model.layers[0].kernel.numpy()[0, 0])
    np.testing.assert_allclose(applied, 4 * 0.002 + 4 * 0.01, rtol=1e-5)


def test_generator_data_falls_back_with_a_warning():
    model = quadratic(keras.optimizers.SGD(0.05))
    x, y = quadratic_data(32)

    def batches():
        while True:
            for i in range(0, 32, 8):
                yield x[i : i + 8], y[i : i + 8]

    with pytest.warns(UserWarning, match="one-shot iterator"):
        history = model.fit(
            batches(), steps_per_epoch=4, epochs=1, verbose=0, callbacks=[shape()]
        ).history
    assert history["peak_lr"] == [pytest.approx(0.05)]


def test_numeric_peak_needs_no_test(monkeypatch):
    monkeypatch.setattr(
        "keras_multiphase.lr_finder.find_lr",
        lambda *a, **k: pytest.fail("no range test expected"),
    )
    model = quadratic()
    x, y = quadratic_data(32)
    phase_lr = PhaseLR(peak_lr=0.1, phases=[{"ratio": 0.5, "steps": 4}, {"lr": 0.01}])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        history = model.fit(
            x, y, batch_size=8, epochs=2, verbose=0, callbacks=[phase_lr]
        ).history
    assert history["learning_rate"] == [pytest.approx(0.05), pytest.approx(0.01)]
    assert history["peak_lr"] == [pytest.approx(0.1)] * 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"peak_lr": 0, "phases": [{"ratio": 1.0}]}, "peak_lr.*> 0"),
        ({"peak_lr": "autoo", "phases": [{"ratio": 1.0}]}, "peak_lr.*'auto'"),
        ({"phases": [{"ratio": 1.0}]}, "ratio.*no `peak_lr`"),
        ({"peak_lr": 1.0, "phases": [{"ratio": 1.0, "lr": 1.0}]}, "exactly one"),
        ({"peak_lr": 1.0, "phases": [{"ratio": -1.0}]}, "ratio.*> 0"),
        (
            {"peak_lr": 1.0, "phases": [{"ratio": 1.0}], "range_test": {"a": 1}},
            "range_test",
        ),
        (
            {"peak_lr": "auto", "phases": [{"ratio": 1.0}], "range_test": {"x": 1}},
            "unknown key",
        ),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PhaseLR(**kwargs)


def test_round_trip():
    phase_lr = shape(range_test={"num_steps": 50, "suggestion": "steep"})
    config = phase_lr.get_config()
    assert config["peak_lr"] == "auto"
    assert config["range_test"] == {"num_steps": 50, "suggestion": "steep"}
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(phase_lr)
    )
    assert again.get_config() == config
    assert km.preset_to_yaml([phase_lr]).count("peak_lr: auto") == 1


@pytest.mark.parametrize("verbose", [1, 2])
def test_the_range_test_is_titled_reported_once_and_in_history(capsys, verbose):
    model = quadratic()
    x, y = quadratic_data(32)
    history = model.fit(
        x, y, batch_size=8, epochs=2, verbose=verbose, callbacks=[shape()]
    )
    out = capsys.readouterr().out
    assert out.count("Learning-rate range test: rate 1.0e-07 to 1.0e+01") == 1
    # The title comes before the sweep's bar, which comes before epoch 1.
    assert out.index("Learning-rate range test") < out.index("Epoch 1/2")
    result = history.range_test
    line = f"range test: peak {result.suggestion:.3g} (rule blend, status ok"
    assert out.count(line) == 1
    assert history.history["peak_lr"] == [pytest.approx(result.suggestion)] * 2


def test_the_range_test_is_silent_under_fit_verbose_0(capsys):
    model = quadratic()
    x, y = quadratic_data(32)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[shape()])
    assert "range test" not in capsys.readouterr().out


def _one_cycle_fit(max_lr, epochs=3, initial_epoch=0, model=None, callback=None):
    model = model or quadratic()
    x, y = quadratic_data(32)
    callback = callback or km.OneCycle(max_lr=max_lr)
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,
        verbose=0,
        callbacks=[callback],
    )
    return model, history


def test_one_cycle_auto_peak_is_found_logged_and_applied_in_the_step():
    model, history = _one_cycle_fit("auto")
    found = history.range_test.suggestion
    assert history.history["peak_lr"] == [pytest.approx(found)] * 3
    assert 0.05 <= found <= 1.0  # the good rates of this problem
    # The same run with that peak given moves the weight identically: the
    # step used the found peak (the range test left the start as it was).
    given, _ = _one_cycle_fit(found)
    np.testing.assert_allclose(
        model.get_weights()[0], given.get_weights()[0], rtol=1e-5
    )
    away, _ = _one_cycle_fit(1e-3)
    assert not np.allclose(model.get_weights()[0], away.get_weights()[0])


def test_one_cycle_continuation_reuses_the_peak(range_tests):
    calls = range_tests
    callback = km.OneCycle(max_lr="auto")
    model, first = _one_cycle_fit(None, epochs=1, callback=callback)
    _, second = _one_cycle_fit(
        None, epochs=3, initial_epoch=1, model=model, callback=callback
    )
    assert len(calls) == 1
    assert second.history["peak_lr"][0] == first.history["peak_lr"][0]


@pytest.mark.parametrize(
    "max_lr, match", [("fast", "'fast'"), (-1.0, "max_lr=-1.0"), ([1], r"\[1\]")]
)
def test_one_cycle_max_lr_is_checked(max_lr, match):
    with pytest.raises(ValueError, match=match):
        km.OneCycle(max_lr=max_lr)


def test_every_shipped_preset_names_an_auto_peak():
    from keras_multiphase.preset import load_preset

    for name in km.presets():
        configs = {cls: config for cls, config, *_ in load_preset(name)}
        peak = configs.get("PhaseLR", {}).get("peak_lr")
        assert "auto" in (peak, configs.get("OneCycle", {}).get("max_lr")), name


@pytest.mark.parametrize("name", ["multiphase", "wsd", "sgdr", "one_cycle"])
def test_every_shipped_preset_finds_its_peak(name):
    model = quadratic()
    x, y = quadratic_data(32)
    callbacks = km.preset(name)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
    assert history.range_test.conclusive
    assert (
        history.history["peak_lr"] == [pytest.approx(history.range_test.suggestion)] * 2
    )
