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

UNITS = ("raw", "standard")


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


def _is_float(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.floating)


def standardized_arrays(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """`arrays`, the float ones standardised per channel as the returned
    model's `Normalization` layers will (token ids as they are)."""
    out = []
    for array in arrays:
        if _is_float(array):
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
        _standardized(t, a) if _is_float(a) else t
        for t, a in zip(tensors, arrays, strict=True)
    ]
    single = len(tensors) == 1 and not listed
    outputs = _rescaled(inner(fed[0] if single else fed), names, mean, sd)
    inputs = tensors[0] if single else tensors
    return keras.Model(inputs, outputs, name=f"{original.name}_units")
