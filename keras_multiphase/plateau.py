"""Plateau detection shared by PlateauLR and plateau-ended phases.

The rules are those of `keras.callbacks.ReduceLROnPlateau`: a value is an
improvement when it beats the best by more than `min_delta`; after
`patience` epochs without one, a plateau is reported, the counter restarts
and `cooldown` epochs pass before counting again. `min_delta` may also be
relative to the best value (`min_delta_mode="relative"`).

The counters live in optimizer-tracked variables (see `_state.py`), so a
run resumed with `BackupAndRestore` continues with the same counters.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from keras_multiphase import _keras_internals
from keras_multiphase._validation import (
    check_choice,
    check_int,
    check_non_negative,
)

MODES = ("auto", "min", "max")
MIN_DELTA_MODES = ("absolute", "relative")
_MAX_HINTS = ("acc", "auc", "precision", "recall", "f1", "iou")


def _metric_direction(model, name: str):
    """`"min"`/`"max"` from a compiled metric's direction, if it has one."""
    pending = list(getattr(model, "metrics", []) or [])
    while pending:
        metric = pending.pop()
        pending.extend(getattr(metric, "metrics", []) or [])
        if getattr(metric, "name", None) == name:
            direction = _keras_internals.metric_direction(metric)
            if direction in ("up", "down"):
                return "max" if direction == "up" else "min"
    return None


def resolve_mode(mode: str, monitor: str, model=None) -> str:
    """`"min"` or `"max"`; `"auto"` decides as Keras's callbacks do.

    A loss is minimised; otherwise the compiled metric's own direction is
    used, then the usual names (accuracy, AUC, ...). Raises `ValueError` when
    nothing decides, like Keras's `ReduceLROnPlateau`.
    """
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_")
    if name == "loss" or name.endswith("_loss"):
        return "min"
    direction = _metric_direction(model, name) if model is not None else None
    if direction is not None:
        return direction
    if any(h in name.lower() for h in _MAX_HINTS):
        return "max"
    raise ValueError(
        f"Cannot tell whether `{monitor}` should be minimised or maximised "
        f"(mode='auto'). Pass mode='min' or mode='max'. Received: "
        f"monitor={monitor!r}, mode={mode!r}"
    )


class PlateauDetector:
    """Counts epochs without improvement of one monitored value.

    Args:
        monitor: Str. The log key to watch, e.g. `"val_loss"`.
        patience: Int. Epochs without improvement before a plateau.
        mode: Str. `"auto"`, `"min"` or `"max"`.
        min_delta: Float. Smallest change that counts as improvement.
        min_delta_mode: Str. `"absolute"` or `"relative"` (a fraction of
            the best value).
        cooldown: Int. Epochs to wait after a plateau before counting.
        owner: Str. The callback's name, for messages.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 10,
        mode: str = "auto",
        min_delta: float = 1e-4,
        min_delta_mode: str = "absolute",
        cooldown: int = 0,
        owner: str = "callback",
        prefix: str = "",
    ):
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(
                f"Argument `{prefix}monitor` must be a non-empty log key such "
                f"as 'val_loss'. Received: {prefix}monitor={monitor!r}"
            )
        self.monitor = monitor
        self.patience = check_int(f"{prefix}patience", patience, minimum=0)
        self.mode = check_choice(f"{prefix}mode", mode, MODES)
        self.min_delta = check_non_negative(f"{prefix}min_delta", min_delta)
        self.min_delta_mode = check_choice(
            f"{prefix}min_delta_mode", min_delta_mode, MIN_DELTA_MODES
        )
        self.cooldown = check_int(f"{prefix}cooldown", cooldown, minimum=0)
        self.owner = owner
        self._warned = False
        self._var = None
        self._direction = None if mode == "auto" else mode

    def decide_mode(self, model) -> None:
        """Settles `mode="auto"` once the model is known (on_train_begin)."""
        self._direction = resolve_mode(self.mode, self.monitor, model)

    @property
    def direction(self) -> str:
        if self._direction is None:
            self._direction = resolve_mode(self.mode, self.monitor)
        return self._direction

    def initial_state(self):
        # best = NaN until a first value is seen: any value improves on it.
        return [math.nan, 0.0, 0.0]  # best, wait, cooldown counter

    def attach(self, variable) -> None:
        """Keeps the counters in `variable` (shape `(3,)`)."""
        self._var = variable

    def reset(self) -> None:
        self._var.assign(np.asarray(self.initial_state(), "float32"))

    @property
    def state(self) -> tuple[float, int, int]:
        best, wait, cool = np.asarray(self._var.numpy(), "float64")
        return float(best), int(wait), int(cool)

    def is_improvement(self, current: float, best: float) -> bool:
        delta = self.min_delta
        if math.isnan(best):
            return True
        if self.min_delta_mode == "relative":
            delta = self.min_delta * abs(best)
        if _keras_internals.plateau_compares_in_float32():
            # As Keras's ReduceLROnPlateau: shift `current`, compare float32.
            if self.direction == "min":
                return bool(np.float32(current + delta) < np.float32(best))
            return bool(np.float32(current - delta) > np.float32(best))
        if self.direction == "min":
            return current < best - delta
        return current > best + delta

    def update(self, logs) -> bool:
        """Feeds one epoch's logs; returns True when a plateau is reached."""
        current = (logs or {}).get(self.monitor)
        if current is None:
            if not self._warned:
                warnings.warn(
                    f"{self.owner} monitors `{self.monitor}`, which is not in "
                    f"the logs. Available keys: {sorted(logs or {})}.",
                    stacklevel=3,
                )
                self._warned = True
            return False
        current = float(np.asarray(current))
        best, wait, cool = self.state
        plateau = False
        if cool > 0:
            cool -= 1
            wait = 0
        if self.is_improvement(current, best):
            best, wait = current, 0
        elif cool <= 0:
            wait += 1
            if wait >= self.patience:
                plateau = True
                wait = 0
                cool = self.cooldown
        self._var.assign(np.asarray([best, wait, cool], "float32"))
        return plateau

    def get_config(self) -> dict:
        return {
            "monitor": self.monitor,
            "patience": self.patience,
            "mode": self.mode,
            "min_delta": self.min_delta,
            "min_delta_mode": self.min_delta_mode,
            "cooldown": self.cooldown,
        }
