"""LayerRates: per-layer multipliers of the learning rate in effect."""

from __future__ import annotations

from collections.abc import Mapping

import keras

from keras_multiphase import _keras_internals
from keras_multiphase._distribution import check_supported
from keras_multiphase._state import state_store, unwrap_optimizer
from keras_multiphase._validation import check_ratio
from keras_multiphase.callbacks.epoch_callback import EpochCallback
from keras_multiphase.layer_groups import check_rates, multiplier_groups


@keras.saving.register_keras_serializable(package="keras_multiphase")
class LayerRates(EpochCallback):
    """Per-layer learning rates: each layer's multiplier of the rate in effect.

    Each group of variables is updated at the rate in effect (the
    optimizer's own, or the one PhaseLR, OneCycle, PlateauLR and the rest
    compose) times its multiplier, inside the compiled step: a rate, not a
    gradient scale, so Adam, AdamW, SGD and the others all honour it (Adam
    would divide a gradient scale out). A multiplier of 0 freezes a layer
    without recompiling: it does not move, and AdamW's decoupled weight
    decay, which follows the rate as in optax and timm parameter groups,
    leaves it alone too. Its optimizer moments still see its gradients.

    Keys of `rates` are layers or glob patterns matched against the names
    and paths of the layers a variable belongs to (`"trunk"`, `"block_*"`,
    `"trunk/dense_1"`); a later key wins. `layer_decay` (timm's) multiplies
    the top-level layers with weights by `layer_decay ** k`, k counted
    from the last one (the head, 1.0) back to the first; it multiplies
    `rates` too. Layers nothing matches keep the rate.

    The multipliers are fixed when `fit` starts (the model's layers are
    matched once, at `set_model`); they are state the step reads, kept
    with the optimizer like the other callbacks' state.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> import keras_multiphase as km
    >>> model = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(8, name="trunk"),
    ...     keras.layers.Dense(1, name="head"),
    ... ])
    >>> model.compile(keras.optimizers.AdamW(1e-3), "mse")
    >>> rates = km.LayerRates({"trunk": 0.1})
    >>> x = np.zeros((8, 4), "float32")
    >>> _ = model.fit(x, x[:, :1], epochs=1, verbose=0, callbacks=[rates])
    >>> sorted({p.split("/")[-2]: m for p, m in rates.multipliers.items()}.items())
    [('head', 1.0), ('trunk', 0.1)]

    Args:
        rates: Optional mapping of a layer or a glob pattern to a multiplier
            (a number >= 0; 0 freezes).
        layer_decay: Optional float in (0, 1]: the multiplier falls by this
            factor per top-level layer from the output.
    """

    def __init__(
        self,
        rates: Mapping | None = None,
        layer_decay: float | None = None,
    ):
        super().__init__()
        self.rates = check_rates("rates", {} if rates is None else rates, True)
        if layer_decay is not None:
            layer_decay = check_ratio("layer_decay", layer_decay)
            if layer_decay <= 0:
                raise ValueError(
                    "Argument `layer_decay` must be in (0, 1]. "
                    f"Received: layer_decay={layer_decay!r}"
                )
        if not self.rates and layer_decay is None:
            raise ValueError(
                "LayerRates needs `rates` or `layer_decay`. Received neither."
            )
        self.layer_decay = layer_decay
        self._optimizer = None
        self._variable = None
        self._names: list[list[str]] = []  # each group's variable paths
        self._values: list[float] = []  # each group's multiplier

    @property
    def multipliers(self) -> dict[str, float]:
        """Each variable's multiplier, by path (empty before `fit`)."""
        values = self._values
        return {
            name: values[g] for g, names in enumerate(self._names) for name in names
        }

    def set_model(self, model):
        super().set_model(model)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None or not model.built:
            return
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self._install(model, optimizer)

    def _install(self, model, optimizer) -> None:
        group_of, multipliers, self._names = multiplier_groups(
            model, self.rates, self.layer_decay
        )
        self._values = multipliers
        store = state_store(optimizer)
        key = store.claim_key("LayerRates", self, _keras_internals.fit_starts_a_run())
        # Created with the optimizer's other state at `set_model` (Keras <
        # 3.10 on JAX records the step's state before `on_train_begin`), and
        # read by the step: tracked.
        self._variable = store.variable(f"{key}.multipliers", multipliers, in_step=True)
        self._variable.assign(multipliers)
        self._optimizer = unwrap_optimizer(optimizer)
        self._key = key
        _keras_internals.scale_variable_updates(
            self._optimizer, key, group_of, self._variable
        )
        _keras_internals.run_at_fit_exit(model, id(self), self._end_of_fit)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        check_supported("LayerRates")
        if self._optimizer is None:
            raise ValueError(
                "LayerRates needs a built model compiled with an optimizer "
                "when `fit` starts."
            )
        # The step traced from here on reads the multipliers.
        self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        _keras_internals.cancel_at_fit_exit(
            _keras_internals.callback_model(self), id(self)
        )
        self._end_of_fit()

    def _end_of_fit(self) -> None:
        if self._optimizer is None:
            return
        _keras_internals.unscale_variable_updates(self._optimizer, self._key)
        _keras_internals.forget_train_function(_keras_internals.callback_model(self))
        state_store(self._optimizer).release(self)
        self._optimizer = None

    def get_config(self) -> dict:
        return {
            "rates": {
                (k if isinstance(k, str) else k.name): v for k, v in self.rates.items()
            },
            "layer_decay": self.layer_decay,
        }
