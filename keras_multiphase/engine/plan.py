"""The plan of a fit: what every contribution resolves against.

The engine makes it once per fit, at train begin, before any contribution
resolves, and hands it to each (`resolve(plan)`): `fit`'s steps per epoch
and epochs, the epoch -> step map when epochs differ in length
(AdaptiveBatch's, given when it registered), the base schedule whose phases
other contributions follow (PhaseLR's or OneCycle's), and what the run
stands at (its step, whether this fit continues it, the optimizer's own
rate). It does not change during the fit; contributions read it, none
writes it, and none calls the engine.

A contribution is the part of a callback the engine evaluates: an object
with a `role` (below), `resolve(plan)`, `check(plan)`, `signature()` and
the role's function of the run's step (`base_rate(step, xp)`,
`factor(step, base, xp)` or `floor(step, rate, xp)`), reading its state
through the evaluator `xp` it is given. Contributions live with their
formulas in `schedules/`; they call nothing back.
"""

from __future__ import annotations

import dataclasses

# Roles, in the order contributions are applied (only rounding depends on
# it): the base rate, factors of it, then floors.
BASE, FACTOR, FLOOR = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Plan:
    """`steps` per epoch and `epochs` as `fit` gives them (None: unknown);
    `epoch_map` (epochs -> step, with `inverse`) when epochs differ in
    length; `phases`, the base contribution (`phase_names`, `phase_at`,
    `starts`, `phase_lengths`, `phase_indices`), or None; `run_step`, the
    run's step when the fit begins; `continues_run`, True when the fit
    continues a run (`initial_epoch=k`); `own_rate`, the optimizer's own
    rate at its current step; `own_schedule`, the class name of the
    optimizer's own `LearningRateSchedule`, or None."""

    steps: int | None
    epochs: int | None
    epoch_map: object | None = None
    phases: object | None = None
    run_step: float = 0.0
    continues_run: bool = False
    own_rate: float | None = None
    own_schedule: str | None = None

    def steps_per_epoch(self, owner: str, what: str) -> int:
        if not self.steps:
            raise ValueError(
                f"{owner} was given {what} in epochs or fractions, but the "
                "number of steps per epoch is unknown. Pass `steps_per_epoch` "
                "to `fit`, use data of known length, or give lengths in steps."
            )
        return int(self.steps)

    def epochs_to_steps(self, epochs: float, owner: str, what: str) -> int:
        """The step at which `epochs` (a float) epochs have passed."""
        if self.epoch_map is not None:
            return int(self.epoch_map(epochs))
        return int(round(epochs * self.steps_per_epoch(owner, what)))

    def epochs_at(self, step: float, owner: str, what: str) -> float:
        """Inverse of `epochs_to_steps`, in epochs (a float)."""
        if self.epoch_map is not None:
            return self.epoch_map.inverse(step)
        return step / self.steps_per_epoch(owner, what)
