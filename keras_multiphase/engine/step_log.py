"""Every training step's rate, momentum, phase, loss weights and batch size,
written to TensorBoard at each epoch's end.

The engine knows each step's rate before the epoch runs (the rate table),
so nothing runs per step: when an epoch ends, the rows the step read and
the values the other callbacks held during the epoch are written with the
optimizer's step as the x-axis, under the tags `step/learning_rate`,
`step/momentum` (OneCycle's cycled momentum), `step/phase`,
`step/batch_size` (AdaptiveBatch) and `step/loss_weight/<output>`
(LossWeightBalancer).

Where: the `train` folder of a `keras.callbacks.TensorBoard` in `fit`'s
callbacks (beside Keras's own `epoch_*` curves), else the `log_dir` given
to PhaseLR or OneCycle. With neither, nothing is written.

The event files are written by `event_file.py` with NumPy alone, the same
on every backend (no TensorFlow, no `tensorboard` package: that is needed
only to view them). Under several processes, process 0 writes.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from keras_multiphase.engine.event_file import EventFile

PREFIX = "step/"


def tensorboard_dir(callbacks) -> str | None:
    """The `train` folder of the first `keras.callbacks.TensorBoard` in
    `callbacks`, where Keras writes its training curves (or None)."""
    for callback in callbacks or ():
        if isinstance(callback, keras.callbacks.TensorBoard):
            return os.path.join(str(callback.log_dir), "train")
    return None


def _writes() -> bool:
    """Process 0 writes; the others hold the same values."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.process_index() == 0
    return True


class StepLog:
    """Writes per-step series into one TensorBoard folder.

    `callbacks` are the fit's: a callback's `step_source` attribute, when
    set, holds per-epoch values (LossWeightBalancer's weights); `sources`
    hold them themselves (AdaptiveBatch's contribution). Either way
    `step_series(count)` returns `{name: array of count values}`.
    """

    def __init__(self, directory: str, callbacks=(), sources=()):
        self.directory = directory
        self.callbacks = [c for c in callbacks if hasattr(c, "step_source")]
        self.sources = [s for s in sources if hasattr(s, "step_series")]
        self._writer = EventFile(directory) if _writes() else None

    def write(self, steps, series: dict) -> None:
        """Writes `series` (`{name: values per step}`) and each source's
        values at the optimizer's `steps`."""
        if self._writer is None or len(steps) == 0:
            return
        series = dict(series)
        held = [c.step_source for c in self.callbacks]  # set when known
        for source in [*self.sources, *(s for s in held if s is not None)]:
            series.update(source.step_series(len(steps)))
        shape = (len(steps),)
        self._writer.write_scalars(
            steps,
            {
                PREFIX + k: np.broadcast_to(np.asarray(v, "float32"), shape)
                for k, v in series.items()
            },
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
