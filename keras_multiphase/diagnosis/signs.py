"""The signs of collapse-then-plateau training, read from per-epoch numbers.

Each function takes plain Python numbers and returns a `Sign`: whether it
was found, one sentence that states it with the numbers, and the numbers
themselves. `diagnose()` and `TrainingDynamicsMonitor` share them, so the
report and the warnings say the same thing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

COLLAPSE = "collapse"
PLATEAU = "plateau"
DOMINANT = "dominant_component"
CONSTANT_LR = "constant_learning_rate"
SIGN_NAMES = (COLLAPSE, PLATEAU, DOMINANT, CONSTANT_LR)
# A sign of one output's own loss curve (`DiagnosisReport.heads`).
NOT_LEARNING = "not_learning"

_TITLES = {
    COLLAPSE: "first-epoch collapse",
    PLATEAU: "plateau",
    DOMINANT: "dominant loss component",
    CONSTANT_LR: "constant learning rate",
    NOT_LEARNING: "not learning",
}


@dataclasses.dataclass(frozen=True)
class Sign:
    """One sign of the diagnosis.

    Attributes:
        name: One of `SIGN_NAMES`.
        found: Whether the sign is present. `None` when the history does
            not hold what it takes to tell (e.g. no per-output losses).
        text: One sentence stating it with the numbers.
        numbers: The numbers behind `text`.
    """

    name: str
    found: bool | None
    text: str
    numbers: dict

    @property
    def title(self) -> str:
        return _TITLES[self.name]


def fmt(value: float) -> str:
    """A loss value for a sentence: 537,177 / 80 / 0.693 / 2e-04."""
    if value == 0 or not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    if magnitude >= 0.01:
        return f"{value:.3g}"
    return f"{value:.1e}"


def pct(fraction: float) -> str:
    """98.76% style, with enough digits to tell 99.98% from 100%."""
    value = 100 * fraction
    if 99 <= value < 100:
        digits = 2
        while round(value, digits) >= 100 and digits < 6:
            digits += 1
        return f"{value:.{digits}f}%"
    return f"{value:.1f}%"


def collapse(points: Sequence[float], labels: Sequence[str], min_share: float) -> Sign:
    """The first step of the curve holds most of the whole improvement."""
    if len(points) < 3:
        return Sign(COLLAPSE, None, "needs at least 3 points of the loss curve", {})
    start, after = points[0], points[1]
    best = min(points)
    total = start - best
    drop = start - after
    share = drop / total if total > 0 else 0.0
    relative = drop / abs(start) if start else 0.0
    numbers = {
        "start": start,
        "after_first_epoch": after,
        "drop_fraction": relative,
        "share_of_total_improvement": share,
        "from": labels[0],
        "to": labels[1],
    }
    found = share >= min_share and relative >= 0.5
    text = (
        f"the loss fell from {fmt(start)} ({labels[0]}) to {fmt(after)} "
        f"({labels[1]}), a {pct(relative)} drop that is {pct(share)} of the "
        "whole run's improvement"
    )
    if not found:
        text += f" (a collapse is >= {pct(min_share)})"
    return Sign(COLLAPSE, found, text, numbers)


def plateau(
    points: Sequence[float],
    labels: Sequence[str],
    threshold: float,
    patience: int,
) -> Sign:
    """The curve's last epochs (at least `patience`, after the first step)
    improved the loss by less than `threshold` per epoch on average.

    The window is the longest one ending at the last point whose average
    relative improvement, `(start - best in window) / start / length`, is
    under the threshold: noise that makes one epoch jump does not hide a
    plateau, and one good epoch in a flat stretch does not make one.
    """
    if len(points) < patience + 2:
        return Sign(
            PLATEAU,
            None,
            f"needs {patience + 2} points of the loss curve, has {len(points)}",
            {},
        )

    def rate(length):
        begin = points[-length - 1]
        gain = (begin - min(points[-length:])) / abs(begin) if begin else 0.0
        return gain, gain / length

    found_length = 0
    for length in range(patience, len(points) - 1):
        if rate(length)[1] < threshold:
            found_length = length
    length = found_length or patience
    gain, per_epoch = rate(length)
    first = len(points) - length
    begin, end = points[first - 1], min(points[first:])
    found = bool(found_length)
    numbers = {
        "epochs": found_length,
        "first": labels[first] if found else None,
        "from_value": begin,
        "to_value": end,
        "improvement": gain,
        "per_epoch": per_epoch,
        "threshold": threshold,
    }
    if found:
        text = (
            f"{length} epoch(s) ({labels[first]} to {labels[-1]}) improved the "
            f"loss by {pct(gain)} in all ({fmt(begin)} -> {fmt(end)}), "
            f"{pct(per_epoch)} per epoch, under the {pct(threshold)} threshold"
        )
    else:
        text = (
            f"the last {length} epoch(s) still improved the loss by "
            f"{pct(per_epoch)} per epoch (a plateau is under {pct(threshold)} "
            f"for {patience} epochs)"
        )
    return Sign(PLATEAU, found, text, numbers)


def dominant(
    components: Mapping[str, float],
    weights: Mapping[str, float],
    label: str,
    min_share: float,
) -> Sign:
    """One weighted loss component is most of the total."""
    if len(components) < 2:
        return Sign(
            DOMINANT,
            None,
            "needs per-output losses (`<output>_loss`) of a multi-output model",
            {},
        )
    weighted = {
        name: weights.get(name, 1.0) * value for name, value in components.items()
    }
    total = sum(weighted.values())
    name = max(weighted, key=weighted.get)
    share = weighted[name] / total if total > 0 else 0.0
    others = [components[n] for n in components if n != name]
    numbers = {
        "component": name,
        "value": components[name],
        "weighted_value": weighted[name],
        "total": total,
        "share": share,
        "others": {n: components[n] for n in components if n != name},
        "weights": {n: weights.get(n, 1.0) for n in components},
    }
    found = share >= min_share
    text = (
        f"{name} is {fmt(weighted[name])} of the {fmt(total)} total "
        f"({pct(share)}, {label}); the other component(s) are "
        f"{fmt(min(others))} to {fmt(max(others))}"
        if len(others) > 1
        else f"{name} is {fmt(weighted[name])} of the {fmt(total)} total "
        f"({pct(share)}, {label}); the other component is {fmt(others[0])}"
    )
    if not found:
        text += f" (dominant is >= {pct(min_share)})"
    return Sign(DOMINANT, found, text, numbers)


def constant_lr(rates: Sequence[float] | None, scheduled: bool | None) -> Sign:
    """The learning rate never changed (no warmup, no decay)."""
    if rates:
        low, high = min(rates), max(rates)
        found = high <= low * (1 + 1e-6)
        numbers = {"min": low, "max": high, "epochs": len(rates)}
        if found:
            text = (
                f"the learning rate stayed at {low:.3g} for all {len(rates)} "
                "epoch(s): no warmup, no decay"
            )
        else:
            text = f"the learning rate moved between {low:.3g} and {high:.3g}"
        return Sign(CONSTANT_LR, found, text, numbers)
    if scheduled is None:
        return Sign(
            CONSTANT_LR,
            None,
            "the learning rate was not logged (pass a History with its model, "
            "or log `learning_rate`)",
            {},
        )
    if scheduled:
        return Sign(
            CONSTANT_LR, False, "the optimizer follows a learning-rate schedule", {}
        )
    return Sign(
        CONSTANT_LR,
        True,
        "the optimizer's learning rate is a plain number, never changed: "
        "no warmup, no decay",
        {},
    )


def not_learning(
    points: Sequence[float],
    labels: Sequence[str],
    min_improvement: float,
    accuracy: float | None = None,
) -> Sign:
    """One output's loss never improved by `min_improvement` (relative) on
    its first logged value: the head did not learn (a classifier at chance,
    a regression head stuck at its start)."""
    if len(points) < 2:
        return Sign(NOT_LEARNING, None, "needs at least 2 epochs", {})
    start, best = points[0], min(points)
    improvement = (start - best) / abs(start) if start else 0.0
    numbers = {
        "start": start,
        "best": best,
        "improvement": improvement,
        "threshold": min_improvement,
        "accuracy": accuracy,
    }
    found = improvement < min_improvement
    text = (
        f"its loss went from {fmt(start)} ({labels[0]}) to at best "
        f"{fmt(best)}, {pct(max(improvement, 0.0))} better"
    )
    if accuracy is not None:
        text += f"; accuracy {accuracy:.3g} at {labels[-1]}"
    if not found:
        text += f" (not learning is under {pct(min_improvement)})"
    return Sign(NOT_LEARNING, found, text, numbers)
