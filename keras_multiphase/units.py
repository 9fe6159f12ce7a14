"""`normalize_heads(..., units=)`: the trunk's float inputs standardised
and dominant regression heads centred, in one model (`"standard"`: all of
them; `"auto"`, the default: inputs no nested backbone reads, and heads
whose features cannot reach their target).

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
    _arrays_per_input,
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
# `"auto"` centres a primary regression head when its target's root mean
# square is more than this many times the sum of its features (plus 1):
# measured on 15 problems, the heads centring helped were at 9.6 and above
# (a conv net, an LSTM, attention, a BatchNormalization backbone), the ones
# it cost 3x to 10x at 2.5 and below (a Dense backbone pretrained on raw
# pixels): benchmarks/README.md, "The default units".
REACH = 5.0


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


def units_plan(units: str, model, x, y, heads: dict, primary: set, listed: bool):
    """What `units` changes: `(standardised, centred, arrays)`, the indices
    of the float inputs to standardise, the outputs to centre and the
    inputs checked per model input; or None for nothing (the model as it
    is).

    `"standard"`: every float input and every primary regression head.
    `"auto"` (needs `x` and `y`): every float input that no nested backbone
    reads (`backbone_inputs`), and each primary regression head that its
    features cannot reach (`reach_ratio` above `REACH`). `heads`: each
    output's layer."""
    if units == "raw" or (units == "auto" and (x is None or y is None)):
        return None
    arrays = _arrays_per_input(model, x)
    floats = [i for i, array in enumerate(arrays) if is_float(array)]
    regression = regression_heads(model, y, primary)
    if units == "standard":
        return floats, regression, arrays
    names = [t.name for t in model.inputs]
    kept = set(backbone_inputs(model, listed))
    floats = [i for i in floats if names[i] not in kept]
    fed = standardized_arrays(arrays, floats)
    targets = _as_dict(model, y)
    centred = [
        n for n in regression if reach_ratio(model, heads[n], fed, targets[n]) > REACH
    ]
    return (floats, centred, arrays) if floats or centred else None


def reach_ratio(model, layer, arrays, target, samples: int = 256) -> float:
    """The root mean square of an output's target over what its head's
    features sum to (the mean L1 norm of the features plus 1, for the
    bias) on the first `samples` inputs: how many times its weights must
    grow for the head to reach its target in the model's own units."""
    features = keras.Model(model.inputs, layer.input)
    first = [a[:samples] for a in arrays]
    h = keras.ops.convert_to_numpy(features(first))  # built on a list of inputs
    reach = np.abs(np.asarray(h, "float64")).reshape(len(h), -1).sum(1).mean() + 1
    values = np.asarray(target, "float64")
    return float(np.sqrt(np.mean(values**2)) / reach)


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


def standardized_arrays(arrays: list[np.ndarray], which) -> list[np.ndarray]:
    """`arrays`, those at the indices `which` standardised per channel as
    the returned model's `Normalization` layers will."""
    out = []
    for i, array in enumerate(arrays):
        if i in which:
            mean, variance = _moments(np.asarray(array, "float64"))
            array = ((array - mean) / np.sqrt(variance)).astype(array.dtype)
        out.append(array)
    return out


def regression_heads(model, y, primary: set) -> list[str]:
    """The primary outputs whose target is a regression target."""
    targets = _as_dict(model, y)
    return [
        n
        for n in output_names(model)
        if n in primary and n in targets and _is_regression(targets[n])
    ]


def with_units(original, inner, y, plan, listed: bool):
    """`inner` (the normalised model) between the inputs and outputs of
    `plan` (`units_plan`), with `original`'s inputs and output names
    (`listed`: the model takes a list even of one input)."""
    standardised, centred, arrays = plan
    names = output_names(original)
    _check_names(inner, names)
    mean, sd, _ = _statistics(names, _as_dict(original, y), centred, None)
    tensors = [
        keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name)
        for t in original.inputs
    ]
    fed = [
        _standardized(t, a) if i in standardised else t
        for i, (t, a) in enumerate(zip(tensors, arrays, strict=True))
    ]
    single = len(tensors) == 1 and not listed
    outputs = _rescaled(inner(fed[0] if single else fed), names, mean, sd)
    inputs = tensors[0] if single else tensors
    return keras.Model(inputs, outputs, name=f"{original.name}_units")
