"""`normalize_heads(..., units="standard")`: the trunk's float inputs
standardised and each dominant regression head centred, in one model.

Measured on 13 benchmark problems (benchmarks/README.md, "Which units"):
on a conv net, an LSTM, a transformer encoder on token ids and an MLP on
badly scaled inputs, a dominant head in raw units ends far from what it
can reach (an LSTM's bounded features cannot carry a target in the
thousands; raw inputs in the tens of thousands mislead the range test),
and this change of units fixes all four. It costs a trunk pretrained on the
raw inputs (3x to 4x on the digits problems): there, keep `units="raw"`.

The returned model holds the `normalize_heads` model as one layer: before
it, a fixed `keras.layers.Normalization` per float input (each channel's
mean and sd in `x`; token ids pass as they are); after it, per output, a
`keras.layers.Rescaling(scale=sd, offset=mean)` named after the output for
each centred head (its target's statistics in `y`) and an `Identity` for
the others. The loss stays in original units: compile as before.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_multiphase.output_scaling import (
    _as_dict,
    _check_names,
    _is_regression,
    _moments,
    _rescaled,
    _standardized,
    _statistics,
    output_names,
)

UNITS = ("auto", "raw", "standard")


def check_units(units, x, y) -> str:
    """`units` is one of UNITS; "standard" needs the training inputs and
    targets."""
    if units not in UNITS:
        raise ValueError(
            f"Argument `units` must be one of {list(UNITS)}. Received: units={units!r}"
        )
    if units == "standard" and (x is None or y is None):
        raise ValueError(
            "Argument `units='standard'` standardises the model's inputs with "
            "the training inputs' moments and centres the dominant heads with "
            "their targets' mean and sd: pass both `x` and `y`. Received: "
            f"x={'None' if x is None else 'given'}, "
            f"y={'None' if y is None else 'given'}"
        )
    return units


def resolved_units(units: str, model, x, y, listed: bool) -> str:
    """ "raw" or "standard": `"auto"` is "standard" when `x` and `y` are
    given, no float input feeds a nested model directly (a backbone whose
    input units its own training fixed) and the model holds no units of
    its own yet; else "raw"."""
    if units != "auto":
        return units
    if x is None or y is None or has_units(model):
        return "raw"
    if backbone_inputs(model, listed):
        return "raw"
    return "standard"


def has_units(model) -> bool:
    """Whether `model` is one `with_units` built: inputs, `Normalization`
    layers, one nested model, `Rescaling` and `Identity` layers."""
    kinds = (
        keras.layers.InputLayer,
        keras.layers.Normalization,
        keras.layers.Rescaling,
        keras.layers.Identity,
        keras.Model,
    )
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return (
        model.name.endswith("_units")
        and len(nested) == 1
        and all(isinstance(layer, kinds) for layer in model.layers)
    )


def backbone_inputs(model, listed: bool = False) -> list[str]:
    """The names of the model's float inputs that a nested model (a
    backbone: `keras.applications`, keras-hub, a `Sequential` or
    functional model of the user's) reads as they are, or through layers
    without trainable weights only (`Rescaling`, `Resizing`, augmentation:
    the backbone's own preprocessing). `listed`: the model takes a list
    even of one input."""
    inputs = [
        keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name)
        for t in model.inputs
    ]
    # Each tensor that is a float input, or made from some by layers
    # without trainable weights -> the names of those inputs.
    raw = {id(t): {t.name} for t in inputs if "float" in str(t.dtype)}
    fed = set()

    def call(layer, *args, **kwargs):
        leaves = keras.tree.flatten((args, kwargs))
        reached = set().union(*(raw.get(id(a), set()) for a in leaves))
        outputs = layer(*args, **kwargs)
        if isinstance(layer, keras.Model):
            fed.update(reached)
        elif reached and not layer.trainable_weights:
            raw.update((id(t), reached) for t in keras.tree.flatten(outputs))
        return outputs

    keras.models.clone_model(
        model,
        input_tensors=inputs if len(inputs) > 1 or listed else inputs[0],
        clone_function=lambda layer: layer,
        call_function=call,
    )
    return sorted(fed)


def is_float(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.floating)


def standardized_arrays(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """`arrays`, the float ones standardised per channel as the returned
    model's `Normalization` layers will (token ids as they are)."""
    out = []
    for array in arrays:
        if is_float(array):
            mean, variance = _moments(np.asarray(array, "float64"))
            array = ((array - mean) / np.sqrt(variance)).astype(array.dtype)
        out.append(array)
    return out


def centred_heads(model, y, primary: set) -> list[str]:
    """The primary outputs whose target is a regression target."""
    targets = _as_dict(model, y)
    return [
        n
        for n in output_names(model)
        if n in primary and n in targets and _is_regression(targets[n])
    ]


def with_units(original, inner, y, centred: list[str], arrays, listed: bool):
    """`inner` (the normalised model) between standardised float inputs
    and centred `centred` outputs, with `original`'s inputs and output
    names (`listed`: the model takes a list even of one input)."""
    names = output_names(original)
    _check_names(inner, names)
    mean, sd, _ = _statistics(names, _as_dict(original, y), centred, None)
    tensors = [
        keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name)
        for t in original.inputs
    ]
    fed = [
        _standardized(t, a) if is_float(a) else t
        for t, a in zip(tensors, arrays, strict=True)
    ]
    single = len(tensors) == 1 and not listed
    outputs = _rescaled(inner(fed[0] if single else fed), names, mean, sd)
    inputs = tensors[0] if single else tensors
    return keras.Model(inputs, outputs, name=f"{original.name}_units")
