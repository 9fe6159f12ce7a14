"""Piecewise-constant learning-rate phases with smooth transitions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import ops

from keras_multiphase._validation import check_non_negative, check_positive

TRANSITIONS = ("step", "linear", "cosine")
# A phase that ends only on a plateau has no nominal end: it ends "never".
NEVER = 1e30


def phase_starts(lengths: Sequence[float], end_override=None, xp=ops) -> list:
    """Start step of each phase (phase 0 starts at 0).

    Args:
        lengths: Length in steps of every phase but the last (`NEVER` for a
            phase that ends only when `end_override` says so).
        end_override: Optional float tensor of shape `(len(lengths),)`: a
            value `>= 0` is the step at which that phase really ended.
    """
    starts = [xp.convert_to_tensor(0.0, "float32")]
    for k, length in enumerate(lengths):
        end = starts[-1] + xp.convert_to_tensor(length, "float32")
        if end_override is not None:
            override = end_override[k]
            end = xp.where(override >= 0, override, end)
        starts.append(end)
    return starts


def phase_index(step, starts, xp=ops):
    """Index of the phase that `step` falls in (an int32 tensor)."""
    index = xp.zeros_like(step)
    for start in starts[1:]:
        index = index + xp.cast(step >= start, "float32")
    return xp.cast(index, "int32")


def phase_rate(
    step,
    rates: Sequence[float],
    lengths: Sequence[float],
    transitions: Sequence[str],
    transition_steps: Sequence[float],
    end_override=None,
    xp=ops,
):
    """Learning rate of a phase schedule at `step` (float32 tensor).

    Inside phase `k` the rate is `rates[k]`, reached from `rates[k - 1]`
    over `transition_steps[k]` steps along `transitions[k]`. `xp` is
    `keras.ops` or `keras_multiphase.schedules.numpy_ops`.
    """

    def f32(x):
        return xp.convert_to_tensor(x, "float32")

    step = f32(step)
    starts = phase_starts(lengths, end_override, xp)
    rate = xp.zeros_like(step) + f32(rates[0])
    for k in range(1, len(rates)):
        new, old = f32(rates[k]), f32(rates[k - 1])
        kind, span = transitions[k], transition_steps[k]
        if kind == "step" or span <= 0:
            value = xp.zeros_like(step) + new
        else:
            done = xp.clip((step - starts[k]) / f32(span), 0.0, 1.0)
            if kind == "linear":
                weight_old = 1.0 - done
            else:
                weight_old = 0.5 * (1.0 + xp.cos(f32(math.pi) * done))
            # A weighted mean of two positive rates: no cancellation.
            value = old * weight_old + new * (1.0 - weight_old)
        rate = xp.where(step >= starts[k], value, rate)
    return rate


def validate_phase_arrays(rates, lengths, transitions, transition_steps):
    """Checks the step-based description of a phase schedule."""
    if len(rates) < 1:
        raise ValueError(
            f"Argument `rates` must hold at least one rate. Received: "
            f"rates={list(rates)}"
        )
    for i, r in enumerate(rates):
        check_positive(f"rates[{i}]", r)
    if len(lengths) != len(rates) - 1:
        raise ValueError(
            "Argument `lengths` must give the length of every phase but the "
            f"last ({len(rates) - 1} values). Received: lengths={list(lengths)}"
        )
    for i, n in enumerate(lengths):
        check_positive(f"lengths[{i}]", n)
    if len(transitions) != len(rates):
        raise ValueError(
            "Argument `transitions` must have one entry per phase. "
            f"Received: transitions={list(transitions)}"
        )
    for i, kind in enumerate(transitions):
        if kind not in TRANSITIONS:
            raise ValueError(
                f"Argument `transitions[{i}]` must be one of {TRANSITIONS}. "
                f"Received: transitions[{i}]={kind!r}"
            )
    if len(transition_steps) != len(rates):
        raise ValueError(
            "Argument `transition_steps` must have one entry per phase. "
            f"Received: transition_steps={list(transition_steps)}"
        )
    for i, n in enumerate(transition_steps):
        check_non_negative(f"transition_steps[{i}]", n)


@keras.saving.register_keras_serializable(package="keras_multiphase")
class PhaseSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate that moves through phases measured in steps.

    Each phase holds its own constant rate. A phase may be entered with a
    `"step"` (instant), `"linear"` or `"cosine"` transition from the
    previous phase's rate over a number of steps. The last phase runs
    forever. This is the schedule `PhaseLR` installs, usable directly with
    any Keras optimizer.

    ```
    phase k covers [start_k, start_k + lengths[k])
    rate(step) = rates[k]                                after the transition
    linear:  rates[k-1] + (rates[k] - rates[k-1]) * u    u = (step-start_k)/T_k
    cosine:  rates[k] + (rates[k-1] - rates[k]) * (1 + cos(pi * u)) / 2
    ```

    Example:

    >>> schedule = PhaseSchedule(
    ...     rates=[1e-5, 5e-5, 1e-6],
    ...     lengths=[100, 300],
    ...     transitions=["step", "linear", "cosine"],
    ...     transition_steps=[0, 50, 20],
    ... )
    >>> optimizer = keras.optimizers.Adam(learning_rate=schedule)
    >>> round(float(schedule(125)), 8)
    3e-05

    Args:
        rates: List of float. The rate of each phase (> 0).
        lengths: List of int. The length in steps of every phase but the
            last.
        transitions: Optional list of str, one per phase: `"step"`,
            `"linear"` or `"cosine"`. Defaults to `"step"` everywhere.
        transition_steps: Optional list of int, one per phase: the number of
            steps the transition into that phase takes. Defaults to 0.
    """

    def __init__(
        self,
        rates: Sequence[float],
        lengths: Sequence[int],
        transitions: Sequence[str] | None = None,
        transition_steps: Sequence[int] | None = None,
    ):
        rates = [float(r) for r in rates]
        transitions = list(transitions or ["step"] * len(rates))
        transition_steps = list(transition_steps or [0] * len(rates))
        validate_phase_arrays(rates, lengths, transitions, transition_steps)
        self.rates = rates
        self.lengths = [int(n) for n in lengths]
        self.transitions = transitions
        self.transition_steps = [int(n) for n in transition_steps]

    def __call__(self, step):
        return phase_rate(
            ops.cast(step, "float32"),
            self.rates,
            self.lengths,
            self.transitions,
            self.transition_steps,
        )

    def get_config(self) -> dict:
        return {
            "rates": list(self.rates),
            "lengths": list(self.lengths),
            "transitions": list(self.transitions),
            "transition_steps": list(self.transition_steps),
        }
