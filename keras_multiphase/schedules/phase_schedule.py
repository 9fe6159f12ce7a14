"""Learning-rate phases with smooth transitions: the formula (`phase_rate`),
as a Keras schedule (`PhaseSchedule`), and as PhaseLR's contribution to the
engine (`NamedPhases`: named phases resolved to steps by the fit's plan)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from keras_multiphase._validation import check_non_negative, check_positive
from keras_multiphase.engine.plan import BASE, Plan
from keras_multiphase.schedules.numpy_ops import value_of

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


def phase_indices(owner: str, phase_names, names_or_indices) -> list[int]:
    """Maps phase names (or indices) to indices; raises if unknown. Shared
    by the base contributions (PhaseLR's, OneCycle's)."""
    out = []
    for item in names_or_indices:
        if isinstance(item, int) and 0 <= item < len(phase_names):
            out.append(item)
        elif item in phase_names:
            out.append(phase_names.index(item))
        else:
            raise ValueError(
                f"Unknown phase {item!r}. {owner} has phases {list(phase_names)}."
            )
    return out


class NamedPhases:
    """The base rate over PhaseLR's validated `phases`.

    `relative`: phase rates are `ratio x peak`, the peak read from the
    state variable `peak`. The other state: `ends` (the step at which a
    plateau ended each phase, -1 if none) and `planned` (the lengths the
    run follows, for extending it). PhaseLR creates the variables and
    takes the epoch-end decisions; this object only computes.
    """

    role = BASE

    def __init__(self, phases: list[dict], relative: bool):
        self.phases = phases
        self.relative = relative
        self.peak = None  # state variables, set by PhaseLR
        self.ends = None
        self.planned = None
        self.lengths: list[float] | None = None
        self.transition_steps: list[float] | None = None
        self._warned_schedule = False
        # Phases with `layer_rates`: each phase's multiplier of each group of
        # variables (`layer_table[k][g]`), the variable the step's update
        # reads them from, and each group's name in the logs.
        self.layer_table = None
        self.layer_state = None
        self.layer_names: list[str] = []

    @property
    def phase_names(self) -> list[str]:
        return [p["name"] for p in self.phases]

    @property
    def phase_lengths(self) -> list[float]:
        """Lengths in steps of all phases but the last (`NEVER` for one that
        ends only on a plateau)."""
        return list(self.lengths or ())

    def phase_indices(self, names_or_indices) -> list[int]:
        return phase_indices("PhaseLR", self.phase_names, names_or_indices)

    # -- resolution --------------------------------------------------------
    def resolve(self, plan: Plan) -> None:
        """Each phase's length and transition in steps, by the plan."""
        self.lengths = self._replanned(self._lengths(plan), plan)
        starts = np.concatenate([[0.0], np.cumsum(self.lengths)])
        spans = []
        for i, p in enumerate(self.phases):
            span = p["transition_steps"]
            if span == "phase":  # the transition lasts the whole phase
                if i < len(self.lengths):
                    span = self.lengths[i]
                else:
                    end = plan.epochs_to_steps(
                        plan.epochs, "PhaseLR", "a run-long phase"
                    )
                    span = max(1.0, end - float(starts[i]))
                if span >= NEVER:
                    raise ValueError(
                        f"Phase {p['name']!r} has `transition_steps: phase` "
                        "but no fixed length; give its length."
                    )
            spans.append(float(span))
        self.transition_steps = spans

    def _lengths(self, plan: Plan) -> list[float]:
        lengths = []
        for p in self.phases[:-1]:
            if "steps" in p:
                lengths.append(float(p["steps"]))
            elif "epochs" in p or "fraction" in p:
                # Each phase's length in epochs, placed after the previous
                # phases (epochs may differ in length with AdaptiveBatch).
                span = p["epochs"] if "epochs" in p else p["fraction"] * plan.epochs
                start = sum(lengths)
                if start >= NEVER:  # after a plateau-only phase
                    end = plan.epochs_to_steps(span, "PhaseLR", "phase lengths")
                    lengths.append(float(max(1, end)))
                    continue
                start_epochs = plan.epochs_at(start, "PhaseLR", "phase lengths")
                end = plan.epochs_to_steps(
                    start_epochs + span, "PhaseLR", "phase lengths"
                )
                lengths.append(float(max(1, end - start)))
            else:
                lengths.append(NEVER)
        return lengths

    def _replanned(self, lengths: list[float], plan: Plan) -> list[float]:
        """The lengths of a continued run whose length changed (`fit(...,
        initial_epoch=k)` with other `epochs`): a phase that ended keeps its
        end; the phase in progress and the later ones end where the new
        plan puts them, never before the current step. Extending a run so
        stretches the phase in progress and moves the last phase to the new
        end, with no jump in the rate. Plateau-ended phases keep the plan.
        """
        planned = [float(v) for v in self.planned.numpy()]
        if (
            not plan.continues_run
            or not planned
            or planned[0] < 0
            or planned == lengths
            or max(planned + lengths) >= NEVER
        ):
            return lengths
        step = plan.run_step
        ends, previous = [], 0.0
        for old, new in zip(np.cumsum(planned), np.cumsum(lengths), strict=True):
            end = float(old) if old <= step else max(float(new), step)
            ends.append(max(end, previous + 1.0))
            previous = ends[-1]
        return [float(v) for v in np.diff([0.0, *ends])]

    def check(self, plan: Plan) -> None:
        if plan.own_schedule is not None and not self._warned_schedule:
            warnings.warn(
                "PhaseLR replaces the optimizer's own learning-rate schedule "
                f"({plan.own_schedule}) for this fit; the optimizer gets it "
                "back when training ends.",
                stacklevel=2,
            )
            self._warned_schedule = True

    def signature(self):
        return (
            tuple(p.get("lr", p.get("ratio")) for p in self.phases),
            tuple(self.lengths or ()),
            tuple(p["transition"] for p in self.phases),
            tuple(self.transition_steps or ()),
            None if self.layer_table is None else self.layer_table.tobytes(),
        )

    # -- per-step values: the layer multipliers ------------------------------
    @property
    def step_columns(self) -> int:
        """Columns of the rate table this contribution fills: one per group
        of variables when phases have `layer_rates`."""
        return 0 if self.layer_table is None else self.layer_table.shape[1]

    # The per-step logs show each group's rate (`learning_rate/<group>`).
    scales_rate = True

    @property
    def step_column_names(self) -> list[str]:
        return [f"learning_rate/{name}" for name in self.layer_names]

    step_column_name = "learning_rate/layers"

    def step_values(self, step, xp=ops):
        """Each group's multiplier at `step`: its phase's (shape `(...,
        groups)`)."""
        phase = self.phase_at(step, xp)
        table = self.layer_table
        values = xp.zeros_like(xp.cast(phase, "float32"))[..., None] + table[0]
        for k in range(1, len(table)):
            inside = xp.equal(phase, k)[..., None]
            values = xp.where(inside, xp.convert_to_tensor(table[k]), values)
        return values

    def apply_step_value(self, value) -> None:
        """Sets this step's multipliers (inside the step, before the
        optimizer's update reads them). A table row gives one group's
        multiplier as a scalar."""
        if tuple(value.shape) != tuple(self.layer_state.shape):
            value = ops.reshape(value, self.layer_state.shape)
        self.layer_state.assign(value)

    # -- functions of the run's step ---------------------------------------
    def rates(self, xp):
        """Each phase's rate for evaluator `xp`; ratios times the peak."""
        if not self.relative:
            return [p["lr"] for p in self.phases]
        peak = value_of(self.peak, xp)
        return [p["lr"] if "lr" in p else p["ratio"] * peak for p in self.phases]

    def starts(self, xp=ops):
        return phase_starts(self.lengths, value_of(self.ends, xp), xp)

    def base_rate(self, step, xp=ops):
        return phase_rate(
            step,
            self.rates(xp),
            self.lengths,
            [p["transition"] for p in self.phases],
            self.transition_steps,
            end_override=value_of(self.ends, xp),
            xp=xp,
        )

    def phase_at(self, step, xp=ops):
        return phase_index(step, self.starts(xp), xp)
