# %% [markdown]
# # Fine-tune a pretrained trunk: `preset("fine_tune")`
#
# fastai's `fine_tune` in one Keras `fit`: the new head trains alone while
# the pretrained trunk is frozen (the first 5% of the run), then the trunk
# unfreezes and the whole model follows the multiphase shape. Freezing is a
# multiplier of 0 in the optimizer's update (no recompile), and each layer
# group's rate is logged. Runs on a CPU in about a minute.

# %%
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")  # or "tensorflow", "torch"
SMALL = os.environ.get("KERAS_MULTIPHASE_SMALL") == "1"  # the test suite's quick run

import keras
import numpy as np

import keras_multiphase as km

print("backend:", keras.backend.backend())

# %% [markdown]
# A backbone pretrained on an upstream task: here a small functional model
# (as every `keras.applications` model and most keras-hub backbones are)
# trained on one set of targets, then reused under a new head for another.

# %%
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n = 512 if SMALL else 4096
x = rng.normal(size=(n, 16)).astype("float32")
upstream = np.tanh(x[:, :8] @ rng.normal(size=(8, 4))).astype("float32")
target = (upstream[:, :1] * 3 + upstream[:, 1:2] ** 2).astype("float32")

features = keras.Input((16,))
h = keras.layers.Dense(64, activation="relu", name="block_1")(features)
h = keras.layers.Dense(64, activation="relu", name="block_2")(h)
backbone = keras.Model(features, h, name="backbone")
pretrain = keras.Sequential([backbone, keras.layers.Dense(4)])
pretrain.compile(keras.optimizers.Adam(1e-3), "mse")
pretrain.fit(x, upstream, epochs=2 if SMALL else 8, batch_size=64, verbose=0)

inputs = keras.Input((16,))
model = keras.Model(inputs, keras.layers.Dense(1, name="head")(backbone(inputs)))
model.compile(keras.optimizers.AdamW(1e-3), "mse")

# %% [markdown]
# The one line. `trunk` defaults to `"auto"`: the nested model with weights
# (here `backbone`); give names, glob patterns or the layer itself to choose
# others, e.g. `preset("fine_tune", trunk="backbone")`, `trunk=["block_*"]`
# (the backbone's own layers) or `trunk=backbone`.

# %%
epochs = 10
log_dir = os.path.join(tempfile.mkdtemp(), "fine_tune")  # or "logs/fine_tune"
history = model.fit(
    x,
    target,
    epochs=epochs,
    batch_size=64,
    verbose=0,
    callbacks=km.preset("fine_tune", log_dir=log_dir),
)
logs = history.history
for epoch in range(epochs):
    print(
        f"epoch {epoch}  phase {logs['phase'][epoch]:.0f}  "
        f"rate {logs['learning_rate'][epoch]:.2e}  loss {logs['loss'][epoch]:.4f}"
    )

# %% [markdown]
# Each group's rate per step is in the TensorBoard logs
# (`step/learning_rate/backbone`, `step/learning_rate/head`): 0 for the
# backbone while it is frozen, the head's rate afterwards
# (`trunk_ratio=0.1` would give it a tenth: fastai's discriminative rates,
# which measured worse on our problems). The same per-layer rates are
# available on their own: `km.LayerRates({"backbone": 0.1})`, or
# `km.LayerRates(layer_decay=0.75)` for timm's layer decay.

# %%
rates = km.LayerRates({"backbone": 0.1})
model.fit(x, target, epochs=1, batch_size=64, verbose=0, callbacks=[rates])
print(rates.multipliers)
