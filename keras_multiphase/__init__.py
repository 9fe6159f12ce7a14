"""keras-multiphase: multi-phase training as Keras 3 callbacks.

```python
model.fit(x, y, epochs=30, callbacks=[PhaseLR([...]), PlateauLR()])
```
"""

from keras_multiphase.callbacks import (
    AdaptiveBatch,
    LossWeightBalancer,
    PhaseLR,
    PlateauLR,
    WarmupCosineRestarts,
)
from keras_multiphase.schedules import (
    PhaseSchedule,
    WarmupCosineRestartsSchedule,
)

__version__ = "0.1.0"

__all__ = [
    "AdaptiveBatch",
    "LossWeightBalancer",
    "PhaseLR",
    "PhaseSchedule",
    "PlateauLR",
    "WarmupCosineRestarts",
    "WarmupCosineRestartsSchedule",
]
