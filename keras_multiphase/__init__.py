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
    TrainingDynamicsMonitor,
    TrainingDynamicsWarning,
    WarmupCosineRestarts,
)
from keras_multiphase.diagnosis import DiagnosisReport, diagnose
from keras_multiphase.lr_finder import LRFinderResult, find_lr
from keras_multiphase.output_scaling import ScaledOutputs, scale_outputs
from keras_multiphase.preset import PresetError, preset, preset_to_yaml, presets
from keras_multiphase.preview import plot_schedule, preview
from keras_multiphase.schedules import (
    PhaseSchedule,
    WarmupCosineRestartsSchedule,
)

__version__ = "0.1.0"

__all__ = [
    "AdaptiveBatch",
    "DiagnosisReport",
    "LRFinderResult",
    "LossWeightBalancer",
    "PhaseLR",
    "PhaseSchedule",
    "PresetError",
    "PlateauLR",
    "ScaledOutputs",
    "TrainingDynamicsMonitor",
    "TrainingDynamicsWarning",
    "WarmupCosineRestarts",
    "WarmupCosineRestartsSchedule",
    "diagnose",
    "find_lr",
    "preset",
    "preset_to_yaml",
    "presets",
    "scale_outputs",
    "preview",
    "plot_schedule",
]
