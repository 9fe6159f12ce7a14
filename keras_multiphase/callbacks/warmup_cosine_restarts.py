"""WarmupCosineRestarts: warmup then SGDR cycles, as a rate multiplier."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_multiphase._validation import (
    check_bool,
    check_int,
    check_non_negative,
    check_positive,
    check_ratio,
)
from keras_multiphase.callbacks.lr_callback import LRCallback
from keras_multiphase.schedules.restarts_factor import RestartsFactor
from keras_multiphase.schedules.warmup_cosine_restarts_schedule import (
    validate_cycle_args,
)


def _exclusive(a: str, va, b: str, vb) -> None:
    if va is not None and vb is not None:
        raise ValueError(
            f"Arguments `{a}` and `{b}` are exclusive; give one. "
            f"Received: {a}={va!r}, {b}={vb!r}"
        )


@keras.saving.register_keras_serializable(package="keras_multiphase")
class WarmupCosineRestarts(LRCallback):
    """Linear warmup, then cosine annealing with warm restarts.

    Multiplies the base rate (the optimizer's rate, or PhaseLR's phase rate)
    by a factor that rises linearly from `warmup_start_ratio` to 1 during
    the warmup, then follows cosine cycles (Loshchilov & Hutter 2017,
    "SGDR") between each cycle's peak and `min_ratio`. Alone, its peak is
    the optimizer's rate. It can be limited to named PhaseLR phases (the
    clock starts when the first of them starts, and the factor is 1
    elsewhere) or to an epoch range.

    ```
    cycle i: length first_cycle * cycle_mult**i, peak cycle_decay**i
    factor = min_ratio + (peak - min_ratio) * (1 + cos(pi * u)) / 2
    ```

    With `min_lr` instead of `min_ratio`, the bottom of each cycle is that
    absolute rate. The compiled step reads each step's exact rate from the
    engine's table (`keras_multiphase/engine/`).

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    >>> sgdr = WarmupCosineRestarts(first_cycle_epochs=2, cycle_mult=2.0,
    ...                             warmup_steps=4, min_ratio=0.1)
    >>> _ = model.fit(np.ones((32, 4)), np.ones((32, 1)), epochs=4,
    ...               batch_size=8, callbacks=[sgdr], verbose=0)

    Args:
        first_cycle_steps: Optional int. Length of the first cycle in steps.
        first_cycle_epochs: Optional float. Same, in epochs. With neither,
            one cycle spans the whole scope (run, epoch range or phases).
        cycle_mult: Float >= 1. Growth of each cycle's length.
        cycle_decay: Float in (0, 1]. Decay of each restart's peak.
        min_ratio: Float in [0, 1]. Bottom of a cycle, relative to the base;
            1.0 gives a warmup followed by the constant base rate.
        min_lr: Optional float. Bottom of a cycle as an absolute rate
            (exclusive with a non-zero `min_ratio`).
        warmup_steps: Int. Steps of linear warmup before the first cycle.
        warmup_epochs: Optional float. Same, in epochs.
        warmup_start_ratio: Float in [0, 1]. Start of the warmup.
        warmup_each_cycle: Bool. Warm up again at each restart.
        max_cycles: Optional int. After this many cycles the factor stays at
            its minimum.
        phases: Optional list of PhaseLR phase names (or indices) to limit
            the schedule to.
        start_epoch: Optional float. First epoch of the scope.
        end_epoch: Optional float. Epoch where the scope ends.
        warmup_prefix: Bool. True (default): the cycles start after the
            warmup (the warmup is a prefix). False: timm's
            `CosineLRScheduler` convention (its default,
            `warmup_prefix=False`): cycles are counted from the start and
            the warmup replaces the first steps of the first cycle.
    """

    def __init__(
        self,
        first_cycle_steps: int | None = None,
        first_cycle_epochs: float | None = None,
        cycle_mult: float = 1.0,
        cycle_decay: float = 1.0,
        min_ratio: float = 0.0,
        min_lr: float | None = None,
        warmup_steps: int = 0,
        warmup_epochs: float | None = None,
        warmup_start_ratio: float = 0.0,
        warmup_each_cycle: bool = False,
        max_cycles: int | None = None,
        phases: Sequence[str | int] | None = None,
        start_epoch: float | None = None,
        end_epoch: float | None = None,
        warmup_prefix: bool = True,
    ):
        super().__init__()
        self.warmup_prefix = check_bool("warmup_prefix", warmup_prefix)
        _check_lengths(
            first_cycle_steps, first_cycle_epochs, warmup_steps, warmup_epochs
        )
        check_ratio("min_ratio", min_ratio)
        if min_lr is not None:
            check_positive("min_lr", min_lr)
            if min_ratio:
                _exclusive("min_ratio", min_ratio, "min_lr", min_lr)
        validate_cycle_args(
            first_cycle_steps,
            cycle_mult,
            cycle_decay,
            warmup_steps,
            warmup_start_ratio,
            warmup_each_cycle,
            max_cycles,
        )
        phases = _checked_scope(phases, start_epoch, end_epoch)
        self.first_cycle_steps = first_cycle_steps
        self.first_cycle_epochs = first_cycle_epochs
        self.cycle_mult = float(cycle_mult)
        self.cycle_decay = float(cycle_decay)
        self.min_ratio = float(min_ratio)
        self.min_lr = None if min_lr is None else float(min_lr)
        self.warmup_steps = int(warmup_steps)
        self.warmup_epochs = warmup_epochs
        self.warmup_start_ratio = float(warmup_start_ratio)
        self.warmup_each_cycle = bool(warmup_each_cycle)
        self.max_cycles = max_cycles
        self.phases = phases
        self.start_epoch = start_epoch
        self.end_epoch = end_epoch
        self.contribution = RestartsFactor(self.get_config())

    def get_config(self) -> dict:
        return {
            "first_cycle_steps": self.first_cycle_steps,
            "first_cycle_epochs": self.first_cycle_epochs,
            "cycle_mult": self.cycle_mult,
            "cycle_decay": self.cycle_decay,
            "min_ratio": self.min_ratio,
            "min_lr": self.min_lr,
            "warmup_steps": self.warmup_steps,
            "warmup_epochs": self.warmup_epochs,
            "warmup_start_ratio": self.warmup_start_ratio,
            "warmup_each_cycle": self.warmup_each_cycle,
            "max_cycles": self.max_cycles,
            "phases": self.phases,
            "start_epoch": self.start_epoch,
            "end_epoch": self.end_epoch,
            "warmup_prefix": self.warmup_prefix,
        }


def _check_lengths(first_cycle_steps, first_cycle_epochs, warmup_steps, warmup_epochs):
    """The cycle's and the warmup's length: in steps or in epochs, not both."""
    _exclusive(
        "first_cycle_steps", first_cycle_steps, "first_cycle_epochs", first_cycle_epochs
    )
    if first_cycle_steps is not None:
        check_int("first_cycle_steps", first_cycle_steps, minimum=1)
    if first_cycle_epochs is not None:
        check_positive("first_cycle_epochs", first_cycle_epochs)
    check_int("warmup_steps", warmup_steps, minimum=0)
    if warmup_epochs is not None:
        check_non_negative("warmup_epochs", warmup_epochs)
        if warmup_steps:
            _exclusive("warmup_steps", warmup_steps, "warmup_epochs", warmup_epochs)


def _checked_scope(phases, start_epoch, end_epoch):
    """Where the schedule applies: PhaseLR phases (returned as a list), or
    an epoch range, or everywhere (None)."""
    if phases is not None:
        if isinstance(phases, (str, int)):
            phases = [phases]
        if not phases or not all(isinstance(p, (str, int)) for p in phases):
            raise ValueError(
                "Argument `phases` must be a non-empty list of PhaseLR "
                f"phase names or indices. Received: phases={phases!r}"
            )
        if start_epoch is not None or end_epoch is not None:
            raise ValueError(
                "Argument `phases` is exclusive with `start_epoch` / "
                f"`end_epoch`. Received: phases={phases!r}, "
                f"start_epoch={start_epoch!r}, end_epoch={end_epoch!r}"
            )
        phases = list(phases)
    if start_epoch is not None:
        check_non_negative("start_epoch", start_epoch)
    if end_epoch is not None:
        check_positive("end_epoch", end_epoch)
        if start_epoch is not None and end_epoch <= start_epoch:
            raise ValueError(
                "Argument `end_epoch` must be after `start_epoch`. "
                f"Received: start_epoch={start_epoch!r}, "
                f"end_epoch={end_epoch!r}"
            )
    return phases
