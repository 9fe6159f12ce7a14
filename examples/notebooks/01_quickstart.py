# %% [markdown]
# # keras-multiphase quickstart: `preset("multiphase")` in one line
#
# A small two-head model trained with the package's recipe: a peak rate
# found by a learning-rate range test, a controlled start at peak / 5 with
# warmup (10% of the run), an aggressive middle at the peak (80%),
# fine-tuning at peak / 50 with plateau reduction; loss weights are logged.
# Runs on a CPU in about a minute.

# %%
import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # or "tensorflow", "torch"
SMALL = os.environ.get("KERAS_MULTIPHASE_SMALL") == "1"  # the test suite's quick run

import keras
import numpy as np

import keras_multiphase as km

print("backend:", keras.backend.backend())

# %% [markdown]
# Synthetic data: a regression target of order 70 and a binary label.

# %%
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
n = 512 if SMALL else 4096
x = rng.normal(size=(n, 16)).astype("float32")
y = {
    "threshold": (70 + 3 * x[:, :4].sum(1, keepdims=True)).astype("float32"),
    "cls": (x[:, 4:5] + x[:, 5:6] > 0).astype("float32"),
}

inputs = keras.Input((16,))
hidden = keras.layers.Dense(64, activation="relu")(inputs)
model = keras.Model(
    inputs,
    {
        "threshold": keras.layers.Dense(1, name="threshold")(hidden),
        "cls": keras.layers.Dense(1, activation="sigmoid", name="cls")(hidden),
    },
)
model.compile(
    optimizer=keras.optimizers.AdamW(1e-3),
    loss={"threshold": "mse", "cls": "binary_crossentropy"},
)

# %% [markdown]
# The one line: `callbacks=km.preset("multiphase")`. The optimizer's own
# rate is replaced by the recipe while `fit` runs.

# %%
epochs = 10 if SMALL else 30
history = model.fit(
    x,
    y,
    epochs=epochs,
    batch_size=64,
    verbose=0,
    callbacks=km.preset("multiphase"),
)
logs = history.history
for epoch in range(epochs):
    print(
        f"epoch {epoch:2d}  phase {logs['phase'][epoch]:.0f}  "
        f"lr {logs['learning_rate'][epoch]:.2e}  loss {logs['loss'][epoch]:9.2f}  "
        f"weights {logs['threshold_loss_weight'][epoch]:.3g} / "
        f"{logs['cls_loss_weight'][epoch]:.3g}"
    )

# %% [markdown]
# The peak rate came from a learning-rate range test run when training
# started (the model was left as it was), and is logged as `peak_lr`. The
# rates really used follow the recipe's shape: at most peak / 5 at the
# start, the peak in the middle, at most peak / 50 at the end.
# `km.preset("multiphase", peak_lr=5e-5)` gives the documented absolute
# recipe, 1e-5 / 5e-5 / 1e-6.

# %%
rates, peak = logs["learning_rate"], logs["peak_lr"][0]
assert rates[0] <= peak / 5 and max(rates) <= peak * (1 + 1e-6)
assert rates[-1] <= peak / 50 * (1 + 1e-6)
print(
    f"peak {peak:.2e}: first {rates[0]:.2e}, max {max(rates):.2e}, last {rates[-1]:.2e}"
)

# %% [markdown]
# The range test by itself: `find_lr` sweeps the rate and suggests one.

# %%
result = km.find_lr(model, x, y, batch_size=64, verbose=0)
print(result)

# %% [markdown]
# The whole schedule, before training (what the compiled step will apply):

# %%
table = km.preview("multiphase", epochs=epochs, steps_per_epoch=n // 64, base_lr=peak)
print(table["learning_rate"][:: max(1, len(table["learning_rate"]) // 8)])
