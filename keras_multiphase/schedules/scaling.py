"""The contributions of PlateauLR (a reduction with a floor) and of
AdaptiveBatch (the batch size's rate factor and the epoch -> step map)."""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_multiphase.engine.plan import FACTOR, FLOOR, Plan
from keras_multiphase.schedules.numpy_ops import value_of


class ReductionFloor:
    """The composed rate times PlateauLR's `reduction` (a state variable),
    never below `min_lr` (nor raised to it)."""

    role = FLOOR

    def __init__(self, min_lr: float):
        self.min_lr = min_lr
        self.reduction = None  # state variable, set by PlateauLR

    def resolve(self, plan: Plan) -> None:
        pass

    def check(self, plan: Plan) -> None:
        pass

    def signature(self):
        return (self.min_lr,)

    def floor(self, step, rate, xp=ops):
        floor = xp.minimum(rate, self.min_lr)
        return xp.maximum(rate * value_of(self.reduction, xp), floor)


class BatchScale:
    """The rate factor of the current batch size (`scale`, a state variable
    AdaptiveBatch sets when an epoch begins). It also carries AdaptiveBatch's
    data for the plan: `epoch_map` (None when epochs keep their length) and
    `longest`, the steps of the longest epoch, which sizes the rate table,
    and the epoch's batch size for the per-step logs."""

    role = FACTOR
    maps_epochs = True

    def __init__(self):
        self.scale = None  # state variable, set by AdaptiveBatch
        self.batch_size: int | None = None  # the epoch's, set by AdaptiveBatch
        self.epoch_map = None
        self.longest: int | None = None

    def step_series(self, count: int) -> dict:
        """The batch size of the epoch's `count` steps, for the per-step
        logs (it changes only when an epoch begins)."""
        if self.batch_size is None:
            return {}
        return {"batch_size": np.full(count, self.batch_size, "float32")}

    def resolve(self, plan: Plan) -> None:
        pass  # its contribution, the epoch map, is in the plan

    def check(self, plan: Plan) -> None:
        pass

    def signature(self):
        return ("adaptive_batch",)

    def factor(self, step, base, xp=ops):
        return xp.zeros_like(step) + value_of(self.scale, xp)
