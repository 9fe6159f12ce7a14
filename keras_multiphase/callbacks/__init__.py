"""Keras callbacks of keras-multiphase."""

from keras_multiphase.callbacks.adaptive_batch import AdaptiveBatch
from keras_multiphase.callbacks.layer_rates import LayerRates
from keras_multiphase.callbacks.loss_weight_balancer import LossWeightBalancer
from keras_multiphase.callbacks.monitor import (
    TrainingDynamicsMonitor,
    TrainingDynamicsWarning,
)
from keras_multiphase.callbacks.one_cycle import OneCycle
from keras_multiphase.callbacks.phase_lr import PhaseLR
from keras_multiphase.callbacks.plateau_lr import PlateauLR
from keras_multiphase.callbacks.warmup_cosine_restarts import (
    WarmupCosineRestarts,
)

__all__ = [
    "AdaptiveBatch",
    "LayerRates",
    "LossWeightBalancer",
    "OneCycle",
    "PhaseLR",
    "PlateauLR",
    "TrainingDynamicsMonitor",
    "TrainingDynamicsWarning",
    "WarmupCosineRestarts",
]
