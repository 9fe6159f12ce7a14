"""A model to serve: the same predictions, loadable by plain Keras.

`normalize_heads` and `stable_heads` give sigmoid and softmax heads this
package's activations (registered Keras objects), so a model saved after
training loads only where `keras_multiphase` is imported. Their forward
value is Keras's own sigmoid or softmax kept `2 * epsilon` inside (0, 1);
only the gradient differs. `for_inference(model)` swaps them back for
Keras's own and drops everything that belongs to training (the compiled
loss, the optimizer and its state): what is left is Keras layers only.
"""

from __future__ import annotations

import keras

_PLAIN = {
    "keras_multiphase>stable_sigmoid": "sigmoid",
    "keras_multiphase>stable_softmax": "softmax",
}
_OURS = "keras_multiphase>"


def for_inference(model: keras.Model) -> keras.Model:
    """A copy of `model` that loads and predicts without this package.

    Returns a new, uncompiled model with the same architecture and weights
    in which `stable_heads`' activations (set by `stable_heads` and
    `normalize_heads`) are Keras's own `"sigmoid"` and `"softmax"`: the
    predictions differ by at most `2 * keras.config.epsilon()` (the margin
    the stable activations keep from 0 and 1). Every other layer these
    helpers add (`BatchNormalization`, `Normalization`, `Dense`, `Add`,
    `Rescaling`) is a Keras layer already. Save the result with
    `model.save(...)`; `keras.models.load_model` then needs no
    `import keras_multiphase`. Keep training the original model: the copy
    has no optimizer.

    Example:

    >>> import numpy as np
    >>> inputs = keras.Input((3,))
    >>> h = keras.layers.Dense(8, "relu")(inputs)
    >>> model = keras.Model(inputs, {
    ...     "price": keras.layers.Dense(1, name="price")(h),
    ...     "label": keras.layers.Dense(4, "softmax", name="label")(h)})
    >>> model = normalize_heads(model, primary="price")
    >>> served = for_inference(model)
    >>> served.get_layer("label").activation.__name__
    'softmax'
    >>> x = np.random.rand(5, 3).astype("float32")
    >>> bool(np.allclose(served.predict(x, verbose=0)["label"],
    ...                  model.predict(x, verbose=0)["label"], atol=1e-6))
    True

    Args:
        model: A functional or Sequential `keras.Model` (nested models
            included), built.

    Returns:
        A new `keras.Model` made of Keras objects only, with `model`'s
        weights.

    Raises:
        ValueError: if `model` is not a built functional or Sequential
            model, or holds another object of this package that has no
            Keras equivalent.
    """
    if not isinstance(model, keras.Model) or not model.built:
        raise ValueError(
            "Argument `model` must be a built functional or Sequential "
            f"keras.Model. Received: model={model!r}"
        )
    config = _plain(keras.saving.serialize_keras_object(model), path="model")
    config.pop("compile_config", None)
    try:
        served = keras.saving.deserialize_keras_object(config)
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise ValueError(
            "Argument `model` must be a functional or Sequential keras.Model "
            f"that Keras can rebuild from its config; {type(model).__name__} "
            f"could not be ({type(exc).__name__}: {str(exc)[:200]}). Build "
            "the model with the functional API to serve it without this "
            "package."
        ) from None
    served.set_weights(model.get_weights())
    return served


def _plain(value, path: str):
    """`value` (a serialized Keras object) with this package's activations
    replaced by Keras's own names."""
    if isinstance(value, dict):
        name = value.get("config") if value.get("class_name") == "function" else None
        if isinstance(name, str) and name in _PLAIN:
            return _PLAIN[name]
        return {k: _plain(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith(_OURS):
        raise ValueError(
            f"Argument `model` holds {value!r} at {path}, an object of "
            "keras_multiphase with no Keras equivalent for for_inference to "
            f"use. Known: {sorted(_PLAIN)}."
        )
    return value
