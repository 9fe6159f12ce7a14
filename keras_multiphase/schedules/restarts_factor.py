"""WarmupCosineRestarts's contribution: the SGDR factor, resolved by the plan."""

from __future__ import annotations

from keras import ops

from keras_multiphase.engine.plan import FACTOR, Plan
from keras_multiphase.schedules.phase_schedule import NEVER
from keras_multiphase.schedules.warmup_cosine_restarts_schedule import (
    warmup_cosine_factor,
)

OWNER = "WarmupCosineRestarts"


class RestartsFactor:
    """A warmup then cosine cycles with restarts, as a factor of the base
    rate, over the whole run, an epoch range, or PhaseLR phases. `config`
    holds WarmupCosineRestarts's validated arguments."""

    role = FACTOR

    def __init__(self, config: dict):
        self.config = config
        self._steps = None  # resolved: (warmup, cycle, scope start, scope end)
        self._phase_ids = None
        self._base = None  # the base contribution whose phases it follows
        self._cycle = None

    def _to_steps(self, plan: Plan, epochs: float, what: str) -> int:
        return plan.epochs_to_steps(epochs, OWNER, what)

    def resolve(self, plan: Plan) -> None:
        """Steps of the warmup, the scope and the first cycle, by the plan
        (whose base contribution, resolved before this factor, gives the
        phases' lengths)."""
        c = self.config
        warmup = c["warmup_steps"]
        if c["warmup_epochs"] is not None:
            warmup = self._to_steps(plan, c["warmup_epochs"], "`warmup_epochs`")
        start, end = 0, None
        if c["start_epoch"] is not None:
            start = self._to_steps(plan, c["start_epoch"], "`start_epoch`")
        if c["end_epoch"] is not None:
            end = self._to_steps(plan, c["end_epoch"], "`end_epoch`")
        cycle = c["first_cycle_steps"]
        if c["first_cycle_epochs"] is not None:
            cycle = max(
                1, self._to_steps(plan, c["first_cycle_epochs"], "the cycle length")
            )
        self._steps = (warmup, cycle, start, end)
        self._base = plan.phases
        self._phase_ids = self._phase_ids_of(plan.phases)
        if cycle is None:
            cycle = self._cycle_filling_scope(plan, warmup, start, end)
        if c["warmup_each_cycle"] and warmup >= cycle:
            raise ValueError(
                "With `warmup_each_cycle=True` the warmup must be shorter "
                f"than a cycle. Received: warmup of {warmup} steps, cycle of "
                f"{cycle} steps."
            )
        self._cycle = cycle

    def _phase_ids_of(self, base):
        """The indices of the phases the schedule is limited to (or None)."""
        phases = self.config["phases"]
        if phases is None:
            return None
        if base is None:
            raise ValueError(
                f"{OWNER} was limited to phases {phases}, but no PhaseLR is "
                "in the callbacks. Add a PhaseLR or drop `phases`."
            )
        return base.phase_indices(phases)

    def _cycle_filling_scope(self, plan, warmup, start, end) -> int:
        """Without a cycle length: one cycle over the scope, after the warmup."""
        scope = self._scope_length(plan, start, end)
        cycle = scope - warmup
        if cycle < 1 and self.config["min_ratio"] == 1.0:
            return 1  # warmup then flat: the cycle length is irrelevant
        if cycle < 1:
            raise ValueError(
                f"{OWNER}: the warmup ({warmup} steps) fills its whole scope "
                f"({scope} steps). Shorten the warmup or give `first_cycle_steps`."
            )
        return cycle

    def _scope_length(self, plan, start, end) -> int:
        if self._phase_ids is not None:
            # The last phase runs to the end of the run.
            run_end = self._to_steps(plan, plan.epochs, "a run-long phase")
            lengths = list(plan.phases.phase_lengths)
            lengths.append(max(1, run_end - sum(lengths)))
            total = sum(lengths[i] for i in set(self._phase_ids))
            if total >= NEVER:
                raise ValueError(
                    f"{OWNER} covers a phase with no fixed length "
                    f"({self.config['phases']}); give `first_cycle_steps` or "
                    "`first_cycle_epochs`."
                )
            return int(total)
        if end is None:
            end = self._to_steps(plan, plan.epochs, "a cycle spanning the run")
        return end - start

    def check(self, plan: Plan) -> None:
        pass

    def signature(self):
        return (self._steps, self._cycle, self._phase_ids)

    def _scope(self, step, xp):
        """Where the factor applies (a boolean), and the step it counts from."""
        _, _, start, end = self._steps
        if self._phase_ids is not None:
            origin = self._base.starts(xp)[min(self._phase_ids)]
            current = self._base.phase_at(step, xp)
            inside = xp.zeros_like(step) > 1.0
            for i in self._phase_ids:
                inside = xp.logical_or(inside, xp.equal(current, i))
            return inside, origin
        origin = xp.convert_to_tensor(float(start), "float32")
        inside = step >= origin
        if end is not None:
            inside = xp.logical_and(inside, step < float(end))
        return inside, origin

    def factor(self, step, base, xp=ops):
        c = self.config
        inside, origin = self._scope(step, xp)
        if c["min_lr"] is not None:
            min_ratio = xp.clip(c["min_lr"] / xp.maximum(base, 1e-30), 0.0, 1.0)
        else:
            min_ratio = c["min_ratio"]
        factor = warmup_cosine_factor(
            step - origin,
            first_cycle_steps=self._cycle,
            cycle_mult=c["cycle_mult"],
            cycle_decay=c["cycle_decay"],
            min_ratio=min_ratio,
            warmup_steps=self._steps[0],
            warmup_start_ratio=c["warmup_start_ratio"],
            warmup_each_cycle=c["warmup_each_cycle"],
            max_cycles=c["max_cycles"],
            warmup_prefix=c["warmup_prefix"],
            xp=xp,
        )
        return xp.where(inside, factor, xp.ones_like(factor))
