"""The signs of each output of a multi-output model, read from its own loss.

A total loss can look healthy while one head never learns: a dominant
component carries the total, and a classifier sits at chance beside it.
Each head's curve (`<output>_loss`, unweighted, as Keras 3 logs it) is read
for its own collapse, plateau and non-learning, with the fix that applies
to that head.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from keras_multiphase.diagnosis import signs as sg

_SATURATED = (
    "A sigmoid or softmax classifier trained on JAX or PyTorch may be "
    "saturated (probabilities at 0 or 1, where Keras's crossentropy has no "
    "gradient; TensorFlow differentiates the logits): call "
    "`keras_multiphase.stable_heads(model)` before compiling (on the "
    "benchmark problems it left the dominant head unchanged). "
)
_HIDDEN = (
    "{name} is not learning next to the dominant {dominant}: give each "
    "small head its own normalisation and a shortcut from the inputs "
    "before compiling (`model = keras_multiphase.normalize_heads(model, "
    "y_train, x=x_train)`, which also gives sigmoid and softmax heads "
    "stable_heads' activations; see docs/balancing.md). On the benchmark "
    "problems it lifted such heads and left the dominant head's error "
    "level. Putting the targets and raw inputs on a unit scale "
    "(`keras_multiphase.scale_outputs(model, y_train, x=x_train)`) lifts "
    "some further but can cost the dominant head's error: compare both in "
    "original units."
)
_STUCK = (
    "{name} is not learning: check its targets and loss (a classifier's "
    "labels, a regression target's scale), and its loss weight."
)
_COLLAPSE = (
    "{name}'s loss collapsed in the first epoch: a controlled start "
    '(`preset("multiphase")` begins at peak / 5 with a warmup).'
)
_PLATEAU = (
    "{name} plateaued: a fine-tuning phase at a lower rate (the multiphase "
    "preset's last phase) or `PlateauLR` on `{prefix}{name}_loss`."
)


@dataclasses.dataclass(frozen=True)
class HeadDiagnosis:
    """What the diagnosis found for one output.

    Attributes:
        name: Str, the output's name.
        signs: Tuple of `Sign`: collapse, plateau and not learning, read
            from this output's own loss curve.
        problems: Tuple of the names of the signs found.
        recommendations: Tuple of str, what to change for this output.
    """

    name: str
    signs: tuple
    problems: tuple
    recommendations: tuple

    def to_dict(self) -> dict:
        return {
            "problems": list(self.problems),
            "signs": {
                s.name: {"found": s.found, "text": s.text, "numbers": dict(s.numbers)}
                for s in self.signs
            },
            "recommendations": list(self.recommendations),
        }


def _accuracy(logs: Mapping[str, Sequence[float]], key: str) -> float | None:
    """The last logged accuracy of an output (`<key>_accuracy`, or any
    metric of it whose name ends in `accuracy`)."""
    for name, values in logs.items():
        if name.startswith(f"{key}_") and name.endswith("accuracy") and len(values):
            return float(values[-1])
    return None


def diagnose_heads(
    logs: Mapping[str, Sequence[float]],
    curves: Mapping[str, Sequence[float]],
    *,
    prefix: str,
    dominant: str | None,
    thresholds,
) -> tuple:
    """One `HeadDiagnosis` per output of a multi-output history.

    `curves` maps `<output>_loss` to its per-epoch values; `dominant` is
    the dominant component's `<output>_loss`, when one was found.
    """
    if len(curves) < 2:
        return ()
    out = []
    for component, points in curves.items():
        name = component[: -len("_loss")]
        labels = [f"epoch {i}" for i in range(len(points))]
        accuracy = _accuracy(logs, f"{prefix}{name}")
        signs = (
            sg.collapse(points, labels, thresholds.collapse_share),
            sg.plateau(
                points,
                labels,
                thresholds.plateau_threshold,
                thresholds.plateau_patience,
            ),
            sg.not_learning(points, labels, thresholds.learning_share, accuracy),
        )
        problems = tuple(s.name for s in signs if s.found)
        out.append(
            HeadDiagnosis(
                name=name,
                signs=signs,
                problems=problems,
                recommendations=_recommendations(
                    name, problems, prefix, dominant, component, accuracy
                ),
            )
        )
    return tuple(out)


def _recommendations(
    name, problems, prefix, dominant, component, accuracy=None
) -> tuple:
    words = {"name": name, "prefix": prefix}
    if sg.NOT_LEARNING in problems:
        if dominant and dominant != component:
            words["dominant"] = dominant[: -len("_loss")]
            return (_HIDDEN.format(**words),)
        # A head with an accuracy metric is a classifier: it may be saturated.
        first = _SATURATED if accuracy is not None else ""
        return (first + _STUCK.format(**words),)
    out = []
    if sg.COLLAPSE in problems:
        out.append(_COLLAPSE.format(**words))
    if sg.PLATEAU in problems:
        out.append(_PLATEAU.format(**words))
    return tuple(out)
