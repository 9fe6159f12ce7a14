"""The loss weights the compiled step multiplies, as variables of a metric."""

from __future__ import annotations

import keras
import numpy as np

from keras_multiphase import _keras_internals


class LossWeights(keras.metrics.Metric):
    """Holds the loss weights the compiled step multiplies by.

    A metric of the model's compiled loss: JAX passes metric variables into
    the traced loss computation (an untracked variable would be frozen
    there), `reset_metrics()` leaves them alone, and checkpoints do not
    contain them, so weights files load into models built without this
    package. The values survive resumes through the optimizer's state store.
    """

    def __init__(self, names, initial, **kwargs):
        super().__init__(name="keras_multiphase_loss_weights", **kwargs)
        self.names = list(names)
        self.initial = np.asarray(initial, "float64")  # from compile()
        self.weights_vars = [
            self._weight_variable(f"{name}_loss_weight", float(w))
            for name, w in zip(names, initial, strict=True)
        ]

    def _weight_variable(self, name: str, value: float):
        # Not `add_variable`: metric variables are sync-on-read with SUM
        # aggregation, so under tf.distribute a callback's assign would be
        # split between the replicas (each would read value / replicas).
        # Written once from the callback, read by every replica: on-write,
        # no aggregation.
        with keras.name_scope(self.name.replace("/", ">"), caller=self):
            variable = _keras_internals.variable(
                initializer=keras.initializers.Constant(value),
                shape=(),
                dtype=self.dtype,
                trainable=False,
                aggregation="none",
                synchronization="on_write",
                name=name,
            )
        _keras_internals.track_metric_variable(self, variable)
        return variable

    def update_state(self, *args, **kwargs):
        pass

    def reset_state(self):
        pass

    def result(self):
        return {}

    def step_series(self, count: int) -> dict:
        """The weights the epoch's `count` steps multiplied (set when the
        epoch began), for the per-step logs."""
        return {
            f"loss_weight/{name}": np.full(count, float(var.numpy()), "float32")
            for name, var in zip(self.names, self.weights_vars, strict=True)
        }
