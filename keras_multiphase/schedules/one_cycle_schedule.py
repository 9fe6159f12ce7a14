"""OneCycle's contribution: the 1cycle rate and momentum, as PyTorch's."""

from __future__ import annotations

import math

from keras import ops

from keras_multiphase.engine.plan import BASE, Plan
from keras_multiphase.schedules.phase_schedule import phase_index, phase_indices

ANNEAL = ("cos", "linear")


def _anneal(kind, start, end, pct, xp):
    if kind == "cos":
        return end + (start - end) / 2.0 * (xp.cos(math.pi * pct) + 1.0)
    return (end - start) * pct + start


class OneCycleShape:
    """The base rate (and momentum) of PyTorch's `OneCycleLR`, resolved to
    steps by the plan. `config` holds OneCycle's validated arguments.

    `momentum` is the optimizer's momentum variable while OneCycle cycles it
    (set by OneCycle at train begin): the engine stores each step's value
    in the rate table and assigns it inside the step.
    """

    role = BASE
    # The name of the per-step value in the logs (`step/momentum`).
    step_column_name = "momentum"

    def __init__(self, config: dict):
        self.config = config
        self.momentum = None
        self.momentum_state = None  # created when the momentum is cycled
        self.found_peak = None  # max_lr="auto": the range test's peak
        self._phases = None  # [(end step, start lr, end lr, start m, end m)]

    @property
    def phase_names(self) -> list[str]:
        if self.config["three_phase"]:
            return ["up", "down", "anneal"]
        return ["up", "anneal"]

    def phase_indices(self, names_or_indices) -> list[int]:
        return phase_indices("OneCycle", self.phase_names, names_or_indices)

    def resolve(self, plan: Plan) -> None:
        c = self.config
        total = c["total_steps"]
        if total is None:
            total = plan.epochs_to_steps(plan.epochs, "OneCycle", "the run's length")
        if total < 2:
            raise ValueError(f"OneCycle needs a run of at least 2 steps; got {total}.")
        peak = c["max_lr"]
        if peak is None or peak == "auto":  # "auto": the range test's, once found
            peak = self.found_peak or plan.own_rate
        initial = peak / c["div_factor"]
        final = initial / c["final_div_factor"]
        hi, lo = c["max_momentum"], c["base_momentum"]
        up_end = float(c["pct_start"] * total) - 1
        if c["three_phase"]:
            self._phases = [
                (up_end, initial, peak, hi, lo),
                (float(2 * c["pct_start"] * total) - 2, peak, initial, lo, hi),
                (total - 1.0, initial, final, hi, hi),
            ]
        else:
            self._phases = [
                (up_end, initial, peak, hi, lo),
                (total - 1.0, peak, final, lo, hi),
            ]

    def check(self, plan: Plan) -> None:
        pass

    def signature(self):
        return ("one_cycle", tuple(self._phases or ()), self.momentum is not None)

    def value(self, step, offset: int, xp):
        """Rate (`offset=0`) or momentum (`offset=2`) at `step`, PyTorch's
        way: from the first phase whose end step is >= step (the last one
        after it)."""
        step = xp.cast(step, "float32")
        start, pieces = 0.0, []
        for end, *values in self._phases:
            pct = xp.clip((step - start) / max(end - start, 1e-12), 0.0, 1.0)
            first, last = values[offset], values[offset + 1]
            anneal = _anneal(self.config["anneal_strategy"], first, last, pct, xp)
            pieces.append((end, anneal))
            start = end
        value = pieces[-1][1]
        for end, piece in reversed(pieces[:-1]):
            value = xp.where(step <= end, piece, value)
        return value

    def base_rate(self, step, xp=ops):
        return self.value(step, 0, xp)

    def starts(self, xp=ops):
        starts = [0.0] + [math.floor(end) + 1.0 for end, *_ in self._phases[:-1]]
        return [xp.convert_to_tensor(s, "float32") for s in starts]

    def phase_at(self, step, xp=ops):
        return phase_index(step, self.starts(xp), xp)

    # -- per-step value: the momentum --------------------------------------
    @property
    def step_columns(self) -> int:
        """Per-step values assigned in the step: the momentum, if cycled."""
        return 0 if self.momentum_state is None else 1

    def step_values(self, step, xp=ops):
        """The momentum of `step` (the engine stores it in the rate table)."""
        return self.value(step, 2, xp)

    def apply_step_value(self, value) -> None:
        """Sets the momentum of the current step; called by the composed
        rate inside the compiled step, before the optimizer's update reads
        it."""
        if self.momentum is not None:
            self.momentum.assign(value)
