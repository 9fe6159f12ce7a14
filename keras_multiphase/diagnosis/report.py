"""`diagnose(history)`: the collapse-then-plateau signs of a finished run."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from keras_multiphase._validation import check_int, check_number, check_ratio
from keras_multiphase.diagnosis import signs as sg
from keras_multiphase.diagnosis.heads import diagnose_heads

_RECOMMENDATIONS = {
    sg.COLLAPSE: (
        "Start with a lower, controlled learning rate instead of the full rate "
        "from the first step (the multiphase recipe starts at peak / 5, the "
        "peak found by a learning-rate range test): "
        '`callbacks=keras_multiphase.preset("multiphase")`; '
        "`keras_multiphase.find_lr(model, x, y)` shows the range test."
    ),
    "warmup": (
        "Add a warmup so the first steps cannot overshoot: "
        "`WarmupCosineRestarts(warmup_epochs=1)` (part of the multiphase preset)."
    ),
    sg.PLATEAU: (
        "Lower the rate to fine-tune once progress stalls: a final phase at "
        "peak / 50 (`PhaseLR`) and `PlateauLR`, which reduces on top of any "
        "schedule."
    ),
    "batch": (
        "Fine-tune with a smaller batch: `AdaptiveBatch(rebuild, "
        "schedule={0.0: 64, 0.8: 16})` (the multiphase preset with `rebuild=`)."
    ),
    sg.DOMINANT: (
        "Put the dominant target (and raw inputs) on a unit scale, keeping "
        "predictions in original units: "
        "`scaled = keras_multiphase.scale_outputs(model, y_train, x=x_train)`, "
        "then `scaled.model.compile(optimizer=..., loss=..., "
        "loss_weights=scaled.loss_weights)` and train `scaled.model` (it adds "
        "`keras.layers.Normalization().adapt(x_train)` before the model and a "
        "fixed `Rescaling` after each regression head; the saved model loads "
        "without this package). Re-weighting the losses "
        '(`preset("multiphase", balance="dwa")`) is the weaker lever: on the '
        "benchmark problems it never beat scaling."
    ),
    sg.CONSTANT_LR: (
        "Use a schedule instead of a fixed rate: `PhaseLR` phases with "
        '`WarmupCosineRestarts`, e.g. `keras_multiphase.preset("multiphase")`.'
    ),
}


@dataclasses.dataclass(frozen=True)
class DiagnosisReport:
    """What `diagnose()` found: the signs, with their numbers, and what to do.

    `print(report)` gives a readable analysis; `report.to_dict()` the same
    for programs. `report.problems` names the signs found (a constant
    learning rate counts as a problem only next to a collapse or a
    plateau: a fixed rate with a loss that keeps improving is fine).

    Attributes:
        signs: Tuple of `Sign` (name, found, text, numbers), one per sign.
        problems: Tuple of the names of the signs that are problems.
        recommendations: Tuple of str, what to change, in order.
        epochs: Int, the number of epochs read.
        monitor: Str, the loss key read.
        heads: Tuple of `HeadDiagnosis`, one per output of a multi-output
            model: its own collapse, plateau or non-learning, read from its
            `<output>_loss`, with the fix for it (empty for one output).
    """

    signs: tuple
    problems: tuple
    recommendations: tuple
    epochs: int
    monitor: str
    heads: tuple = ()

    @property
    def healthy(self) -> bool:
        """No problem found, in the total or in any output's own loss."""
        return not self.problems and not any(h.problems for h in self.heads)

    def __getitem__(self, name: str) -> sg.Sign:
        for sign in self.signs:
            if sign.name == name:
                return sign
        raise KeyError(f"No sign {name!r}; signs are {list(sg.SIGN_NAMES)}")

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "monitor": self.monitor,
            "healthy": self.healthy,
            "problems": list(self.problems),
            "signs": {
                sign.name: {
                    "found": sign.found,
                    "text": sign.text,
                    "numbers": dict(sign.numbers),
                }
                for sign in self.signs
            },
            "recommendations": list(self.recommendations),
            "heads": {head.name: head.to_dict() for head in self.heads},
        }

    def __str__(self) -> str:
        if self.healthy:
            head = (
                f"Training dynamics over {self.epochs} epoch(s) of "
                f"`{self.monitor}`: no collapse-then-plateau sign."
            )
        else:
            head = (
                f"Training dynamics over {self.epochs} epoch(s) of "
                f"`{self.monitor}`: {len(self.problems)} problem(s) found."
            )
        lines = [head]
        for sign in self.signs:
            if sign.name in self.problems:
                mark = "PROBLEM"
            elif sign.found is None:
                mark = "unknown"
            else:
                mark = "ok"
            text = sign.text
            if sign.name == sg.CONSTANT_LR and sign.found and mark == "ok":
                text += " (not a problem while the loss keeps improving)"
            lines.append(f"  [{mark}] {sign.title}: {text}.")
        if self.recommendations:
            lines.append("Recommendations:")
            lines += [
                f"  {i}. {text}" for i, text in enumerate(self.recommendations, 1)
            ]
        if self.heads:
            lines.append("Each output's own loss:")
            lines += [line for head in self.heads for line in _head_lines(head)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<DiagnosisReport problems={list(self.problems)}>"


def _head_lines(head) -> list[str]:
    found = [s for s in head.signs if s.found]
    if not found:
        learning = next(s for s in head.signs if s.name == sg.NOT_LEARNING)
        return [f"  {head.name}: ok, {learning.text}."]
    lines = [f"  {head.name}: [PROBLEM] {s.title}: {s.text}." for s in found]
    return lines + [f"    -> {text}" for text in head.recommendations]


@dataclasses.dataclass(frozen=True)
class Thresholds:
    collapse_share: float = 0.9
    plateau_threshold: float = 0.01
    plateau_patience: int = 3
    dominance_share: float = 0.75
    learning_share: float = 0.1

    def __post_init__(self):
        check_ratio("collapse_share", self.collapse_share)
        check_ratio("plateau_threshold", self.plateau_threshold)
        check_int("plateau_patience", self.plateau_patience, minimum=1)
        check_ratio("dominance_share", self.dominance_share)
        check_ratio("learning_share", self.learning_share)


def problems_of(found: Mapping[str, bool | None]) -> tuple:
    """The names of the signs that are problems, in `SIGN_NAMES` order."""
    trouble = bool(found.get(sg.COLLAPSE) or found.get(sg.PLATEAU))
    return tuple(
        name
        for name in sg.SIGN_NAMES
        if found.get(name) and (name != sg.CONSTANT_LR or trouble)
    )


def recommendations_of(problems: Sequence[str]) -> tuple:
    keys = []
    if sg.COLLAPSE in problems:
        keys.append(sg.COLLAPSE)
        if sg.CONSTANT_LR in problems:
            keys.append("warmup")
    if sg.PLATEAU in problems:
        keys += [sg.PLATEAU, "batch"]
    if sg.DOMINANT in problems:
        keys.append(sg.DOMINANT)
    if sg.CONSTANT_LR in problems:
        keys.append(sg.CONSTANT_LR)
    return tuple(_RECOMMENDATIONS[key] for key in keys)


def _series(name: str, values) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(
            f"History key `{name}` must hold one number per epoch. Received: {values!r}"
        ) from None
    if not all(math.isfinite(v) for v in out):
        raise ValueError(
            f"History key `{name}` holds a non-finite value (the run diverged "
            f"or logged NaN). Received: {out!r}"
        )
    return out


def _compiled_weights(model) -> dict:
    """`{"<output>_loss": weight}` from a compiled Keras 3 model, if readable."""
    from keras_multiphase import _keras_internals

    flat = _keras_internals.loss_entries(_keras_internals.compiled_loss(model))
    weights = {}
    for entry in flat:
        weight = getattr(entry, "loss_weights", None)
        try:
            weights[f"{entry.name}_loss"] = 1.0 if weight is None else float(weight)
        except (TypeError, ValueError):
            continue
    return weights


def _optimizer_scheduled(model) -> bool | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    from keras_multiphase import _keras_internals

    rate = _keras_internals.learning_rate_object(optimizer)
    if rate is None:
        return None
    return callable(rate)


def _component_curves(logs, prefix: str) -> dict:
    """Each output's own loss curve (`<output>_loss`, validation ones with
    `prefix="val_"`)."""
    curves = {}
    for key, values in logs.items():
        name = key[len(prefix) :] if key.startswith(prefix) else None
        if (
            name is None
            or not name.endswith("_loss")
            or name == "loss"
            or (not prefix and name.startswith("val_"))
            or not len(values)
        ):
            continue
        curves[name] = _series(key, values)
    return curves


def analyse(
    logs: Mapping[str, Sequence[float]],
    *,
    monitor: str,
    initial_loss: float | None,
    loss_weights: Mapping[str, float],
    scheduled: bool | None,
    thresholds: Thresholds,
) -> DiagnosisReport:
    """The report for per-epoch logs (the function the monitor calls too)."""
    loss = _series(monitor, logs[monitor])
    prefix = "val_" if monitor.startswith("val_") else ""
    if initial_loss is None:
        points = loss
        labels = [f"epoch {i}" for i in range(len(loss))]
    else:
        points = [float(initial_loss)] + loss
        labels = ["before training"] + [f"epoch {i}" for i in range(len(loss))]
    curves = _component_curves(logs, prefix)
    components = {name: curve[-1] for name, curve in curves.items()}
    weights = dict(loss_weights)
    for name in components:
        logged = logs.get(f"{name}_weight")
        if logged is not None and len(logged):
            weights[name] = float(logged[-1])
    rates = logs.get("learning_rate")
    rates = (
        _series("learning_rate", rates) if rates is not None and len(rates) else None
    )
    signs = (
        sg.collapse(points, labels, thresholds.collapse_share),
        sg.plateau(
            points, labels, thresholds.plateau_threshold, thresholds.plateau_patience
        ),
        sg.dominant(
            components,
            weights,
            ("validation, " if prefix else "") + labels[-1],
            thresholds.dominance_share,
        ),
        sg.constant_lr(rates, scheduled),
    )
    problems = problems_of({sign.name: sign.found for sign in signs})
    dominant = signs[2].numbers.get("component") if signs[2].found else None
    return DiagnosisReport(
        signs=signs,
        problems=problems,
        recommendations=recommendations_of(problems),
        epochs=len(loss),
        monitor=monitor,
        heads=diagnose_heads(
            logs, curves, prefix=prefix, dominant=dominant, thresholds=thresholds
        ),
    )


def diagnose(
    history,
    *,
    monitor: str = "loss",
    initial_loss: float | None = None,
    loss_weights: Mapping[str, float] | None = None,
    collapse_share: float = 0.9,
    plateau_threshold: float = 0.01,
    plateau_patience: int = 3,
    dominance_share: float = 0.75,
    learning_share: float = 0.1,
) -> DiagnosisReport:
    """Reads a training history and says whether it collapsed, then plateaued.

    The signs, each stated with its numbers:

    - **collapse**: the first step of the loss curve holds at least
      `collapse_share` of the whole run's improvement (and halves the loss
      or more). The curve starts at `initial_loss` when given (the loss
      before training, e.g. from `model.evaluate`), else at epoch 0's
      logged loss, which Keras averages over the epoch: a collapse inside
      epoch 0 then shows between epoch 0 and epoch 1.
    - **plateau**: the last `plateau_patience` epochs (or more) after the
      first improved the loss by less than `plateau_threshold` (relative)
      per epoch on average, counted from the best value in that window.
    - **dominant loss component**: at the last epoch one weighted
      `<output>_loss` is at least `dominance_share` of their sum (weights
      from logged `<output>_loss_weight`, else `loss_weights`, else the
      History's model, else 1).
    - **constant learning rate**: the logged `learning_rate` never changed
      (or, without that key, the History's model has a plain-number rate).
      A problem only next to a collapse or a plateau.

    For a multi-output model, each output's own `<output>_loss` is read
    too (`report.heads`): its collapse and plateau, and whether it learned
    at all (its best loss at least `learning_share` below its first), with
    the fix for that output: a head that does not learn next to a dominant
    component gets the output-scaling advice, one that does not learn on
    its own the advice to check its targets.

    Example:

    >>> history = {"loss": [537177.0, 80.0, 79.6, 79.1, 78.7, 78.4, 78.1, 78.0]}
    >>> report = diagnose(history)
    >>> report.problems
    ('collapse', 'plateau')
    >>> print(report)  # doctest: +ELLIPSIS
    Training dynamics over 8 epoch(s) of `loss`: 2 problem(s) found.
      [PROBLEM] first-epoch collapse: the loss fell from 537,177 (epoch 0) ...

    Args:
        history: A `keras.callbacks.History` (what `fit` returns) or its
            `history` dict (`{key: [one value per epoch]}`).
        monitor: Str. The loss key to read, `"loss"` or `"val_loss"`.
        initial_loss: Optional float, the loss before the first step.
        loss_weights: Optional mapping `{"<output>_loss": weight}` (or
            `{"<output>": weight}`) used to weigh the components.
        collapse_share: Float in [0, 1].
        plateau_threshold: Float in [0, 1], relative improvement per epoch.
        plateau_patience: Int >= 1, epochs in a row under the threshold.
        dominance_share: Float in [0, 1].
        learning_share: Float in [0, 1], the relative improvement of an
            output's loss under which it did not learn.

    Returns:
        A `DiagnosisReport`.
    """
    thresholds = Thresholds(
        collapse_share,
        plateau_threshold,
        plateau_patience,
        dominance_share,
        learning_share,
    )
    model = None
    logs = history
    if not isinstance(history, Mapping):
        logs = getattr(history, "history", None)
        model = getattr(history, "model", None)
        if not isinstance(logs, Mapping):
            raise ValueError(
                "Argument `history` must be a keras.callbacks.History or its "
                f"`history` dict. Received: history={history!r}"
            )
    if monitor not in logs:
        raise ValueError(
            f"Argument `monitor` must be a key of the history. Received: "
            f"monitor={monitor!r}; keys: {sorted(logs)}"
        )
    if len(logs[monitor]) < 1:
        raise ValueError(f"History key `{monitor}` is empty: no epoch was logged.")
    if initial_loss is not None:
        initial_loss = check_number("initial_loss", initial_loss)
    weights = _compiled_weights(model) if model is not None else {}
    for name, weight in (loss_weights or {}).items():
        key = name if name.endswith("_loss") else f"{name}_loss"
        weights[key] = check_number(f"loss_weights[{name!r}]", weight)
    return analyse(
        logs,
        monitor=monitor,
        initial_loss=initial_loss,
        loss_weights=weights,
        scheduled=_optimizer_scheduled(model) if model is not None else None,
        thresholds=thresholds,
    )
