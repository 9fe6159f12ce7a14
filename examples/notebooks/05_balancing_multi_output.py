# %% [markdown]
# # Balancing the losses of a multi-output model
#
# One head's loss is ~100x the others', so it dominates the shared layers.
# `LossWeightBalancer` re-weights the components during `fit` (the weights
# are variables the compiled step reads, on every backend). The total loss
# Keras reports is then the weighted sum: compare the components.

# %%
import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # or "tensorflow", "torch"
SMALL = os.environ.get("KERAS_MULTIPHASE_SMALL") == "1"  # the test suite's quick run

import keras
import numpy as np

import keras_multiphase as km

# %%
samples = 512 if SMALL else 4096
rng = np.random.default_rng(0)
x = rng.normal(size=(samples, 12)).astype("float32")
y = {
    "threshold": (70 + 8 * x[:, :3].sum(1, keepdims=True)).astype("float32"),
    "cls": (x[:, 3:4] * x[:, 4:5] > 0).astype("float32"),
    "aux": np.sin(x[:, 5:6] * 2).astype("float32"),
}


def make_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,))
    h = keras.layers.Dense(64, activation="relu")(inputs)
    h = keras.layers.Dense(64, activation="relu")(h)
    model = keras.Model(
        inputs,
        {
            "threshold": keras.layers.Dense(1, name="threshold")(h),
            "cls": keras.layers.Dense(1, activation="sigmoid", name="cls")(h),
            "aux": keras.layers.Dense(1, name="aux")(h),
        },
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={"threshold": "mse", "cls": "binary_crossentropy", "aux": "mse"},
    )
    return model


epochs = 4 if SMALL else 12

# %% [markdown]
# Strategies: `magnitude` (equal contributions), `dwa` (Dynamic Weight
# Average), `schedule` (by epoch or PhaseLR phase), `fixed`. A warmup lets
# the dominant head fit its scale before it is down-weighted.

# %%
plain = make_model().fit(x, y, batch_size=64, epochs=epochs, verbose=0)
balancer = km.LossWeightBalancer("magnitude", warmup_epochs=2)
balanced = make_model().fit(
    x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=[balancer]
)
for name in ("threshold", "cls", "aux"):
    print(
        f"{name:<10} plain {plain.history[f'{name}_loss'][-1]:9.4f}   "
        f"balanced {balanced.history[f'{name}_loss'][-1]:9.4f}   "
        f"final weight {balanced.history[f'{name}_loss_weight'][-1]:.4f}"
    )

# %% [markdown]
# The reported total is the weighted sum of the components, with the
# weights in effect (logged as `<output>_loss_weight`):

# %%
h = balanced.history
last = {
    name: h[f"{name}_loss"][-1] * h[f"{name}_loss_weight"][-1]
    for name in ("threshold", "cls", "aux")
}
print(f"weighted sum {sum(last.values()):.4f} vs reported loss {h['loss'][-1]:.4f}")

# %% [markdown]
# ## A classifier that never learns: saturation
#
# With raw, unnormalised inputs a classifier's probabilities start at 0 or
# 1. Keras computes crossentropy on clipped probabilities, and on JAX and
# PyTorch the clip has no gradient: a saturated head does not learn until
# the shared layers, moved by the other heads, happen to bring it back
# (TensorFlow differentiates the logits behind the sigmoid instead). No
# loss weight helps a gradient of 0. `km.stable_heads(model)` gives every
# backend TensorFlow's gradient, with the same predictions. (On JAX, full
# size: cls loss 6.75 -> 1.90 without it, 6.42 -> 1.34 with it.)

# %%
raw = (x * 100 + 500).astype("float32")  # inputs on a raw scale


def saturated(model):
    p = model.predict(raw[:256], verbose=0)["cls"]
    return float(np.mean((p < 1e-6) | (p > 1 - 1e-6)))


for stable in (False, True):
    model = make_model()
    if stable:
        km.stable_heads(model)
    before = saturated(model)
    cls_loss = model.fit(raw, y, batch_size=64, epochs=epochs, verbose=0).history[
        "cls_loss"
    ]
    print(
        f"stable_heads: {stable!s:<5}  saturated {before:.0%} -> "
        f"{saturated(model):.0%}  cls loss {cls_loss[0]:.2f} -> {cls_loss[-1]:.2f}"
    )

# %% [markdown]
# ## Small heads beside a dominant one: `normalize_heads`
#
# A gradient is not enough when the shared layers serve the dominant head:
# on raw inputs their features are hundreds of units wide, and a small head
# reading them moves its output by more than its whole range at each step.
# `km.normalize_heads(model, y)` (before compiling) gives each small head
# its own `BatchNormalization` and `stable_heads`' activations; the dominant
# head, found from the targets' scale, is left as it is. With `x=`, each
# small head also gets its own path from the standardised inputs (a hidden
# ReLU layer and a map that starts at zero). (On JAX, full size: threshold
# loss 14.4 -> 13.7 with either; `cls`, whose label is a product of two
# inputs the trunk must learn first, 0.51 -> 0.56 with the normalisation
# and 0.97 with the path from the inputs; `aux` loss 2.93 -> 0.43 and 0.42.)

# %%
losses = {"threshold": "mse", "cls": "binary_crossentropy", "aux": "mse"}
for name in ("stable_heads", "normalize_heads", "normalize_heads(x=)"):
    model = make_model()
    if name == "stable_heads":
        km.stable_heads(model)
    elif name == "normalize_heads":
        model = km.normalize_heads(model, y)
    else:  # and a shortcut from the standardised inputs
        model = km.normalize_heads(model, y, x=raw)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=losses,
        metrics={"cls": ["accuracy"]},
    )
    h = model.fit(raw, y, batch_size=64, epochs=epochs, verbose=0).history
    print(
        f"{name:<20} threshold loss {h['threshold_loss'][-1]:7.2f}   "
        f"cls accuracy {h['cls_accuracy'][-1]:.2f}   aux loss {h['aux_loss'][-1]:.3f}"
    )
