"""PlateauLR: ReduceLROnPlateau that works on top of a schedule."""

from __future__ import annotations

import keras
import numpy as np

from keras_multiphase._messages import say
from keras_multiphase._validation import (
    check_int,
    check_non_negative,
    check_number,
)
from keras_multiphase.callbacks.lr_callback import LRCallback
from keras_multiphase.plateau import PlateauDetector
from keras_multiphase.schedules.scaling import ReductionFloor


@keras.saving.register_keras_serializable(package="keras_multiphase")
class PlateauLR(LRCallback):
    """Reduces the learning rate when a metric has stopped improving.

    Same rules and argument names as `keras.callbacks.ReduceLROnPlateau`:
    after `patience` epochs without an improvement larger than `min_delta`,
    the rate is multiplied by `factor`, then `cooldown` epochs pass before
    counting again, and the reduction never takes the rate below `min_lr`.
    Unlike Keras's callback, PlateauLR multiplies whatever rate is in
    effect, so it works on top of `PhaseLR`, `WarmupCosineRestarts`, an
    optimizer built with a `LearningRateSchedule`, or a plain float (where
    Keras's own raises `TypeError` on schedules). The accumulated factor is
    applied inside the compiled step:

    ```
    lr(step) = max(scheduled(step) * reduction, min(scheduled(step), min_lr))
    ```

    so a schedule that is already below `min_lr` is left alone. Counters
    and the reduction live in optimizer variables and survive a resume with
    `BackupAndRestore`.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    >>> plateau = PlateauLR(monitor="loss", factor=0.5, patience=2)
    >>> _ = model.fit(np.ones((16, 4)), np.ones((16, 1)), epochs=3,
    ...               callbacks=[plateau], verbose=0)

    Args:
        monitor: Str. Log key to monitor, e.g. `"val_loss"`.
        factor: Float in (0, 1). Multiplier applied on each plateau.
        patience: Int. Epochs with no improvement before reducing.
        verbose: Int. 1 prints a line on each reduction.
        mode: Str. `"auto"`, `"min"` or `"max"`.
        min_delta: Float. Smallest change that counts as an improvement.
        cooldown: Int. Epochs to wait after a reduction before counting.
        min_lr: Float. Lower bound the reductions respect.
        min_delta_mode: Str. `"absolute"` (as Keras) or `"relative"`: then
            an improvement must beat the best by `min_delta * |best|`.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        min_delta_mode: str = "absolute",
    ):
        super().__init__()
        factor = check_number("factor", factor, "a number in (0, 1)")
        if not 0 < factor < 1:
            raise ValueError(
                "Argument `factor` must be in (0, 1): PlateauLR only reduces "
                f"the rate. Received: factor={factor!r}"
            )
        self.factor = factor
        self.min_lr = check_non_negative("min_lr", min_lr)
        self.verbose = check_int("verbose", verbose)
        self._detector = PlateauDetector(
            monitor=monitor,
            patience=patience,
            mode=mode,
            min_delta=min_delta,
            min_delta_mode=min_delta_mode,
            cooldown=cooldown,
            owner="PlateauLR",
        )
        for name, value in self._detector.get_config().items():
            setattr(self, name, value)
        self.contribution = ReductionFloor(self.min_lr)

    def _create_state(self, store) -> None:
        self.contribution.reduction = store.variable(f"{self._key}.reduction", 1.0)
        self._detector.attach(
            store.variable(f"{self._key}.plateau", self._detector.initial_state())
        )

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._detector.decide_mode(self.model)

    @property
    def reduction(self) -> float:
        """The product of all reductions so far (1.0 before any)."""
        return float(np.asarray(self.contribution.reduction.numpy()))

    def _on_epoch_end(self, epoch: int, logs: dict) -> None:
        if not self._detector.update(logs):
            return
        step = float(self._iterations)
        current = float(self._composer.evaluate(step))
        if current <= np.float32(self.min_lr):
            return
        new = max(self.reduction * self.factor, 1e-30)
        self.contribution.reduction.assign(new)
        if self.verbose:
            rate = float(self._composer.evaluate(step))
            say(
                f"\nEpoch {epoch + 1}: PlateauLR reducing learning rate to "
                f"{rate:.4g} (reduction factor {new:.4g})."
            )

    def get_config(self) -> dict:
        config = self._detector.get_config()
        config.update(
            factor=self.factor,
            verbose=self.verbose,
            min_lr=self.min_lr,
        )
        return config
