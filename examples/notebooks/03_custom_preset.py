# %% [markdown]
# # A custom YAML preset
#
# A preset is a YAML file: `params` (values referred to as `$name`) and
# `callbacks` (`- ClassName: {constructor arguments}`). Write one, preview
# the schedule it gives without training, train with it, override a value,
# and see the error a typo gives.

# %%
import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # or "tensorflow", "torch"
SMALL = os.environ.get("KERAS_MULTIPHASE_SMALL") == "1"  # the test suite's quick run

import pathlib
import tempfile

import keras
import numpy as np

import keras_multiphase as km

print("shipped presets:", km.presets())

# %%
PRESET = """
# Two phases: 2e-3 with a one-epoch warmup, then 2e-4 with cosine decay.
params:
  high: 2.0e-3
  low: 2.0e-4
callbacks:
  - PhaseLR:
      phases:
        - {name: explore, lr: $high, fraction: 0.5}
        - {name: settle, lr: $low}
  - WarmupCosineRestarts:
      warmup_epochs: 1
      min_ratio: 1.0
      phases: [explore]
  - WarmupCosineRestarts:
      first_cycle_epochs: 100
      min_ratio: 0.1
      max_cycles: 1
      phases: [settle]
  - PlateauLR:
      monitor: loss
      patience: 2
"""
path = pathlib.Path(tempfile.mkdtemp()) / "two_phase.yaml"
path.write_text(PRESET)

# %% [markdown]
# The rate at every step, computed by the same functions the train step uses:

# %%
epochs, steps = (4, 8) if SMALL else (10, 32)
table = km.preview(str(path), epochs=epochs, steps_per_epoch=steps)
rates = table["learning_rate"]
for epoch in range(epochs):
    first, last = rates[epoch * steps], rates[(epoch + 1) * steps - 1]
    print(f"epoch {epoch}: lr {first:.2e} -> {last:.2e}")

# %%
# The same table as a plot (matplotlib: pip install "keras-multiphase[plot]").
figure = km.plot_schedule(table, title="two_phase.yaml")

# %% [markdown]
# Train with it. The preview is exactly what training applies.

# %%
keras.utils.set_random_seed(0)
x = np.random.default_rng(0).normal(size=(steps * 32, 8)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential(
    [
        keras.Input((8,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(1),
    ]
)
model.compile(optimizer="adam", loss="mse")
history = model.fit(
    x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=km.preset(str(path))
)
print("logged rates:", [f"{r:.2e}" for r in history.history["learning_rate"]])
print("preview     :", [f"{rates[e * steps]:.2e}" for e in range(epochs)])

# %% [markdown]
# Overrides: a top-level parameter by keyword, a nested value by dotted
# path. `preset_to_yaml` writes callbacks back to this form.

# %%
callbacks = km.preset(str(path), high=1e-3, **{"PlateauLR.patience": 4})
print(km.preset_to_yaml(callbacks))

# %% [markdown]
# A typo is an error that names the file, the line, the key and the
# allowed values (a `PresetError`, which is a `ValueError`).

# %%
path.write_text(PRESET.replace("patience: 2", "patiense: 2"))
try:
    km.preset(str(path))
except km.PresetError as error:
    print(error)
