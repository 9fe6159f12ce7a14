"""How LossWeightBalancer turns component losses into weights.

Each strategy is a small class with `needs_history` (epochs of losses it
needs before it can act) and `propose(state, targets, temperature) -> raw
weights`, registered by name in `STRATEGIES`. The formulas are plain NumPy
so the tests check them against independent references and the callback
stays thin.
"""

from __future__ import annotations

import numpy as np


def magnitude_weights(ema: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Weights inversely proportional to each smoothed loss magnitude.

    `w_i = targets_i / ema_i`, so `w_i * ema_i` is proportional to
    `targets_i`: with equal targets every component contributes equally.
    Normalisation is applied afterwards by the callback.
    """
    return targets / np.maximum(ema, 1e-12)


def dwa_weights(last: np.ndarray, before: np.ndarray, temperature: float):
    """Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019).

    `r_i = L_i(t-1) / L_i(t-2)`, `w_i = K exp(r_i / T) / sum_j exp(r_j / T)`:
    a component whose loss falls more slowly gets more weight.
    """
    ratio = last / np.maximum(before, 1e-12)
    logits = ratio / temperature
    logits = logits - logits.max()  # numerically stable softmax
    exp = np.exp(logits)
    return len(last) * exp / exp.sum()


class Magnitude:
    """Weights ~ 1 / EMA(loss_i): equal (or target) contributions."""

    needs_history = 1

    def propose(self, state, targets, temperature):
        return magnitude_weights(state["ema"], targets)


class DWA:
    """Dynamic Weight Average (Liu et al. 2019), temperature T."""

    needs_history = 2

    def propose(self, state, targets, temperature):
        return dwa_weights(state["last"], state["before"], temperature)


class Schedule:
    """Weights given per epoch (or per PhaseLR phase), set at epoch start."""

    needs_history = 0

    def propose(self, state, targets, temperature):
        return None  # handled in on_epoch_begin


class Fixed:
    """Constant weights: a baseline, or logging only."""

    needs_history = 0

    def propose(self, state, targets, temperature):
        return None


STRATEGIES = {
    "magnitude": Magnitude,
    "dwa": DWA,
    "schedule": Schedule,
    "fixed": Fixed,
}
