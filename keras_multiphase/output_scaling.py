"""Output scaling: regression heads learn unit-scale targets, the model
still predicts in original units.

The same idea as scikit-learn's `TransformedTargetRegressor`, done inside
the model so that it saves and loads as an ordinary Keras model: each scaled
head is followed by a fixed `keras.layers.Rescaling(scale=sd, offset=mean)`,
and the loss weights undo the change of units, so the head's loss is the
loss of the standardised target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import keras
import numpy as np

# How the loss of a head scales with its target's units: loss(sd * u) =
# sd ** power * loss(u).
_LOSS_POWER = {
    "mse": 2,
    "mean_squared_error": 2,
    "mae": 1,
    "mean_absolute_error": 1,
}


class ScaledOutputs(NamedTuple):
    """What `scale_outputs` returns.

    Attributes:
        model: `keras.Model`. The model with a `Rescaling` after each scaled
            head; same inputs, same output names, original units.
        loss_weights: Dict output name -> float, for `compile(loss_weights=
            ...)`: `1 / sd ** 2` for a squared loss, `1 / sd` for an absolute
            one, `1.0` for heads left alone.
        mean: Dict output name -> NumPy array (the offset of each scaled head).
        sd: Dict output name -> NumPy array (the scale of each scaled head).
    """

    model: keras.Model
    loss_weights: dict
    mean: dict
    sd: dict


def _is_regression(values: np.ndarray) -> bool:
    """Floating targets that are not class labels (integer-valued with at
    most 32 distinct values, one-hot or 0/1 included)."""
    if not np.issubdtype(values.dtype, np.floating):
        return False
    finite = values[np.isfinite(values)]
    if np.all(finite == np.round(finite)) and len(np.unique(finite)) <= 32:
        return False
    return True


def output_names(model) -> list[str]:
    """The model's output names; a Sequential's one output is named after
    its last layer (Keras 3 gives a Sequential no `output_names`)."""
    names = getattr(model, "output_names", None)
    if names is None and isinstance(model, keras.Sequential) and model.layers:
        return [model.layers[-1].name]
    return list(names or [])


def _dict_outputs(model) -> bool:
    """Whether the functional model returns a dict (its `output_names` are
    then sorted, not in the order the user wrote them)."""
    try:
        return isinstance(model.output, Mapping)
    except (AttributeError, ValueError):
        return False


def _as_dict(model, y) -> dict:
    names = output_names(model)
    if isinstance(y, (list, tuple)) and len(names) > 1 and _dict_outputs(model):
        raise ValueError(
            f"Argument `y` must be a dict keyed by output name for a model "
            f"whose outputs are a dict ({names}): a {type(y).__name__} has no "
            "order to match them by. Received: y="
            f"{type(y).__name__} of {len(y)} arrays"
        )
    if isinstance(y, Mapping):
        unknown = sorted(set(y) - set(names))
        if unknown:
            raise ValueError(
                f"Argument `y` has key(s) {unknown} that are not outputs of "
                f"the model. Outputs: {names}. Received keys: {sorted(y)}"
            )
        return {name: np.asarray(y[name]) for name in names if name in y}
    if isinstance(y, (list, tuple)):
        if len(y) != len(names):
            raise ValueError(
                f"Argument `y` must hold one array per output ({names}). "
                f"Received: {len(y)} arrays"
            )
        return {name: np.asarray(v) for name, v in zip(names, y, strict=True)}
    if len(names) != 1:
        raise ValueError(
            f"Argument `y` must be a dict or list with one array per output "
            f"({names}). Received: {type(y).__name__}"
        )
    return {names[0]: np.asarray(y)}


def _normalized(model, inputs, x):
    """`inputs`, each passed through a `Normalization` set to `x`'s
    moments."""
    tensors = inputs if isinstance(inputs, list) else [inputs]
    out = [
        _standardized(tensor, array)
        for tensor, array in zip(tensors, _arrays_per_input(model, x), strict=True)
    ]
    return out if isinstance(inputs, list) else out[0]


def _arrays_per_input(model, x) -> list[np.ndarray]:
    """The arrays of `x`, one per model input in `model.inputs`' order."""
    names = [t.name for t in model.inputs]
    if isinstance(x, Mapping):
        arrays = [x.get(n) for n in names]
    elif isinstance(x, (list, tuple)):
        arrays = list(x)
    else:
        arrays = [x]
    if len(arrays) != len(names) or any(a is None for a in arrays):
        raise ValueError(
            f"Argument `x` must give one array per model input ({names}). "
            f"Received: x={type(x).__name__} with {len(arrays)} entries"
        )
    arrays = [np.asarray(a) for a in arrays]
    for tensor, array in zip(model.inputs, arrays, strict=True):
        _check_input_array(tensor, array)
    return arrays


