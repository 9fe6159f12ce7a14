"""Preview a preset's schedule before training, from the same functions."""

from __future__ import annotations

import numpy as np


def _probe_model(base_lr: float):
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(base_lr), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def preview(
    preset_or_callbacks, epochs: int, steps_per_epoch: int, base_lr: float = 1e-3
) -> dict:
    """Per-step learning rate, phase and batch size, without training.

    Evaluates the composed rate of the callbacks' schedule functions (the
    ones the train step uses) at every step of `epochs * steps_per_epoch`,
    assuming no plateau triggers. `base_lr` is the optimizer's rate, used
    when there is no PhaseLR, and stands for the peak of
    `peak_lr: auto` (found by a range test only when training starts).
    With AdaptiveBatch the batch size of each step is reported, but
    `steps_per_epoch` stays fixed.

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

    Returns:
        Dict of NumPy arrays over steps: `step`, `learning_rate`, `phase`,
        `batch_size` (0 without AdaptiveBatch), and `phase_names`.
    """
    from keras_multiphase.callbacks.adaptive_batch import AdaptiveBatch
    from keras_multiphase.callbacks.lr_callback import LRCallback
    from keras_multiphase.preset import preset as load
    from keras_multiphase.schedules import numpy_ops

    if isinstance(preset_or_callbacks, str):
        callbacks = load(preset_or_callbacks)
    else:
        callbacks = list(preset_or_callbacks)
    model = _probe_model(base_lr)
    params = {"epochs": int(epochs), "steps": int(steps_per_epoch), "verbose": 0}
    lr_callbacks = [
        c
        for c in callbacks
        if isinstance(c, LRCallback) and not isinstance(c, AdaptiveBatch)
    ]
    for callback in lr_callbacks:
        callback.set_model(model)
        callback.set_params(params)
    steps = np.arange(int(epochs) * int(steps_per_epoch))
    batch = np.zeros_like(steps)
    adaptive = [c for c in callbacks if isinstance(c, AdaptiveBatch)]
    if adaptive:
        sizes = [
            adaptive[0].scheduled_batch_size(e, epochs)
            if not isinstance(next(iter(adaptive[0].schedule)), str)
            else 0
            for e in range(int(epochs))
        ]
        batch = np.repeat(sizes, int(steps_per_epoch))
    if not lr_callbacks:
        rate = np.full(steps.shape, base_lr, "float32")
        return {
            "step": steps,
            "learning_rate": rate,
            "phase": np.zeros_like(steps),
            "batch_size": batch,
            "phase_names": [],
        }
    composer = lr_callbacks[0]._composer
    composer.prepare(model)
    for callback in lr_callbacks:
        if hasattr(callback, "assume_peak"):
            callback.assume_peak(base_lr)
    rate = np.asarray(composer.evaluate(steps), "float64")
    phase = np.asarray(composer.phase_at(steps.astype("float32"), numpy_ops), "int64")
    provider = composer.phase_provider
    for callback in lr_callbacks:
        callback.on_train_end()
    return {
        "step": steps,
        "learning_rate": rate,
        "phase": phase,
        "batch_size": batch,
        "phase_names": provider.phase_names if provider else [],
    }


def plot_schedule(schedule: dict, path: str | None = None, title: str = ""):
    """Draws a `preview()` result (needs matplotlib: the `[plot]` extra).

    Phase boundaries are marked with vertical lines; the batch size, when
    present, is drawn on a second axis. Returns the figure; saves it to
    `path` if given.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover
        raise ImportError(
            "plot_schedule needs matplotlib: pip install 'keras-multiphase[plot]'"
        ) from exc
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
