"""Presets: the recipe in History, preview == training, YAML, CLI, wheel."""

import os
import shutil
import subprocess
import sys
import warnings
import zipfile

import keras
import numpy as np
import pytest
from helpers import BACKEND, fit_probe, probe_data, rate_probe, weight

import keras_multiphase as km
from keras_multiphase import PresetError, preset, preset_to_yaml, preview

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("epochs", [10, 20])
def test_multiphase_recipe_in_history(epochs):
    """Each phase (10% / 80% / 10% of the run) holds at least one epoch's
    first step, whose rate is the one logged."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    history = model.fit(
        x,
        x[:, :1],
        epochs=epochs,
        batch_size=16,
        verbose=0,
        callbacks=preset("multiphase"),
    ).history
    lr, peak = history["learning_rate"], history["peak_lr"]
    assert len(set(peak)) == 1 and peak[0] > 0  # found once, then kept
    peak = peak[0]
    assert lr[0] <= peak / 5 * (1 + 1e-6)
    assert max(lr) == pytest.approx(peak, rel=1e-6)
    assert lr[-1] <= peak / 50 * (1 + 1e-6)
    assert history["phase"][0] == 0 and history["phase"][-1] == 2
    assert history["phase"].count(1) == epochs * 8 // 10


def test_documented_recipe_is_peak_5e_5():
    """preset("multiphase", peak_lr=5e-5) applies exactly 1e-5 / 5e-5 /
    1e-6 in its three phases (warmup, restarts and plateaus aside)."""
    callbacks = preset("multiphase", peak_lr=5e-5)
    phase_lr = callbacks[0]
    model = rate_probe(keras.optimizers.SGD(0.01))
    phase_lr.set_model(model)
    assert [np.float32(r) for r in phase_lr.rates] == [
        np.float32(1e-5),
        np.float32(5e-5),
        np.float32(1e-6),
    ]

    # Through the step: the same weights, bitwise, as the absolute rates.
    def run(phases, **kwargs):
        phase_lr = km.PhaseLR(phases=phases, **kwargs)
        model, _, _ = fit_probe([phase_lr], epochs=3, steps_per_epoch=2)
        return weight(model)

    relative = run(
        [{"ratio": 0.2, "steps": 2}, {"ratio": 1.0, "steps": 2}, {"ratio": 0.02}],
        peak_lr=5e-5,
    )
    absolute = run([{"lr": 1e-5, "steps": 2}, {"lr": 5e-5, "steps": 2}, {"lr": 1e-6}])
    assert relative == absolute
    assert relative == pytest.approx(-(2e-5 + 1e-4 + 2e-6), rel=1e-5)


class StepWeights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.values = []

    def on_train_batch_end(self, batch, logs=None):
        self.values.append(weight(self.model))


@pytest.mark.parametrize("name", ["multiphase", "one_cycle", "wsd"])
def test_preview_equals_what_training_applied_step_for_step(name):
    """For multiphase the probe's loss (mean(y_pred)) goes negative, so
    its range test is inconclusive and the peak is the optimizer's rate,
    which is what preview assumes (base_lr)."""
    _preview_equals_training(name)


@pytest.mark.parametrize("name", ["multiphase", "one_cycle"])
def test_preview_equals_training_on_an_accelerator(accelerator_reads, name):
    """Eager PyTorch on a GPU gathers each step's row (and OneCycle's
    momentum) on the device; the step is never read back to Python while
    the epochs run."""
    seen = []
    _preview_equals_training(name, StepReads(accelerator_reads, seen))
    assert seen and not any(seen)


class StepReads(keras.callbacks.Callback):
    """How many steps were read back to Python during each batch."""

    def __init__(self, reads, seen):
        super().__init__()
        self.reads, self.seen = reads, seen

    def on_train_batch_begin(self, batch, logs=None):
        self.before = len(self.reads)

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(len(self.reads) - self.before)


def _preview_equals_training(name, *extra):
    epochs, steps = 6, 5
    model = rate_probe(keras.optimizers.SGD(0.01))
    recorder = StepWeights()
    x, y = probe_data(steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(
            x,
            y,
            batch_size=2,
            epochs=epochs,
            shuffle=False,
            verbose=0,
            callbacks=[*preset(name), recorder, *extra],
        )
    applied = -np.diff([0.0, *recorder.values])
    expected = preview(name, epochs=epochs, steps_per_epoch=steps, base_lr=0.01)[
        "learning_rate"
    ]
    scale = max(abs(v) for v in recorder.values)
    np.testing.assert_allclose(applied, expected, rtol=1e-4, atol=1e-6 * scale)


def test_overrides():
    callbacks = preset("multiphase", peak_lr=3e-5, **{"PhaseLR.phases.2.ratio": 0.04})
    rates = callbacks[0].rates
    assert rates[1] == 3e-5 and rates[2] == pytest.approx(1.2e-6)
    with_batches = preset("multiphase", rebuild=lambda b: None)
    assert type(with_batches[-1]).__name__ == "AdaptiveBatch"
    with pytest.raises(PresetError, match="matches no parameter.*peak_lr"):
        preset("multiphase", peak_rl=1e-3)
    with pytest.raises(PresetError, match="matches nothing"):
        preset("multiphase", **{"PhaseLR.phases.7.lr": 1e-3})
    with pytest.raises(PresetError, match="no AdaptiveBatch"):
        preset("sgdr", rebuild=lambda b: None)


def test_yaml_round_trip(tmp_dir):
    callbacks = preset("multiphase", rebuild=lambda b: None)
    text = preset_to_yaml(callbacks)
    path = os.path.join(tmp_dir, "mine.yaml")
    with open(path, "w") as f:
        f.write(text)
    loaded = preset(path, rebuild=callbacks[-1].rebuild)
    assert [c.get_config() for c in loaded] == [c.get_config() for c in callbacks]


BAD = {
    "unknown_callback": (
        "callbacks:\n  - PhaseLRR: {phases: [{lr: 1.0}]}\n",
        r"line 2.*unknown callback 'PhaseLRR'.*Did you mean 'PhaseLR'",
    ),
    "unknown_key": (
        "callbacks:\n  - PlateauLR:\n      patiense: 3\n",
        r"line 3.*patiense.*Did you mean 'patience'",
    ),
    "wrong_type": (
        "callbacks:\n  - PlateauLR: {patience: three}\n",
        r"line 2.*patience.*three",
    ),
    "negative_lr": (
        "callbacks:\n  - PhaseLR: {phases: [{lr: -1.0e-5}]}\n",
        r"line 2.*must be > 0.*-1e-05",
    ),
    "fractions": (
        "callbacks:\n  - PhaseLR:\n      phases:\n"
        "        - {lr: 1.0, fraction: 0.5}\n"
        "        - {lr: 1.0, fraction: 0.4}\n",
        r"line 2.*sum to 1",
    ),
    "two_lengths": (
        "callbacks:\n  - PhaseLR:\n      phases:\n"
        "        - {lr: 1.0, epochs: 1, steps: 4}\n"
        "        - {lr: 1.0}\n",
        r"at most one",
    ),
    "malformed": ("callbacks:\n  - PhaseLR: {phases: [\n", r"line \d+: malformed"),
    "top_key": ("callback:\n  - PlateauLR: {}\n", r"callbacks"),
    "param": ("callbacks:\n  - PlateauLR: {patience: $wait}\n", r"\$wait"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_presets_name_file_line_key_and_value(case, tmp_dir):
    text, message = BAD[case]
    path = os.path.join(tmp_dir, f"{case}.yaml")
    with open(path, "w") as f:
        f.write(text)
    with pytest.raises(ValueError, match=message) as info:
        preset(path)
    assert isinstance(info.value, PresetError) and path in str(info.value)


def test_python_tags_are_refused_and_never_run(tmp_dir):
    marker = os.path.join(tmp_dir, "ran")
    path = os.path.join(tmp_dir, "evil.yaml")
    with open(path, "w") as f:
        f.write(f"callbacks: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(PresetError, match="malformed"):
        preset(path)
    assert not os.path.exists(marker)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "keras_multiphase", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_cli(tmp_dir):
    listed = run_cli("presets")
    assert listed.returncode == 0
    assert listed.stdout.split() == km.presets()
    bad = run_cli("preview", "multiphasee", "--epochs", "3", "--steps-per-epoch", "2")
    assert bad.returncode == 2 and "Did you mean 'multiphase'" in bad.stderr
    assert bad.stdout == ""
    pytest.importorskip("matplotlib")  # preview --out draws the schedule
    out = os.path.join(tmp_dir, "schedule.png")
    shown = run_cli(
        "preview",
        "multiphase",
        "--epochs",
        "10",
        "--steps-per-epoch",
        "4",
        "--out",
        out,
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:2] == ["epoch", "phase"]
    assert lines[1].split()[1] == "controlled" and "fine-tune" in lines[10]
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(BACKEND != "jax", reason="backend-independent; run once")
def _can_build_a_wheel_here() -> str | None:
    """Why `pip wheel --no-build-isolation` cannot work in this environment
    (None when it can): it builds with the installed setuptools, which
    needs `bdist_wheel` (setuptools >= 70.1, or the `wheel` package)."""
    import importlib.util

    if importlib.util.find_spec("setuptools") is None:
        return "no setuptools in this environment"
    if (
        importlib.util.find_spec("setuptools.command.bdist_wheel") is None
        and importlib.util.find_spec("wheel") is None
    ):
        return (
            "setuptools here has no bdist_wheel (needs setuptools>=70.1 or the "
            "wheel package; the [test] extra installs both)"
        )
    return None


def test_wheel_contains_the_presets(tmp_dir):
    why = _can_build_a_wheel_here()
    if why:
        pytest.skip(f"cannot build a wheel without isolation: {why}")
    # From a copy of the sources: setuptools writes `build/` and the
    # egg-info next to them, and another run (tests/all_backends.py runs
    # two at a time) may be building there too.
    source = os.path.join(tmp_dir, "src")
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".*", "build", "dist", "*.egg-info", "benchmarks", "examples", "tests"
        ),
    )
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp_dir,
            source,
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = [f for f in os.listdir(tmp_dir) if f.endswith(".whl")][0]
    names = zipfile.ZipFile(os.path.join(tmp_dir, wheel)).namelist()
    for name in km.presets():
        assert f"keras_multiphase/presets/{name}.yaml" in names


def test_multiphase_with_rebuild_on_a_two_head_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(
        inputs,
        {
            "threshold": keras.layers.Dense(1, name="threshold")(inputs),
            "cls": keras.layers.Dense(1, name="cls")(inputs),
        },
    )
    model.compile(optimizer="adam", loss={"threshold": "mse", "cls": "mse"})
    x = np.random.default_rng(0).normal(size=(128, 4)).astype("float32")
    y = {"threshold": np.full((128, 1), 70.0, "float32"), "cls": x[:, :1]}
    callbacks = preset("multiphase", rebuild=lambda b: (x, y))
    adaptive = next(c for c in callbacks if isinstance(c, km.AdaptiveBatch))
    history = model.fit(
        adaptive.data, epochs=10, verbose=0, callbacks=callbacks
    ).history
    assert history["batch_size"] == [64, 32, 32, 32, 32, 32, 32, 32, 32, 16]
    peak = history["peak_lr"][0]
    assert history["learning_rate"][0] <= peak / 5
    assert max(history["learning_rate"]) == pytest.approx(peak, rel=1e-6)
    assert history["learning_rate"][-1] <= peak / 50 * (1 + 1e-6)
    # The default keeps the starting weights (and logs them).
    assert history["threshold_loss_weight"] == [1.0] * 10
    balanced = preset("multiphase", balance="magnitude")
    assert balanced[4].strategy == "magnitude"


def test_cli_presets_imports_no_backend():
    """Listing presets needs no backend: no Keras, TensorFlow, JAX or
    PyTorch module is imported (python -X importtime lists every one)."""
    listed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "keras_multiphase", "presets"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.split() == km.presets()
    imported = [
        line.rsplit("|", 1)[-1].strip()
        for line in listed.stderr.splitlines()
        if line.startswith("import time:")
    ]
    assert "keras_multiphase._preset_files" in imported
    heavy = [
        name
        for name in imported
        if name.split(".")[0] in ("keras", "tensorflow", "jax", "torch", "yaml")
    ]
    assert heavy == []


def test_import_registers_the_serializable_classes():
    """`import keras_multiphase` (not through the command line) loads every
    module, so Keras can deserialize the package's classes at once."""
    code = (
        "import keras, keras_multiphase\n"
        "cls = keras.saving.get_registered_object('keras_multiphase>PhaseSchedule')\n"
        "assert cls is not None, 'not registered'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def _write(tmp_dir, name, content, mode="w"):
    path = os.path.join(tmp_dir, name)
    with open(path, mode) as f:
        f.write(content)
    return path


def test_hostile_files_are_refused_with_the_limit(tmp_dir):
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        laughs.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    bomb = _write(tmp_dir, "bomb.yaml", "params:\n  " + "\n  ".join(laughs) + "\n")
    with pytest.raises(PresetError, match=r"bomb.yaml, line \d+: expands .*100,000"):
        preset(bomb)
    deep = _write(tmp_dir, "deep.yaml", "callbacks: " + "[" * 10000 + "]" * 10000)
    with pytest.raises(PresetError, match=r"deep.yaml, line 1: nests deeper .*32"):
        preset(deep)
    big = _write(tmp_dir, "big.yaml", "callbacks: []\n" + "#" * (1 << 20))
    with pytest.raises(PresetError, match=r"big.yaml: is larger than the 1,048,576"):
        preset(big)


def test_every_error_is_a_preset_error_naming_the_file(tmp_dir):
    with pytest.raises(PresetError, match="is a directory"):
        preset(tmp_dir)
    latin = _write(
        tmp_dir, "latin.yaml", "callbacks: []\n# caf\xe9\n".encode("latin-1"), "wb"
    )
    with pytest.raises(PresetError, match=r"latin.yaml, line 2: is not UTF-8"):
        preset(latin)
    scalar = _write(tmp_dir, "scalar.yaml", "callbacks:\n  - PlateauLR: 5\n")
    with pytest.raises(PresetError, match=r"scalar.yaml, line 2: .*argument names"):
        preset(scalar)
    twice = _write(
        tmp_dir,
        "twice.yaml",
        "callbacks:\n  - PlateauLR: {}\ncallbacks:\n  - PlateauLR: {}\n",
    )
    with pytest.raises(
        PresetError, match=r"twice.yaml, line 3.*duplicate key 'callbacks'"
    ):
        preset(twice)
    trap = _write(
        tmp_dir, "trap.yaml", "callbacks:\n  - PhaseLR: {phases: [{lr: 1e-5}]}\n"
    )
    with pytest.raises(PresetError, match=r"'1e-5' is a string.*1.0e-5"):
        preset(trap)


def test_overrides_address_one_entry():
    def restarts(callbacks):
        return [c for c in callbacks if isinstance(c, km.WarmupCosineRestarts)]

    with pytest.raises(PresetError, match=r"ambiguous.*\[0\]\.min_ratio.*restarts"):
        preset("multiphase", **{"WarmupCosineRestarts.min_ratio": 0.3})
    by_position = restarts(
        preset("multiphase", **{"WarmupCosineRestarts[1].min_ratio": 0.3})
    )
    assert [c.min_ratio for c in by_position] == [1.0, 0.3]
    by_name = restarts(preset("multiphase", **{"restarts.cycle_mult": 3.0}))
    assert [c.cycle_mult for c in by_name] == [1.0, 3.0]
    with pytest.raises(PresetError, match=r"positions 0 to 1.*Received position 2"):
        preset("multiphase", **{"WarmupCosineRestarts[2].min_ratio": 0.3})


def test_overrides_set_arguments_the_yaml_omits():
    (plateau,) = [
        c
        for c in preset("multiphase", **{"PlateauLR.cooldown": 2})
        if isinstance(c, km.PlateauLR)
    ]
    assert plateau.cooldown == 2
    with pytest.raises(PresetError, match=r"`cooldwn` is not an argument.*cooldown"):
        preset("multiphase", **{"PlateauLR.cooldwn": 2})
    with pytest.raises(PresetError, match="matches no entry"):
        preset("multiphase", **{"PlateauLRR.cooldown": 2})


def test_entry_names_are_checked(tmp_dir):
    twice = _write(
        tmp_dir,
        "names.yaml",
        "callbacks:\n  - {name: a, PlateauLR: {}}\n  - {name: a, PlateauLR: {}}\n",
    )
    with pytest.raises(PresetError, match="repeats the entry name 'a'"):
        preset(twice)


def test_multiphase_restarts_are_one_override_away():
    def floors(callbacks):
        kind = km.WarmupCosineRestarts
        return [c.min_ratio for c in callbacks if isinstance(c, kind)]

    assert floors(preset("multiphase")) == [1.0, 1.0]  # warmup; a flat peak
    assert floors(preset("multiphase", restart_min_ratio=0.2)) == [1.0, 0.2]


@pytest.mark.parametrize(
    "text, message",
    [
        ("params: {a: &x [*x]}\ncallbacks: []\n", "recursive structure"),
        ("params: [1, 2]\ncallbacks: []\n", "`params` must map parameter names"),
    ],
    ids=["recursive alias", "params as a list"],
)
def test_fuzzed_presets_fail_with_a_preset_error(tmp_dir, text, message):
    """Found by fuzzing: a RecursionError, and a bare ValueError from dict()."""
    path = os.path.join(tmp_dir, "fuzzed.yaml")
    with open(path, "w") as f:
        f.write(text)
    with pytest.raises(PresetError, match=message):
        preset(path)


def test_preview_marks_the_placeholder_peak():
    assert preview("multiphase", epochs=4, steps_per_epoch=2)["peak_placeholder"]
    given = preset("multiphase", peak_lr=1e-3)
    assert not preview(given, epochs=4, steps_per_epoch=2)["peak_placeholder"]
    shown = run_cli("preview", "multiphase", "--epochs", "3", "--steps-per-epoch", "2")
    assert "placeholder" in shown.stdout and "range test" in shown.stdout


def test_cli_picks_an_installed_backend_or_says_which_to_install(monkeypatch):
    import importlib.util

    from keras_multiphase import __main__ as cli

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow" else real(name, *a),
    )
    assert cli._choose_backend() is None
    assert os.environ["KERAS_BACKEND"] in ("jax", "torch")
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert "pip install 'keras-multiphase[jax]'" in cli._choose_backend()


