"""TrainingDynamicsMonitor: warns during fit when the loss collapses, then stalls."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from keras_multiphase._messages import say
from keras_multiphase._validation import check_number
from keras_multiphase.callbacks.epoch_callback import EpochCallback
from keras_multiphase.diagnosis import signs as sg
from keras_multiphase.diagnosis.report import (
    DiagnosisReport,
    Thresholds,
    _compiled_weights,
    analyse,
    recommendations_of,
)


class TrainingDynamicsWarning(UserWarning):
    """A collapse-then-plateau sign seen during training."""


@keras.saving.register_keras_serializable(package="keras_multiphase")
class TrainingDynamicsMonitor(EpochCallback):
    """Watches the loss curve during `fit` and warns once per problem.

    At each epoch end it runs the checks of `keras_multiphase.diagnose` on
    the epochs so far and, the first time a sign becomes a problem
    (first-epoch collapse, plateau, dominant loss component, a learning
    rate that never changed next to either of the first two), issues one
    `TrainingDynamicsWarning` with the same sentence and recommendations
    as the report. A collapse is reported at the end of epoch 2 (it takes
    the drop between epochs 0 and 1 and one epoch after it), a plateau
    after `plateau_patience` stalled epochs. The latest report is
    `monitor.report`; `monitor.warned` lists the signs warned about. With
    `stop_on`, training stops when one of the named problems appears.

    The learning rate is read from the logs (`learning_rate`, logged by
    this package's callbacks and by `ReduceLROnPlateau`) or, when absent,
    from the optimizer at each epoch end.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> monitor = TrainingDynamicsMonitor(stop_on="plateau")
    >>> _ = model.fit(np.ones((16, 4)), np.ones((16, 1)), epochs=3,
    ...               callbacks=[monitor], verbose=0)
    >>> monitor.report.epochs
    3

    Args:
        monitor: Str. Loss key to watch, `"loss"` or `"val_loss"`.
        stop_on: `None`, a sign name, a list of them, or `"any"`: set
            `model.stop_training` when one of them becomes a problem.
            Names: `"collapse"`, `"plateau"`, `"dominant_component"`,
            `"constant_learning_rate"`.
        collapse_share, plateau_threshold, plateau_patience,
            dominance_share: As in `diagnose`.
        verbose: Int. 1 also prints the warning text with Keras's printer.
    """

    def __init__(
        self,
        monitor: str = "loss",
        stop_on: str | Sequence[str] | None = None,
        collapse_share: float = 0.9,
        plateau_threshold: float = 0.01,
        plateau_patience: int = 3,
        dominance_share: float = 0.75,
        verbose: int = 0,
    ):
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(
                f"Argument `monitor` must be a log key such as 'loss'. "
                f"Received: monitor={monitor!r}"
            )
        self.thresholds = Thresholds(
            collapse_share, plateau_threshold, plateau_patience, dominance_share
        )
        self.stop_on = self._check_stop_on(stop_on)
        self.monitor = monitor
        self.verbose = int(check_number("verbose", verbose))
        self.report: DiagnosisReport | None = None
        self.warned: list[str] = []
        self._logs: dict[str, list[float]] = {}

    @staticmethod
    def _check_stop_on(stop_on) -> tuple:
        if stop_on is None:
            return ()
        if stop_on == "any":
            return sg.SIGN_NAMES
        names = (stop_on,) if isinstance(stop_on, str) else stop_on
        try:
            names = tuple(names)
        except TypeError:
            names = (stop_on,)
        for name in names:
            if name not in sg.SIGN_NAMES:
                raise ValueError(
                    "Argument `stop_on` must be None, 'any', or sign names from "
                    f"{list(sg.SIGN_NAMES)}. Received: stop_on={stop_on!r}"
                )
        return names

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._logs = {}
        self.warned = []
        self.report = None

    def _optimizer_rate(self) -> float | None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        try:
            return float(
                np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate))
            )
        except (TypeError, ValueError, AttributeError):
            return None

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if "learning_rate" not in logs:
            rate = self._optimizer_rate()
            if rate is not None:
                logs["learning_rate"] = rate
        for key, value in logs.items():
            try:
                self._logs.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                continue
        if self.monitor not in self._logs:
            if epoch == 0:
                warnings.warn(
                    f"TrainingDynamicsMonitor: `{self.monitor}` is not in the "
                    f"logs (keys: {sorted(logs)}); nothing to watch.",
                    TrainingDynamicsWarning,
                    stacklevel=2,
                )
            return
        if not np.all(np.isfinite(self._logs[self.monitor])):
            return
        self.report = analyse(
            self._logs,
            monitor=self.monitor,
            initial_loss=None,
            loss_weights=_compiled_weights(self.model),
            scheduled=None,
            thresholds=self.thresholds,
        )
        new = [name for name in self.report.problems if name not in self.warned]
        if not new:
            return
        self.warned += new
        message = self.message(new, epoch)
        warnings.warn(message, TrainingDynamicsWarning, stacklevel=2)
        if self.verbose:
            say(message)
        if any(name in self.stop_on for name in new):
            self.model.stop_training = True

    def message(self, names: Sequence[str], epoch: int) -> str:
        """The warning text for newly found problems at `epoch`."""
        report = self.report
        lines = [f"Training dynamics after epoch {epoch}:"]
        for name in names:
            sign = report[name]
            lines.append(f"  {sign.title}: {sign.text}.")
        for text in recommendations_of(tuple(names)):
            lines.append(f"  -> {text}")
        return "\n".join(lines)

    @classmethod
    def from_config(cls, config: Mapping):
        """Builds the callback from `get_config()`'s output."""
        return cls(**config)

    def get_config(self) -> Mapping:
        return {
            "monitor": self.monitor,
            "stop_on": list(self.stop_on) or None,
            "collapse_share": self.thresholds.collapse_share,
            "plateau_threshold": self.thresholds.plateau_threshold,
            "plateau_patience": self.thresholds.plateau_patience,
            "dominance_share": self.thresholds.dominance_share,
            "verbose": self.verbose,
        }
