"""Preview a preset's schedule before training, from the same functions."""

from __future__ import annotations

import numpy as np

from keras_multiphase._state import HostStore
from keras_multiphase._validation import check_int, check_positive


def preview(
    preset_or_callbacks, epochs: int, steps_per_epoch: int, base_lr: float = 1e-3
) -> dict:
    """Per-step learning rate, phase and batch size, without training.

    Needs no model: each callback resolves its configuration for
    `epochs * steps_per_epoch` steps into the engine, which evaluates the
    composed rate with the functions that fill the train step's rate table,
    epoch by epoch, assuming no plateau triggers. `base_lr` is the
    optimizer's rate, used when there is no PhaseLR, and stands for the
    peak of `peak_lr: auto` (found by a range test only when training
    starts). With AdaptiveBatch the batch size of each epoch is reported
    and its `lr_scaling` factor is applied to that epoch's rates, but
    `steps_per_epoch` stays fixed (in training it follows the batch size).

    Example:

    >>> schedule = preview("multiphase", epochs=10, steps_per_epoch=5,
    ...                    base_lr=1e-3)
    >>> float(schedule["learning_rate"].max()) <= 1e-3 * (1 + 1e-6)
    True

    Args:
        preset_or_callbacks: Str (preset name or YAML path) or list of
            callbacks.
        epochs: Int. Epochs of the run.
        steps_per_epoch: Int. Steps per epoch.
        base_lr: Float. The optimizer's own rate.

    Raises:
        ValueError: if `epochs` or `steps_per_epoch` is not an integer >= 1,
            or `base_lr` is not a number > 0.

    Returns:
        Dict of NumPy arrays over steps: `step`, `learning_rate`, `phase`,
        `batch_size` (0 without AdaptiveBatch), `layer_rates` (each layer
        key of PhaseLR phases' `layer_rates` and of LayerRates: its rate
        per step), and `phase_names`;
        `peak_placeholder` is True when a `peak_lr: auto` peak is shown at
        `base_lr`.
    """
    from keras_multiphase.callbacks.adaptive_batch import AdaptiveBatch
    from keras_multiphase.callbacks.lr_callback import LRCallback
    from keras_multiphase.engine.composer import ComposedLearningRate
    from keras_multiphase.preset import preset as load
    from keras_multiphase.schedules import numpy_ops

    if isinstance(preset_or_callbacks, str):
        callbacks = load(preset_or_callbacks)
    else:
        callbacks = list(preset_or_callbacks)
    epochs = check_int("epochs", epochs, minimum=1)
    steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    base_lr = check_positive("base_lr", base_lr)
    params = {"epochs": epochs, "steps": steps_per_epoch, "verbose": 0}
    composer = ComposedLearningRate(original=float(base_lr))
    composer.params = params
    store = HostStore()
    lr_callbacks = [c for c in callbacks if isinstance(c, LRCallback)]
    for callback in lr_callbacks:
        callback.register_for_preview(composer, store, params)
    adaptive = [c for c in lr_callbacks if isinstance(c, AdaptiveBatch)]
    for callback in lr_callbacks:
        if hasattr(callback, "assume_peak"):
            callback.assume_peak(base_lr)
    composer.make_plan(map_epochs=False)  # fixed steps per epoch
    steps = np.arange(epochs * steps_per_epoch)
    rate = np.zeros(steps.shape, "float64")
    phase = np.asarray(composer.phase_at(steps.astype("float32"), numpy_ops), "int64")
    batch = np.zeros_like(steps)
    provider = composer.phase_provider
    for epoch in range(epochs):
        span = slice(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch)
        for callback in adaptive:  # as its on_epoch_begin does
            size = callback.preview_batch_size(epoch, epochs, phase[span.start])
            batch[span] = size
            callback.preview_scale(size)
        rate[span] = composer.evaluate(steps[span])
    return {
        "step": steps,
        "learning_rate": rate,
        "layer_rates": _layer_rates(callbacks, phase, rate),
        "phase": phase,
        "batch_size": batch,
        "phase_names": provider.phase_names if provider else [],
        "peak_placeholder": any(
            "auto" in (getattr(c, "peak_lr", None), getattr(c, "max_lr", None))
            for c in lr_callbacks
        ),
    }


def _layer_rates(callbacks, phase, rate) -> dict:
    """Each layer key's rate per step: the rate times the multiplier the
    key has in the step's PhaseLR phase (`layer_rates`; 1 where the phase
    does not name it) and in LayerRates (no model here: keys, not layers)."""
    from keras_multiphase.callbacks.layer_rates import LayerRates
    from keras_multiphase.callbacks.phase_lr import PhaseLR

    def label(key):
        return key if isinstance(key, str) else key.name

    per_phase, fixed = {}, {}
    for callback in callbacks:
        if isinstance(callback, PhaseLR):
            for k, p in enumerate(callback.phases):
                for key, value in p.get("layer_rates", {}).items():
                    per_phase.setdefault(label(key), {})[k] = value
        elif isinstance(callback, LayerRates):
            fixed.update({label(k): v for k, v in callback.rates.items()})
    out = {}
    for key in [*per_phase, *(k for k in fixed if k not in per_phase)]:
        given = per_phase.get(key, {})
        table = np.asarray([given.get(k, 1.0) for k in range(int(phase.max()) + 1)])
        out[key] = rate * table[phase] * fixed.get(key, 1.0)
    return out


def plot_schedule(schedule: dict, path: str | None = None, title: str = ""):
    """Draws a `preview()` result (needs matplotlib: the `[plot]` extra).

    Phase boundaries are marked with vertical lines; the batch size, when
    present, is drawn on a second axis. Returns the figure; saves it to
    `path` if given.
    """
    from keras_multiphase._optional import require

    require("matplotlib", "plot_schedule").use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(schedule["step"], schedule["learning_rate"], color="tab:blue")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate", color="tab:blue")
    phase = schedule["phase"]
    names = schedule.get("phase_names") or []
    for boundary in np.flatnonzero(np.diff(phase)) + 1:
        ax.axvline(boundary, color="gray", linestyle="--", linewidth=1)
    for index in np.unique(phase):
        if index < len(names):
            first = int(np.flatnonzero(phase == index)[0])
            ax.text(
                first,
                ax.get_ylim()[1],
                f" {names[index]}",
                va="top",
                fontsize=9,
                color="gray",
            )
    if np.any(schedule["batch_size"]):
        twin = ax.twinx()
        twin.step(
            schedule["step"], schedule["batch_size"], color="tab:orange", where="post"
        )
        twin.set_ylabel("batch size", color="tab:orange")
    ax.set_title(title or "learning-rate schedule")
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100)
    return fig
