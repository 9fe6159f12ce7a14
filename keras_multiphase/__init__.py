"""keras-multiphase: multi-phase training as Keras 3 callbacks.

```python
model.fit(x, y, epochs=30, callbacks=keras_multiphase.preset("multiphase"))
```
"""

import importlib
import sys

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS = {
    "AdaptiveBatch": "keras_multiphase.callbacks",
    "LayerRates": "keras_multiphase.callbacks",
    "LossWeightBalancer": "keras_multiphase.callbacks",
    "OneCycle": "keras_multiphase.callbacks",
    "PhaseLR": "keras_multiphase.callbacks",
    "PlateauLR": "keras_multiphase.callbacks",
    "TrainingDynamicsMonitor": "keras_multiphase.callbacks",
    "TrainingDynamicsWarning": "keras_multiphase.callbacks",
    "WarmupCosineRestarts": "keras_multiphase.callbacks",
    "DiagnosisReport": "keras_multiphase.diagnosis",
    "diagnose": "keras_multiphase.diagnosis",
    "LRFinderResult": "keras_multiphase.lr_finder",
    "find_lr": "keras_multiphase.lr_finder",
    "for_inference": "keras_multiphase.inference",
    "normalize_heads": "keras_multiphase.head_norm",
    "ScaledOutputs": "keras_multiphase.output_scaling",
    "scale_outputs": "keras_multiphase.output_scaling",
    "PresetError": "keras_multiphase.preset",
    "preset": "keras_multiphase.preset",
    "preset_to_yaml": "keras_multiphase.preset",
    "presets": "keras_multiphase._preset_files",
    "plot_schedule": "keras_multiphase.preview",
    "preview": "keras_multiphase.preview",
    "stable_heads": "keras_multiphase.stable_heads",
    "stable_sigmoid": "keras_multiphase.stable_heads",
    "stable_softmax": "keras_multiphase.stable_heads",
    "PhaseSchedule": "keras_multiphase.schedules",
    "WarmupCosineRestartsSchedule": "keras_multiphase.schedules",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_multiphase' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])


# `import keras_multiphase` loads everything, so the callbacks and schedules
# are registered for Keras deserialization at once. The command line
# (`python -m keras_multiphase`, during whose start-up sys.argv[0] is "-m")
# loads only what its verb needs: listing presets imports no backend.
if sys.argv[:1] != ["-m"]:
    for _name in _EXPORTS:
        __getattr__(_name)
    del _name
