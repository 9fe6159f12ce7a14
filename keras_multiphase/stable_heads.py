"""Classifier heads that keep learning when their probabilities saturate.

Keras computes crossentropy on probabilities clipped to `[epsilon, 1 -
epsilon]`. On TensorFlow it finds the logits behind a sigmoid or softmax
output and differentiates the logit loss instead; on JAX and PyTorch it
does not, so a head whose probabilities reach 0 or 1 gets a gradient of
exactly 0 and never moves. Raw, unnormalised inputs (the case where one
regression target dominates) saturate classifier heads from the first step.

`stable_heads(model)` swaps each sigmoid or softmax output's activation for
one with the same forward value, kept `2 * epsilon` inside (0, 1), whose
derivative is the probability's own Jacobian evaluated at that value, never
0. Under Keras's probability crossentropy the head then gets the logit
loss's gradient, `p - y`, on every backend: what TensorFlow already does.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_multiphase import _keras_internals

_PACKAGE = "keras_multiphase"


def _margin():
    return 2.0 * keras.config.epsilon()


@keras.saving.register_keras_serializable(_PACKAGE, "stable_sigmoid")
def stable_sigmoid(x):
    """`sigmoid(x)` kept `2 * epsilon` inside (0, 1), whose derivative is
    `p * (1 - p)` at that value: never 0.

    Example:

    >>> float(stable_sigmoid(keras.ops.convert_to_tensor([0.0]))[0])
    0.5
    """
    m = _margin()
    p = ops.stop_gradient(m + (1.0 - 2.0 * m) * ops.sigmoid(x))
    slope = ops.stop_gradient(p * (1.0 - p))
    # Forward: p. Backward: dp/dx = slope (the surrogate's terms cancel).
    return p + x * slope - ops.stop_gradient(x * slope)


@keras.saving.register_keras_serializable(_PACKAGE, "stable_softmax")
def stable_softmax(x, axis=-1):
    """`softmax(x)` kept `2 * epsilon` away from 0 and 1, whose Jacobian is
    `diag(p) - p p^T` at that value: never 0.

    Example:

    >>> p = stable_softmax(keras.ops.convert_to_tensor([[0.0, 0.0]]))
    >>> [round(float(v), 6) for v in p[0]]
    [0.5, 0.5]
    """
    m = _margin()
    k = x.shape[axis]
    p = ops.stop_gradient(m + (1.0 - k * m) * ops.softmax(x, axis=axis))
    surrogate = p * x - p * ops.sum(p * x, axis=axis, keepdims=True)
    return p + surrogate - ops.stop_gradient(surrogate)


_STABLE = {"sigmoid": stable_sigmoid, "softmax": stable_softmax}


def _output_layers(model) -> list:
    outputs = getattr(model, "outputs", None)
    if not isinstance(model, keras.Model) or not outputs:
        raise ValueError(
            "Argument `model` must be a built functional or Sequential "
            "keras.Model (one with `outputs`). Received: "
            f"model={type(model).__name__}"
        )
    layers = []
    for tensor in keras.tree.flatten(outputs):
        layer = _keras_internals.producing_layer(tensor)
        if layer not in layers:
            layers.append(layer)
    return layers


def _activation_name(layer) -> str | None:
    activation = getattr(layer, "activation", None)
    if activation is keras.activations.sigmoid:
        return "sigmoid"
    if activation is keras.activations.softmax:
        return "softmax"
    return None


def stable_heads(model: keras.Model) -> keras.Model:
    """Makes every sigmoid or softmax output learn when saturated, in place.

    Each output layer whose activation is `"sigmoid"` or `"softmax"` (a
    `Dense`, `Conv` or `Activation` layer) gets `stable_sigmoid` or
    `stable_softmax`: the same probabilities (to within a few `epsilon`), and the
    logit loss's gradient under Keras's crossentropy on every backend.
    Call it before `fit`; the model saves and loads with
    `keras_multiphase` imported (the activations are registered Keras
    objects); `for_inference(model)` gives a copy that loads in plain
    Keras. Steps already built by an earlier `fit` are rebuilt.

    Example:

    >>> inputs = keras.Input((3,))
    >>> model = keras.Model(inputs, {
    ...     "value": keras.layers.Dense(1, name="value")(inputs),
    ...     "label": keras.layers.Dense(4, "softmax", name="label")(inputs)})
    >>> stable_heads(model).get_layer("label").activation.__name__
    'stable_softmax'

    Args:
        model: A built functional or Sequential `keras.Model`.

    Returns:
        The same model.

    Raises:
        ValueError: if `model` has no output with a sigmoid or softmax
            activation.
    """
    layers = _output_layers(model)
    changed = []
    for layer in layers:
        name = _activation_name(layer)
        if name is not None:
            _keras_internals.set_activation(layer, _STABLE[name])
            changed.append(layer.name)
        elif getattr(layer, "activation", None) in _STABLE.values():
            changed.append(layer.name)  # already stable
    if not changed:
        found = {layer.name: _describe(layer) for layer in layers}
        raise ValueError(
            "Argument `model` has no output layer with a 'sigmoid' or "
            "'softmax' activation for stable_heads to change. Received "
            f"outputs: {found}. A head that outputs logits for a "
            "`from_logits=True` loss needs nothing."
        )
    _rebuild_steps(model)
    return model


def _describe(layer) -> str:
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    return f"{type(layer).__name__}(activation={name!r})"


def _rebuild_steps(model) -> None:
    """A step traced before the swap keeps the old activation (JAX and
    TensorFlow trace once per build): rebuild the ones that exist."""
    for kind in ("train", "test", "predict"):
        if getattr(model, f"{kind}_function", None) is not None:
            getattr(model, f"make_{kind}_function")(force=True)
