"""Learning-rate schedules: pure functions of the step, in `keras.ops`."""

from keras_multiphase.schedules.phase_schedule import PhaseSchedule
from keras_multiphase.schedules.warmup_cosine_restarts_schedule import (
    WarmupCosineRestartsSchedule,
)

__all__ = ["PhaseSchedule", "WarmupCosineRestartsSchedule"]
