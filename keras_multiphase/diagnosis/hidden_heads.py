"""A small head that is not learning beside a dominant one, seen during
`fit` from the per-output losses Keras logs (no per-step cost).

`diagnose()` finds the same after training (`heads.py`); this is the check
a preset makes at each epoch's end, so the user hears of it while the run
can still be stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from keras_multiphase.diagnosis import signs as sg

# Epochs of losses before a head is judged.
MIN_EPOCHS = 3
# Not learning: its loss never improved on its first epoch's by this share
# (`diagnose()`'s `learning_share`).
LEARNING_SHARE = 0.1
# Hidden: the dominant head's loss is at least this many times its own.
DOMINANCE = 10.0

_NORMALIZE = (
    "give each small head its own normalisation and path from the inputs "
    "before compiling: `model = keras_multiphase.normalize_heads(model, "
    "y_train, x=x_train)` (docs/balancing.md)"
)
_SCALE = (
    "it already reads through normalize_heads; put the targets and inputs on "
    "a unit scale: `keras_multiphase.scale_outputs(model, y_train, "
    "x=x_train)`, and compare the dominant head's error in original units "
    "(docs/balancing.md)"
)


class HiddenHeads:
    """Each output's loss per epoch of one fit; says once per head when it
    is not learning while another dominates.

    Args:
        names: The outputs, in the order their losses are given.
        normalized: The outputs that already read through
            `normalize_heads`' normalisation (their fix is another).
    """

    def __init__(self, names: Sequence[str], normalized=()):
        self.names = list(names)
        self.normalized = set(normalized)
        self.curves = {name: [] for name in self.names}
        self.said = set()

    def update(self, losses: Mapping[str, float]) -> list[str]:
        """Records one epoch's unweighted losses; returns the messages of
        the heads newly found hidden."""
        for name in self.names:
            self.curves[name].append(float(losses[name]))
        if len(self.curves[self.names[0]]) < MIN_EPOCHS:
            return []
        last = {name: curve[-1] for name, curve in self.curves.items()}
        dominant = max(last, key=last.get)
        out = []
        for name, curve in self.curves.items():
            if name == dominant or name in self.said:
                continue
            labels = [f"epoch {i + 1}" for i in range(len(curve))]
            sign = sg.not_learning(curve, labels, LEARNING_SHARE)
            if sign.found and last[dominant] >= DOMINANCE * last[name]:
                self.said.add(name)
                fix = _SCALE if name in self.normalized else _NORMALIZE
                out.append(
                    f"output {name!r} is not learning: {sign.text}, while "
                    f"{dominant!r} dominates the loss ({last[dominant]:.4g} "
                    f"against {last[name]:.4g}). To fix it, {fix}."
                )
        return out