@pytest.fixture
def fresh_notes(monkeypatch):
    """A process that has said no note yet."""
    from keras_multiphase import _messages

    monkeypatch.setattr(_messages, "SAID", set())


def test_the_skipped_batch_schedule_is_said_once_at_train_begin(capsys, fresh_notes):
    model = rate_probe(keras.optimizers.SGD(0.01))
    x, y = probe_data(2)
    callbacks = preset("multiphase", peak_lr=1e-3)
    assert capsys.readouterr().err == ""  # nothing when the preset is built
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=callbacks)
    assert "batch-size schedule is off" not in capsys.readouterr().out
    for _ in range(2):
        model.fit(x, y, batch_size=2, epochs=1, verbose=2, callbacks=callbacks)
    assert capsys.readouterr().out.count("batch-size schedule is off") == 1
    # A preset built again for the next fit (a notebook's habit): not again.
    again = preset("multiphase", peak_lr=1e-3)
    model.fit(x, y, batch_size=2, epochs=1, verbose=2, callbacks=again)
    assert "batch-size schedule is off" not in capsys.readouterr().out


def test_the_note_is_said_whichever_callback_comes_first(tmp_dir, capsys, fresh_notes):
    path = os.path.join(tmp_dir, "balancer_first.yaml")
    with open(path, "w") as f:
        f.write(
            "callbacks:\n"
            "  - LossWeightBalancer: {strategy: fixed}\n"
            "  - AdaptiveBatch: {schedule: {0: 8}}\n"
        )
    callbacks = preset(path)
    assert [type(c).__name__ for c in callbacks] == ["LossWeightBalancer"]
    model = rate_probe(keras.optimizers.SGD(0.01))
    x, y = probe_data(2)
    model.fit(x, y, batch_size=2, epochs=1, verbose=2, callbacks=callbacks)
    assert capsys.readouterr().out.count("batch-size schedule is off") == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": -3, "steps_per_epoch": 5}, "`epochs` must be an integer >= 1"),
        ({"epochs": 3, "steps_per_epoch": 0}, "Received: steps_per_epoch=0"),
        ({"epochs": 3, "steps_per_epoch": 2, "base_lr": 0}, "base_lr=0"),
    ],
)
def test_preview_names_a_bad_run_length(kwargs, match):
    # Before: empty arrays for epochs=-3, and for steps_per_epoch=0 advice
    # to pass steps_per_epoch to `fit`.
    with pytest.raises(ValueError, match=match):
        preview("multiphase", **kwargs)


def test_a_typo_in_a_dotted_override_is_blamed_on_the_override():
    with pytest.raises(PresetError) as raised:
        preset("multiphase", **{"PhaseLR.phases.1.ratoi": 0.5})
    message = str(raised.value)
    assert "override `PhaseLR.phases.1.ratoi` is invalid" in message
    assert "unknown key(s) ['ratoi']" in message
    assert ", line " not in message  # the shipped file is not at fault


def test_a_bad_file_is_still_blamed_on_its_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("callbacks:\n  - PhaseLR:\n      phases:\n        - {lr: -1.0}\n")
    with pytest.raises(PresetError, match=r"bad.yaml, line 2: .*phases\[0\]"):
        preset(str(path), **{"PhaseLR.verbose": 1})


def test_cli_preview_help_explains_its_options():
    shown = run_cli("preview", "--help")
    assert shown.returncode == 0
    assert "epochs of the run" in shown.stdout
    assert "steps (batches) per epoch" in shown.stdout