def _check_input_array(tensor, array) -> None:
    """`array` is numbers shaped as the model input `tensor` takes."""
    if not np.issubdtype(array.dtype, np.number) or array.ndim < 1:
        raise ValueError(
            f"Argument `x` must give NumPy-like arrays of numbers (the "
            f"training inputs, for their moments). Received for input "
            f"{tensor.name!r}: "
            f"{type(array.item() if array.ndim == 0 else array).__name__}"
            f" of dtype {array.dtype}"
        )
    want = tuple(tensor.shape[1:])
    fits = len(want) == array.ndim - 1 and all(
        w is None or w == a for w, a in zip(want, array.shape[1:], strict=True)
    )
    if not fits:
        raise ValueError(
            f"Argument `x` must give the training inputs as the model takes "
            f"them: input {tensor.name!r} takes samples of shape {want}. "
            f"Received: an array of shape {array.shape} (samples of shape "
            f"{array.shape[1:]})"
        )


def _standardized(tensor, array, suffix="_norm"):
    """`tensor` through a fixed `Normalization` with `array`'s moments,
    named after the tensor plus `suffix`."""
    mean, variance = _moments(np.asarray(array, "float64"))
    layer = keras.layers.Normalization(
        axis=-1, mean=mean, variance=variance, name=f"{tensor.name}{suffix}"
    )
    return layer(tensor)


