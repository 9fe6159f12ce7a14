"""Linear warmup, then cosine annealing with warm restarts (SGDR)."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_multiphase._validation import (
    check_bool,
    check_int,
    check_positive,
    check_ratio,
)


def _f32(x):
    return ops.convert_to_tensor(x, dtype="float32")


def cycle_index(u, first_cycle_steps: float, cycle_mult: float, xp=ops):
    """Index, start and length of the cycle that step `u` (steps since the
    first cycle began) falls in, for `cycle_mult != 1`, in closed form.

    Cycle `i` lasts `first * mult**i` steps and starts at
    `first * (mult**i - 1) / (mult - 1)` (timm's `CosineLRScheduler`, no
    rounding), so `i = floor(log(1 + u (mult - 1) / first) / log(mult))`.
    In float32, `mult**i - 1` is computed as `expm1(i log(mult))` (no
    cancellation when `mult` is near 1), and a step within float32
    rounding (2e-6 relative) of a boundary belongs to the later cycle, as
    in float64. A fixed number of ops whatever the number of cycles.
    """
    first, mult = float(first_cycle_steps), float(cycle_mult)
    log_mult = math.log(mult)

    def start_of(i):
        start = xp.expm1(i * log_mult) * (first / (mult - 1.0))
        return start - 2e-6 * xp.maximum(start, 1.0)

    u = xp.maximum(u, 0.0)
    index = xp.floor(xp.log1p(u * ((mult - 1.0) / first)) / log_mult)
    index = xp.maximum(index - xp.cast(u < start_of(index), "float32"), 0.0)
    index = index + xp.cast(u >= start_of(index + 1.0), "float32")
    start = xp.expm1(index * log_mult) * (first / (mult - 1.0))
    # A start within rounding of a whole step is that step (as in float64).
    whole = xp.round(start)
    start = xp.where(
        xp.abs(start - whole) <= 2e-6 * xp.maximum(whole, 1.0), whole, start
    )
    length = first * xp.power(xp.convert_to_tensor(mult, "float32"), index)
    return index, start, length


def warmup_cosine_factor(
    t,
    first_cycle_steps: int,
    cycle_mult: float = 1.0,
    cycle_decay: float = 1.0,
    min_ratio=0.0,
    warmup_steps: int = 0,
    warmup_start_ratio: float = 0.0,
    warmup_each_cycle: bool = False,
    max_cycles: int | None = None,
    warmup_prefix: bool = True,
    xp=ops,
):
    """Multiplier in `[min_ratio, 1]` at `t` steps into the schedule.

    `min_ratio` may be a tensor (it is when set from `min_lr`). `xp` is
    `keras.ops` or `keras_multiphase.schedules.numpy_ops`. With
    `warmup_prefix` (this package's default) the cycles start after the
    warmup; without it (timm's `CosineLRScheduler` default,
    `warmup_prefix=False`) they are counted from step 0 and the warmup
    replaces the beginning of the first cycle.
    """

    def _f32(x):
        return xp.convert_to_tensor(x, "float32")

    t = _f32(t)
    r = xp.zeros_like(t) + _f32(min_ratio)
    ws = _f32(warmup_start_ratio)
    w = float(warmup_steps)
    u = xp.maximum(t - _f32(w), 0.0) if warmup_prefix else t
    if cycle_mult == 1.0:
        index = xp.floor(u / _f32(first_cycle_steps))
        start = index * _f32(first_cycle_steps)
        length = xp.zeros_like(t) + _f32(first_cycle_steps)
    else:
        index, start, length = cycle_index(u, first_cycle_steps, cycle_mult, xp)
    peak = xp.maximum(xp.power(_f32(cycle_decay), index), r)
    local = u - start
    if warmup_each_cycle and w > 0:
        wi = xp.where(index >= 1, _f32(w), _f32(0.0))
    else:
        wi = xp.zeros_like(t)
    rising = ws * peak + (peak - ws * peak) * local / xp.maximum(wi, 1.0)
    done = xp.clip((local - wi) / xp.maximum(length - wi, 1.0), 0.0, 1.0)
    falling = r + (peak - r) * 0.5 * (1.0 + xp.cos(_f32(math.pi) * done))
    factor = xp.where(local < wi, rising, falling)
    if max_cycles is not None:
        factor = xp.where(index >= _f32(max_cycles), r, factor)
    if w > 0:
        warm = ws + (1.0 - ws) * t / _f32(w)
        factor = xp.where(t < _f32(w), warm, factor)
    return factor


def validate_cycle_args(
    first_cycle_steps,
    cycle_mult,
    cycle_decay,
    warmup_steps,
    warmup_start_ratio,
    warmup_each_cycle,
    max_cycles,
    cycle_name="first_cycle_steps",
):
    """Checks the arguments shared by the schedule and the callback."""
    if first_cycle_steps is not None:
        check_positive(cycle_name, first_cycle_steps)
    check_positive("cycle_mult", cycle_mult)
    if cycle_mult < 1:
        raise ValueError(
            "Argument `cycle_mult` must be >= 1 (cycles never shrink). "
            f"Received: cycle_mult={cycle_mult!r}"
        )
    check_ratio("cycle_decay", cycle_decay)
    if cycle_decay == 0:
        raise ValueError(
            f"Argument `cycle_decay` must be in (0, 1]. "
            f"Received: cycle_decay={cycle_decay!r}"
        )
    check_ratio("warmup_start_ratio", warmup_start_ratio)
    if max_cycles is not None:
        check_int("max_cycles", max_cycles, minimum=1)
    check_bool("warmup_each_cycle", warmup_each_cycle)


@keras.saving.register_keras_serializable(package="keras_multiphase")
class WarmupCosineRestartsSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup, then cosine annealing with warm restarts.

    After `warmup_steps` steps rising linearly from
    `warmup_start_ratio * initial_learning_rate`, the rate follows cosine
    cycles (Loshchilov & Hutter, 2017, "SGDR"). Cycle `i` lasts
    `first_cycle_steps * cycle_mult**i` steps and peaks at
    `initial_learning_rate * cycle_decay**i`. This is the multiplier that
    `WarmupCosineRestarts` applies on top of the base rate.

    ```
    peak_i = max(cycle_decay**i, min_ratio)
    u = steps into cycle i / length of cycle i
    rate = initial_learning_rate * (
        min_ratio + (peak_i - min_ratio) * (1 + cos(pi * u)) / 2)
    ```

    Example:

    >>> schedule = WarmupCosineRestartsSchedule(
    ...     initial_learning_rate=1e-3, first_cycle_steps=100,
    ...     warmup_steps=10, cycle_mult=2.0, min_ratio=0.01)
    >>> optimizer = keras.optimizers.SGD(learning_rate=schedule)
    >>> round(float(schedule(10)), 6)
    0.001

    Args:
        initial_learning_rate: Float. The peak rate of the first cycle.
        first_cycle_steps: Int. Length of the first cycle in steps.
        cycle_mult: Float >= 1. Each cycle is this much longer than the
            previous one.
        cycle_decay: Float in (0, 1]. Each restart's peak is this fraction
            of the previous peak.
        min_ratio: Float in [0, 1]. The rate at the bottom of a cycle (1.0:
            warmup then a constant rate), as a
            fraction of `initial_learning_rate`.
        warmup_steps: Int. Steps of linear warmup before the first cycle.
        warmup_start_ratio: Float in [0, 1]. Where the warmup starts, as a
            fraction of the peak.
        warmup_each_cycle: Bool. Whether every restart also begins with
            `warmup_steps` steps of warmup (counted inside the cycle).
        max_cycles: Optional int. After this many cycles the rate stays at
            its minimum.
        warmup_prefix: Bool. True (default): the cycles start after the
            warmup. False: timm's `CosineLRScheduler` convention (its
            default, `warmup_prefix=False`): cycles are counted from step 0,
            the warmup takes the place of the first cycle's first steps.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        first_cycle_steps: int,
        cycle_mult: float = 1.0,
        cycle_decay: float = 1.0,
        min_ratio: float = 0.0,
        warmup_steps: int = 0,
        warmup_start_ratio: float = 0.0,
        warmup_each_cycle: bool = False,
        max_cycles: int | None = None,
        warmup_prefix: bool = True,
    ):
        check_positive("initial_learning_rate", initial_learning_rate)
        check_bool("warmup_prefix", warmup_prefix)
        check_int("first_cycle_steps", first_cycle_steps, minimum=1)
        check_int("warmup_steps", warmup_steps, minimum=0)
        check_ratio("min_ratio", min_ratio)
        validate_cycle_args(
            first_cycle_steps,
            cycle_mult,
            cycle_decay,
            warmup_steps,
            warmup_start_ratio,
            warmup_each_cycle,
            max_cycles,
        )
        if warmup_each_cycle and warmup_steps >= first_cycle_steps:
            raise ValueError(
                "With `warmup_each_cycle=True`, `warmup_steps` must be "
                "shorter than a cycle. Received: "
                f"warmup_steps={warmup_steps}, "
                f"first_cycle_steps={first_cycle_steps}"
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.first_cycle_steps = int(first_cycle_steps)
        self.cycle_mult = float(cycle_mult)
        self.cycle_decay = float(cycle_decay)
        self.min_ratio = float(min_ratio)
        self.warmup_steps = int(warmup_steps)
        self.warmup_start_ratio = float(warmup_start_ratio)
        self.warmup_each_cycle = bool(warmup_each_cycle)
        self.max_cycles = None if max_cycles is None else int(max_cycles)
        self.warmup_prefix = bool(warmup_prefix)

    def __call__(self, step):
        factor = warmup_cosine_factor(
            ops.cast(step, "float32"),
            first_cycle_steps=self.first_cycle_steps,
            cycle_mult=self.cycle_mult,
            cycle_decay=self.cycle_decay,
            min_ratio=self.min_ratio,
            warmup_steps=self.warmup_steps,
            warmup_start_ratio=self.warmup_start_ratio,
            warmup_each_cycle=self.warmup_each_cycle,
            max_cycles=self.max_cycles,
            warmup_prefix=self.warmup_prefix,
        )
        return _f32(self.initial_learning_rate) * factor

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_cycle_steps": self.first_cycle_steps,
            "cycle_mult": self.cycle_mult,
            "cycle_decay": self.cycle_decay,
            "min_ratio": self.min_ratio,
            "warmup_steps": self.warmup_steps,
            "warmup_start_ratio": self.warmup_start_ratio,
            "warmup_each_cycle": self.warmup_each_cycle,
            "max_cycles": self.max_cycles,
            "warmup_prefix": self.warmup_prefix,
        }
