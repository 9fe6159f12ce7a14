"""The plan of a fit: what every contribution resolves against.

The engine makes it once per fit, at train begin, before any contribution
resolves, and hands it to each (`LRCallback.resolve`): `fit`'s steps per
epoch and epochs, the epoch -> step map when epochs differ in length (the
contribution of AdaptiveBatch, asked for first), and the base schedule
whose phases other contributions follow (PhaseLR or OneCycle). It does not
change during the fit; contributions read it, none writes it, and none
looks another up through the engine.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Plan:
    """`steps` per epoch and `epochs` as `fit` gives them (None: unknown);
    `epoch_map` (epochs -> step, with `inverse`) when epochs differ in
    length; `phases`, the base schedule (`phase_names`, `phase_at`,
    `starts`, `phase_lengths`, `phase_indices`), or None."""

    steps: int | None
    epochs: int | None
    epoch_map: object | None = None
    phases: object | None = None

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