def _moments(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (last axis) mean and variance of `array`; a feature
    constant in `array` keeps a variance of 1 (centred, not scaled), where an
    adapted `Normalization` would divide it by `epsilon` and multiply any
    later non-constant value by 1e7 (a pixel that is always 0 in the
    training images, say)."""
    flat = array.reshape(-1, array.shape[-1]) if array.ndim > 1 else array[:, None]
    mean, variance = flat.mean(0), flat.var(0)
    variance = np.where(variance > 1e-12 * np.maximum(mean**2, 1.0), variance, 1.0)
    return mean.astype("float32"), variance.astype("float32")


def _power(name: str, loss) -> int:
    if loss is None:
        return 2
    if isinstance(loss, Mapping):
        loss = loss.get(name, "mse")
    if not isinstance(loss, str) or loss not in _LOSS_POWER:
        raise ValueError(
            f"Argument `loss` must name each scaled head's loss as one of "
            f"{sorted(_LOSS_POWER)} (the loss weights depend on it). "
            f"Received: loss={loss!r} for output {name!r}"
        )
    return _LOSS_POWER[loss]


def scale_outputs(
    model: keras.Model,
    y,
    outputs: Sequence[str] | None = None,
    loss: str | Mapping[str, str] | None = None,
    x=None,
) -> ScaledOutputs:
    """Makes regression heads learn unit-scale targets, predicting in
    original units.

    A head whose target has a mean of 700 and a standard deviation of 200
    starts with a loss of ~5e5: it dominates a multi-output loss, its first
    steps are a collapse, and a shared trunk is tuned for it alone.
    `scale_outputs` follows each chosen head with a fixed
    `Rescaling(scale=sd, offset=mean)` (statistics of the training targets
    `y`), so the head's own output is standardised, and returns loss weights
    (`1 / sd ** 2` for `"mse"`, `1 / sd` for `"mae"`) that make each
    component the loss of the standardised target. Predictions, metrics and
    the logged `<output>_loss` stay in original units. The returned model
    uses only Keras layers: a `.keras` file saved from it loads without
    this package.

    Raw inputs of large scale (a price, a sensor reading) saturate the
    trunk whatever the targets are; pass the training inputs as `x` and each
    input is standardised first by a `keras.layers.Normalization` adapted to
    them (the model then takes raw inputs).

    Example:

    >>> import numpy as np
    >>> inputs = keras.Input((4,))
    >>> price = keras.layers.Dense(1, name="price")(inputs)
    >>> model = keras.Model(inputs, {"price": price})
    >>> y = {"price": np.random.uniform(400, 1000, (64, 1)).astype("float32")}
    >>> scaled = scale_outputs(model, y)
    >>> scaled.model.compile(optimizer="adam", loss={"price": "mse"},
    ...                      loss_weights=scaled.loss_weights)
    >>> pred = scaled.model.predict(np.zeros((2, 4)), verbose=0)["price"]
    >>> bool(np.allclose(pred, y["price"].mean(), rtol=1e-4))
    True

    Args:
        model: A functional `keras.Model` (or a Sequential built with an
            `Input`), not yet compiled or compiled (the result must be
            compiled again).
        y: The training targets: a dict keyed by output name, a list in
            output order, or one array for a single output.
        outputs: Optional list of output names to scale. Defaults to every
            output whose target is floating point and not class labels
            (integer-valued with at most 32 distinct values).
        loss: `"mse"` (default) or `"mae"`, or a dict per output name: the
            loss of each scaled head, which sets its loss weight.
        x: Optional training inputs (an array, or a list / dict per input
            of the model): adds an adapted `Normalization` before the model.

    Returns:
        A `ScaledOutputs` (`model`, `loss_weights`, `mean`, `sd`).
    """
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError(
            "Argument `model` must be a functional keras.Model (or a "
            "Sequential starting with keras.Input). Received: "
            f"model={type(model).__name__}"
        )
    targets = _as_dict(model, y)
    names = output_names(model)
    _check_names(model, names)
    chosen = _chosen_outputs(names, targets, outputs)
    mean, sd, weights = _statistics(names, targets, chosen, loss)
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name),
        model.inputs if len(model.inputs) > 1 else model.inputs[0],
    )
    raw = model(_normalized(model, inputs, x) if x is not None else inputs)
    result = _rescaled(raw, names, mean, sd)
    scaled = keras.Model(inputs, result, name=f"{model.name}_scaled")
    return ScaledOutputs(scaled, weights, mean, sd)


def _check_names(model, names) -> None:
    """The returned model holds `model` as one layer and one layer per
    output, named after that output: the names must differ."""
    if model.name in names:
        raise ValueError(
            f"scale_outputs names its output layers after the outputs, and "
            f"the model is also named {model.name!r}: give the model another "
            "name (`keras.Model(..., name=...)`). Received: outputs "
            f"{names}"
        )


def _chosen_outputs(names, targets, outputs) -> list[str]:
    """The outputs to scale: those given, or every regression target's."""
    if outputs is None:
        return [n for n in names if n in targets and _is_regression(targets[n])]
    if isinstance(outputs, str):
        outputs = [outputs]
    unknown = [n for n in outputs if n not in targets]
    if unknown:
        raise ValueError(
            f"Argument `outputs` names {unknown}, which are not outputs "
            f"with targets in `y`. Outputs with targets: {sorted(targets)}"
        )
    return list(outputs)


def _statistics(names, targets, chosen, loss) -> tuple[dict, dict, dict]:
    """Mean and sd of each chosen target, and every output's loss weight."""
    mean, sd, weights = {}, {}, {}
    for name in names:
        weights[name] = 1.0
        if name not in chosen:
            continue
        values = targets[name].astype("float64")
        values = values.reshape(len(values), -1)
        m, s = values.mean(axis=0), values.std(axis=0)
        s = np.where(s > 0, s, 1.0)
        mean[name], sd[name] = m.astype("float32"), s.astype("float32")
        weights[name] = float(1.0 / np.mean(s) ** _power(name, loss))
    return mean, sd, weights


def _rescaled(raw, names, mean, sd):
    """The model's outputs, each scaled one followed by its `Rescaling`
    (the others by an `Identity` keeping the name), in the structure the
    model returned."""
    flat = raw if isinstance(raw, Mapping) else None
    if flat is None:
        leaves = raw if isinstance(raw, (list, tuple)) else [raw]
        flat = dict(zip(names, leaves, strict=True))

    def finish(name, tensor):
        if name not in mean:
            return keras.layers.Identity(name=name)(tensor)
        m, s = mean[name], sd[name]
        if m.size == 1:
            m, s = float(m[0]), float(s[0])
        else:
            m, s = m.tolist(), s.tolist()
        return keras.layers.Rescaling(scale=s, offset=m, name=name)(tensor)

    out = {name: finish(name, flat[name]) for name in names}
    if isinstance(raw, Mapping):
        return out
    if isinstance(raw, (list, tuple)):
        return [out[n] for n in names]
    return out[names[0]]
