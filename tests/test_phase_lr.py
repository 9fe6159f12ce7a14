"""PhaseLR: the rates the compiled step applies, phase by phase."""

import keras
import numpy as np
import pytest
from helpers import (
    BACKEND,
    SPE_VALUES,
    Script,
    applied_per_epoch,
    assert_applied,
    fit_probe,
    phase_ref,
    probe_data,
    rate_probe,
)

from keras_multiphase import PhaseLR, PhaseSchedule

STEPS = 5  # steps per epoch: phase boundaries below fall inside epochs


@pytest.mark.parametrize("spe", SPE_VALUES)
@pytest.mark.parametrize("kind", ["step", "linear", "cosine"])
def test_rates_applied_inside_the_step(spe, kind):
    phases = [
        {"lr": 0.01, "steps": 7},
        {"lr": 0.03, "steps": 6, "transition": kind, "transition_steps": 3},
        {"lr": 0.002, "transition": kind, "transition_steps": 4},
    ]
    model, log, history = fit_probe(
        [PhaseLR(phases)],
        epochs=5,
        steps_per_epoch=STEPS,
        steps_per_execution=spe,
    )

    def ref(s):
        return phase_ref(
            s, [0.01, 0.03, 0.002], [7, 6], ["step", kind, kind], [0, 3, 4]
        )

    assert_applied(log, applied_per_epoch(ref, 5, STEPS))
    # Logged values: the rate at each epoch's first step, and the phase.
    np.testing.assert_allclose(
        history["learning_rate"], [ref(e * STEPS) for e in range(5)], rtol=1e-5
    )
    assert history["phase"] == [0, 0, 1, 2, 2]  # boundaries at steps 7, 13


def test_rates_applied_on_an_accelerator_without_reading_the_step(accelerator_reads):
    """Eager PyTorch on a GPU: each step gathers its row on the device (a
    read of the step back to Python would wait for the queued steps)."""
    phases = [
        {"lr": 0.01, "steps": 7},
        {"lr": 0.03, "steps": 6, "transition": "cosine", "transition_steps": 3},
        {"lr": 0.002},
    ]
    _, log, history = fit_probe([PhaseLR(phases)], epochs=5, steps_per_epoch=STEPS)

    def ref(s):
        return phase_ref(
            s, [0.01, 0.03, 0.002], [7, 6], ["step", "cosine", "step"], [0, 3, 0]
        )

    assert_applied(log, applied_per_epoch(ref, 5, STEPS))
    np.testing.assert_allclose(
        history["learning_rate"], [ref(e * STEPS) for e in range(5)], rtol=1e-5
    )
    assert accelerator_reads == []


