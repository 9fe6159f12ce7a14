# %% [markdown]
# # AdaptiveBatch with a `tf.data` rebuilder
#
# The batch size changes during one `fit`: large for stability, then
# smaller for precision. `rebuild(batch_size)` returns the dataset for a
# batch size; here it is a `tf.data` pipeline (it works on every backend:
# TensorFlow is only the input pipeline). Every sample is used exactly once
# per epoch, whatever the batch size.

# %%
import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # or "tensorflow", "torch"
SMALL = os.environ.get("KERAS_MULTIPHASE_SMALL") == "1"  # the test suite's quick run

import keras
import numpy as np
import tensorflow as tf

import keras_multiphase as km

# %%
samples = 512 if SMALL else 8192
rng = np.random.default_rng(0)
x = rng.normal(size=(samples, 8)).astype("float32")
y = (x @ rng.normal(size=(8, 1))).astype("float32")


def rebuild(batch_size):
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    return dataset.shuffle(samples, seed=0).batch(batch_size).prefetch(2)


adaptive = km.AdaptiveBatch(
    rebuild,
    schedule={0.0: 128, 0.5: 64, 0.75: 32},  # fractions of the run -> batch size
    lr_scaling="sqrt",  # rate scaled by sqrt(batch / first batch)
)

# %% [markdown]
# Train on `adaptive.data` (not on the dataset itself): it serves the
# current batch size and tells `fit` how many batches each epoch has.

# %%
epochs = 4 if SMALL else 8


class CountSteps(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        batch = int(logs["batch_size"])
        print(
            f"epoch {epoch}: batch {batch}, lr {logs['learning_rate']:.2e}, "
            f"loss {logs['loss']:.4f}, {self.steps} steps "
            f"(= ceil({samples} / {batch}) = {-(-samples // batch)})"
        )


keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
history = model.fit(
    adaptive.data, epochs=epochs, verbose=0, callbacks=[adaptive, CountSteps()]
)
print("batch sizes:", history.history["batch_size"])

# %% [markdown]
# The same with a preset: `preset("multiphase", rebuild=rebuild)` turns on
# its 64 -> 32 -> 16 batch schedule.

# %%
callbacks = km.preset("multiphase", rebuild=rebuild)
adaptive = next(c for c in callbacks if isinstance(c, km.AdaptiveBatch))
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
history = model.fit(adaptive.data, epochs=epochs, verbose=0, callbacks=callbacks)
print("batch sizes:", history.history["batch_size"])
