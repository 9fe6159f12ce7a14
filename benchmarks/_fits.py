"""What the benchmark scripts share: the model they fit and the timer."""

import time

import keras
import numpy as np


def mlp(inputs, hidden, heads, y):
    """A functional MLP with `heads` outputs of one unit, its loss and its
    targets: one head takes `y`; more take a dict of outputs, one `mse`
    each (as multi-output users compile), and `y` rolled by one per head."""
    x = keras.Input((inputs,))
    h = x
    for width in hidden:
        h = keras.layers.Dense(width, activation="relu")(h)
    names = [f"head_{i}" for i in range(heads)]
    outputs = {n: keras.layers.Dense(1, name=n)(h) for n in names}
    if heads == 1:
        return keras.Model(x, outputs[names[0]]), "mse", y
    targets = {n: np.roll(y, i) for i, n in enumerate(names)}
    return keras.Model(x, outputs), dict.fromkeys(names, "mse"), targets


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch, its hooks included."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)