class BatchEndRates(keras.callbacks.Callback):
    """`optimizer.learning_rate` as a callback reads it after each batch."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate))


@pytest.mark.parametrize("epochs", [2, 3])
def test_rates_read_after_each_batch_on_an_accelerator(accelerator_reads, epochs):
    """What a callback reads after a batch is the next step's rate, also
    after an epoch's last batch, and every epoch's rates are gathered on
    the device: the table holds the step after each epoch (2 epochs of 32
    steps would fill 64 rows exactly)."""
    phases = [{"lr": 0.01, "steps": 40}, {"lr": 0.03, "steps": 20}, {"lr": 0.002}]
    reader = BatchEndRates()
    fit_probe([PhaseLR(phases), reader], epochs=epochs, steps_per_epoch=32)
    steps = np.arange(1, 32 * epochs + 1)
    want = np.select([steps < 40, steps < 60], [0.01, 0.03], 0.002)
    np.testing.assert_allclose(reader.rates, want, rtol=1e-6)
    assert accelerator_reads == []


@pytest.mark.skipif(BACKEND == "torch", reason="jit_compile is TF/JAX here")
@pytest.mark.parametrize("jit", [True, False])
def test_rates_exact_with_and_without_jit_compile(jit):
    phases = [
        {"lr": 0.01, "steps": 3},
        {"lr": 0.02, "steps": 4, "transition": "cosine", "transition_steps": 2},
        {"lr": 0.005},
    ]
    _, log, _ = fit_probe(
        [PhaseLR(phases)],
        epochs=3,
        steps_per_epoch=STEPS,
        jit_compile=jit,
        steps_per_execution=4,
    )
    ref = PhaseSchedule(
        [0.01, 0.02, 0.005], [3, 4], ["step", "cosine", "step"], [0, 2, 0]
    )
    want = applied_per_epoch(lambda s: float(ref(s)), 3, STEPS)
    assert_applied(log, want)


@pytest.mark.parametrize("epochs", [4, 10])
def test_fractions_follow_the_number_of_epochs(epochs):
    phases = [
        {"name": "controlled", "lr": 1e-5, "fraction": 0.25},
        {"name": "aggressive", "lr": 5e-5, "fraction": 0.5},
        {"name": "fine-tune", "lr": 1e-6},
    ]
    _, log, history = fit_probe([PhaseLR(phases)], epochs=epochs, steps_per_epoch=4)
    total = epochs * 4
    lengths = [round(0.25 * total), round(0.5 * total)]
    want = applied_per_epoch(
        lambda s: phase_ref(s, [1e-5, 5e-5, 1e-6], lengths), epochs, 4
    )
    assert_applied(log, want)
    assert history["phase"][0] == 0 and history["phase"][-1] == 2
    assert max(history["learning_rate"]) == pytest.approx(5e-5, rel=1e-6)


def test_epoch_lengths_and_open_last_phase():
    phases = [{"lr": 0.02, "epochs": 1.5}, {"lr": 0.01}]
    _, log, _ = fit_probe([PhaseLR(phases)], epochs=3, steps_per_epoch=4)
    want = applied_per_epoch(lambda s: phase_ref(s, [0.02, 0.01], [6]), 3, 4)
    assert_applied(log, want)


def test_plateau_ends_a_phase_early():
    # "score" stops improving after epoch 1: with patience 2 the first phase
    # ends after epoch 3 instead of its nominal 6 epochs.
    phases = [
        {
            "lr": 0.01,
            "epochs": 6,
            "plateau": {
                "monitor": "score",
                "patience": 2,
                "min_delta": 0.0,
                "mode": "min",
            },
        },
        {"lr": 0.03, "epochs": 1},
        {"lr": 0.001},
    ]
    script = Script("score", [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0])
    _, log, history = fit_probe(
        [script, PhaseLR(phases)], epochs=7, steps_per_epoch=STEPS
    )
    assert history["phase"] == [0, 0, 0, 0, 1, 2, 2]
    want = [0.01] * 4 + [0.03] + [0.001] * 2
    assert_applied(log, np.array(want) * STEPS)


def test_plateau_only_phase_waits_for_the_plateau():
    phases = [
        {"lr": 0.02, "plateau": {"monitor": "score", "patience": 1, "mode": "min"}},
        {"lr": 0.005},
    ]
    script = Script("score", [3.0, 2.0, 1.0, 1.0, 1.0])
    _, _, history = fit_probe([script, PhaseLR(phases)], epochs=5, steps_per_epoch=2)
    assert history["phase"] == [0, 0, 0, 0, 1]


def test_second_fit_continues_the_schedule_and_rates_restore_after():
    model, log, _ = fit_probe(
        [PhaseLR([{"lr": 0.01, "steps": 6}, {"lr": 0.02}])], epochs=2, steps_per_epoch=4
    )
    np.testing.assert_allclose(log.totals[-1], 6 * 0.01 + 2 * 0.02, rtol=1e-5)
    # After the fit the optimizer has its own rate back, and a plain fit uses
    # it (the traced step was rebuilt).
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(0.1)
    _, log2, _ = fit_probe([], epochs=1, steps_per_epoch=4, model=model)
    np.testing.assert_allclose(log2.totals[-1], 0.1 + 4 * 0.1, rtol=1e-5)


@pytest.mark.parametrize(
    "phases,message",
    [
        ("fast", "phases"),
        ([], "at least one"),
        ([{"epochs": 2}], "lr"),
        ([{"lr": -1e-3}], r"phases\[0\].lr"),
        ([{"lr": 0.0}], r"phases\[0\].lr"),
        ([{"lr": 1e-3, "epochs": 1, "steps": 4}, {"lr": 1e-4}], "at most one"),
        ([{"lr": 1e-3}, {"lr": 1e-4}], "needs a length"),
        ([{"lr": 1e-3, "fraction": 0.5}, {"lr": 1e-4, "fraction": 0.3}], "sum to 1"),
        ([{"lr": 1e-3, "fraction": 1.0}, {"lr": 1e-4}], "less than 1"),
        (
            [{"lr": 1e-3, "epochs": 1, "transition": "smooth"}, {"lr": 1e-4}],
            "transition",
        ),
        ([{"lr": 1e-3, "epoch": 1}, {"lr": 1e-4}], "unknown key"),
        (
            [{"lr": 1e-3, "epochs": 1, "plateau": {"patience": -1}}, {"lr": 1e-4}],
            "patience",
        ),
        ([{"lr": 1e-3, "epochs": 1, "name": "a"}, {"lr": 1e-4, "name": "a"}], "unique"),
    ],
)
def test_bad_phases_are_refused_at_construction(phases, message):
    with pytest.raises(ValueError, match=message):
        PhaseLR(phases)


def test_epoch_lengths_need_a_known_epoch_size():
    # Keras reads a generator of unknown length through tf.data.
    pytest.importorskip("tensorflow")

    model, _, _ = fit_probe([], epochs=1, steps_per_epoch=1)

    def gen():
        while True:
            yield np.ones((2, 1), "float32"), np.zeros((2, 1), "float32")

    callback = PhaseLR([{"lr": 0.01, "epochs": 1}, {"lr": 0.001}])
    with pytest.raises(ValueError, match="steps per epoch is unknown"):
        model.fit(gen(), epochs=1, callbacks=[callback], verbose=0)


@pytest.mark.skipif(
    tuple(int(p) for p in keras.__version__.split(".")[:2]) < (3, 13),
    reason="Keras < 3.13's progress bar turns every value into a float",
)
@pytest.mark.parametrize("verbose", [1, 2])
def test_progress_bar_and_csv_show_the_phase_as_an_integer(verbose, capsys, tmp_dir):
    path = f"{tmp_dir}/log.csv"
    phase_lr = PhaseLR([{"lr": 0.01, "epochs": 1}, {"lr": 0.001}])
    model = rate_probe()
    x, y = probe_data(2)
    history = model.fit(
        x,
        y,
        batch_size=2,
        epochs=2,
        verbose=verbose,
        callbacks=[phase_lr, keras.callbacks.CSVLogger(path)],
    ).history
    out = capsys.readouterr().out
    assert "phase: 0" in out and "phase: 1" in out
    assert "e+00" not in out.split("phase:")[1][:8]
    assert history["phase"] == [0, 1]
    rows = open(path).read().splitlines()
    header = rows[0].split(",")
    assert [row.split(",")[header.index("phase")] for row in rows[1:]] == ["0", "1"]
