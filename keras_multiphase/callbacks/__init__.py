"""Keras callbacks of keras-multiphase."""

from keras_multiphase.callbacks.phase_lr import PhaseLR
from keras_multiphase.callbacks.plateau_lr import PlateauLR
from keras_multiphase.callbacks.warmup_cosine_restarts import (
    WarmupCosineRestarts,
)

__all__ = ["PhaseLR", "PlateauLR", "WarmupCosineRestarts"]
