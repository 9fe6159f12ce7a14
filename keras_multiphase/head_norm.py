"""Small heads that learn beside a dominant one.

When one regression target is in the hundreds and the others are of order
one, the shared trunk's features grow to serve the large target. A small
head then reads features hundreds of units wide: each Adam step moves its
output by far more than its whole range, a classifier's probabilities sit at
0 or 1, and it ends near chance. Its loss weight does not help: Adam's step
on the head's own weights does not depend on it, and raising it lets the
small head reshape the trunk the dominant head needs.

`normalize_heads(model, y)` leaves the dominant head as it is and gives each
small head its own `keras.layers.BatchNormalization` between the trunk and
the head: the head reads unit-scale features whatever scale the trunk
takes, and its gradient reaches the trunk divided by the features' scale,
so it cannot drag the trunk away from the dominant head. Sigmoid and
softmax outputs also get `stable_heads`' activations (the logit loss's
gradient on every backend).

A head normalised this way can only read what the trunk computes, and the
trunk computes what the dominant head needs. With the training inputs,
`normalize_heads(model, y, x=x)` also gives each small head its own path
from the standardised inputs (a hidden ReLU layer, then a map that starts
at zero) added to its normalised features: a task-specific expert beside
the shared trunk, as in multi-task models (Tang et al. 2020, "Progressive
Layered Extraction"), while the trunk stays the dominant head's. A small
regression head also starts with its bias at its target's mean ("init
well", Karpathy 2019, "A Recipe for Training Neural Networks") where it
would otherwise spend its first steps getting there.

With `x` and `y` the units change too (`units="auto"`, units.py): the float
inputs standardised unless a nested backbone reads them (its pretrained
weights expect the units they were trained in), and a primary regression
head centred where its features cannot reach its target, so that a target
in the thousands is reachable from a conv net's, an LSTM's or an encoder's
bounded features.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import keras
import numpy as np

from keras_multiphase import _keras_internals
from keras_multiphase.input_path import input_features
from keras_multiphase.output_scaling import (
    _as_dict,
    _is_regression,
    output_names,
)
from keras_multiphase.stable_heads import _STABLE, _activation_name, _output_layers
from keras_multiphase.units import (
    check_units,
    has_units,
    standardized_arrays,
    units_plan,
    with_units,
)

# A head is small when its target's root mean square (a classifier's: 1) is
# below this fraction of the largest: its loss at a zero prediction is then
# under 1% of the dominant one's.
_SMALL = 0.1
# The moving statistics `predict` uses follow the features over ~10 steps
# (PyTorch's default, momentum=0.1 in its convention); Keras's 0.99 takes
# hundreds, and a short run's small heads were evaluated on stale ones.
_MOMENTUM = 0.9


def normalize_heads(
    model: keras.Model,
    y=None,
    primary: str | Sequence[str] | None = None,
    x=None,
    units: str = "auto",
) -> keras.Model:
    """A `BatchNormalization` before each small head, so it learns beside
    a dominant one.

    Returns a new functional model built from the same layers (the same
    weights, pretrained ones included) in which every output other than
    the primary ones reads the trunk through its own
    `keras.layers.BatchNormalization` (momentum 0.9, PyTorch's default, so
    that the moving statistics `predict` uses follow within a few dozen
    steps), and every sigmoid or softmax output
    has `stable_heads`' activation. The primary outputs are the ones named
    in `primary`, or else those whose training target `y` is large: a root
    mean square at least a tenth of the largest (a classifier counts as 1).
    Predictions keep their units; compile the returned model. It saves and
    loads with `keras_multiphase` imported; `for_inference(model)` gives a
    copy to serve that loads in plain Keras. The layers are shared,
    not copied: the original model's sigmoid and softmax heads get the
    stable activations too. A model given twice gets no second
    normalisation.

    With `y`, each small regression head (linear activation, a target that
    is not class labels) gets its bias set to its target's mean: the layer
    is shared, so the original model's head starts there too.

    With the training inputs `x`, each small head also gets its own path
    from the inputs: each float input standardised per channel with `x`'s
    moments (fixed `keras.layers.Normalization` layers) and flattened (an
    image, a signal or a sequence of fixed shape; averaged over its
    positions past 1,024 values per sample), each token-id input through
    its own `Embedding` averaged over its positions, go
    through a hidden `Dense` ReLU layer as wide as the head's features and
    a `Dense` layer without bias, zero at the start, whose output is added
    to the head's normalised features. The model computes the same
    function as without `x` until it trains; the trunk and the dominant
    head train as before.

    Example:

    >>> import numpy as np
    >>> inputs = keras.Input((4,), name="features")
    >>> h = keras.layers.Dense(8, "relu")(inputs)
    >>> model = keras.Model(inputs, {
    ...     "price": keras.layers.Dense(1, name="price")(h),
    ...     "sold": keras.layers.Dense(1, "sigmoid", name="sold")(h)}, name="shop")
    >>> x = np.random.uniform(0, 50, (64, 4))
    >>> y = {"price": np.random.uniform(400, 1000, (64, 1)),
    ...      "sold": np.random.randint(0, 2, (64, 1)).astype("float32")}
    >>> model = normalize_heads(model, y, x=x)
    >>> [layer.name for layer in model.layers]
    ['features', 'features_norm', 'shop', 'price', 'sold']
    >>> inner = model.get_layer("shop")  # the normalised model
    >>> sorted(layer.name for layer in inner.layers if "sold_" in layer.name)[:3]
    ['sold_input_norm', 'sold_input_shortcut', 'sold_input_sum']

    Args:
        model: A built functional `keras.Model` with two or more outputs,
            each a layer with weights (`Dense`, `Conv`, ...).
        y: The training targets (a dict keyed by output name, or a list in
            output order): finds the primary outputs when `primary` is not
            given.
        primary: Optional output name or names: the heads that are never
            changed, the others being auxiliary.
        x: Optional training inputs (an array, or a list / dict per input of
            the model): gives each small head its own path from the
            standardised inputs. Needs at least one float or token-id
            input of fixed shape and heads that read flat features.
        units: `"auto"` (default), `"raw"` or `"standard"`. `"standard"`
            (needs `x` and `y`): the trunk's float inputs standardised per
            channel with `x`'s moments (a fixed `Normalization` before the
            model; token ids pass as they are) and each primary regression
            head centred (a fixed `Rescaling(scale=sd, offset=mean)` with
            its target's moments, named after the output), the loss left
            in original units; the returned model then holds the
            normalised model as one layer. `"raw"`: the inputs and the
            primary heads as they are. `"auto"` (with `x` and `y`; else
            `"raw"`): the float inputs standardised unless a nested model
            (a backbone: `keras.applications`, keras-hub, your own) reads
            them directly or through layers without trainable weights, and
            a primary regression head centred only where its features
            cannot reach its target (`units.reach_ratio` above 5). Measured
            on 16 problems (benchmarks/README.md, "The default units"); no
            choice wins on all of them. Pass `"raw"` for a pretrained trunk
            that is not a
            nested model (`keras.Model(base.input, ...)`).

    Returns:
        A new `keras.Model` with the same inputs and output names.

    Raises:
        ValueError: if `model` is not a functional model with two or more
            outputs, if neither `y` nor `primary` is given, if `primary`
            names an output the model does not have, or if `x` does not
            give one array per input shaped as the input, or the model has
            no float or token-id input, or an input of unknown length, or a
            small head reads features that are not flat, or `units` is
            not `"auto"`, `"raw"` or `"standard"`, or is `"standard"`
            without `x` and `y`.
    """
    check_units(units, x, y)
    if has_units(model):
        return model  # a second call: its inputs and heads are set already
    heads = _heads(model)
    chosen = _primary(model, y, primary)
    plan = units_plan(units, model, x, y, heads, chosen, _listed_input(model))
    if plan is not None:
        inputs = standardized_arrays(plan[2], plan[0])
        inner = normalize_heads(model, y, sorted(chosen), inputs, units="raw")
        return with_units(model, inner, y, plan, _listed_input(model))
    small = {layer for name, layer in heads.items() if name not in chosen}
    if not small:
        warnings.warn(
            f"normalize_heads found no small head: every output ({sorted(heads)}) "
            "is primary, so none gets a normalisation (only sigmoid and "
            "softmax heads get stable activations). Name the heads that "
            "matter in `primary=` to normalise the others.",
            stacklevel=2,
        )
    taken = {layer.name for layer in model.layers}
    fresh = {layer for layer in small if f"{layer.name}_input_norm" not in taken}
    inputs = _new_inputs(model)
    shortcut = input_features(model, inputs, x) if x is not None and fresh else None

    def call(layer, *args, **kwargs):
        if layer in fresh:
            args = (_head_input(layer, args[0], shortcut), *args[1:])
        return layer(*args, **kwargs)

    normalized = keras.models.clone_model(
        model,
        input_tensors=inputs,
        clone_function=lambda layer: layer,
        call_function=call,
    )
    # The shared layers change only once the new model is built.
    for layer in heads.values():
        name = _activation_name(layer)
        if name is not None:
            _keras_internals.set_activation(layer, _STABLE[name])
    if y is not None:
        _start_at_the_mean(model, y, heads, fresh)
    return normalized


def _head_input(layer, features, shortcut):
    """What a small head reads: the trunk's features normalised, plus its
    own path from the standardised inputs (a hidden ReLU layer as wide as
    the features, then a linear map that starts at zero)."""
    h = keras.layers.BatchNormalization(
        momentum=_MOMENTUM, name=f"{layer.name}_input_norm"
    )(features)
    if shortcut is None:
        return h
    if len(features.shape) != 2:
        raise ValueError(
            f"Argument `x` gives each small head a path from the inputs, "
            f"which needs heads that read flat features; head {layer.name!r} "
            f"reads shape {features.shape}. Call normalize_heads without `x`."
        )
    width = features.shape[-1]
    hidden = keras.layers.Dense(
        width, activation="relu", name=f"{layer.name}_shortcut_hidden"
    )(shortcut)
    direct = keras.layers.Dense(
        width,
        use_bias=False,
        kernel_initializer="zeros",
        name=f"{layer.name}_input_shortcut",
    )(hidden)
    return keras.layers.Add(name=f"{layer.name}_input_sum")([h, direct])


def _start_at_the_mean(model, y, heads, fresh) -> None:
    """Each fresh small regression head's bias set to its target's mean,
    so it starts at the mean rather than spending its first steps reaching
    it (the dominant head keeps its bias: its large early error is what
    shapes the trunk for it)."""
    targets = _as_dict(model, y)
    for name, layer in heads.items():
        values = targets.get(name)
        if layer not in fresh or values is None or not _is_regression(values):
            continue
        linear = getattr(layer, "activation", None) in (None, keras.activations.linear)
        if not linear or getattr(layer, "bias", None) is None:
            continue
        mean = np.nanmean(values.reshape(-1, values.shape[-1]), axis=0)
        if mean.shape == tuple(layer.bias.shape):
            layer.bias.assign(mean.astype(layer.bias.dtype))


def _new_inputs(model):
    """Fresh `keras.Input`s like the model's, in its input structure."""
    tensors = [
        keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name)
        for t in model.inputs
    ]
    # `keras.Model([inputs], ...)`: a list of one stays a list.
    return tensors if len(tensors) > 1 or _listed_input(model) else tensors[0]


def _listed_input(model) -> bool:
    try:
        return isinstance(model.input, (list, tuple))
    except (AttributeError, ValueError):
        return False


def _heads(model) -> dict:
    """Output name -> the layer that produces it."""
    if isinstance(model, keras.Sequential):
        raise ValueError(
            "normalize_heads needs a functional keras.Model with two or more "
            "outputs (one dominant head and the small ones); a Sequential "
            f"model has one. Received: Sequential model {model.name!r}. A "
            "single-output model needs only the preset."
        )
    layers = _output_layers(model)
    names = output_names(model)
    if len(names) < 2 or len(layers) != len(names):
        raise ValueError(
            "Argument `model` must be a functional keras.Model with two or "
            "more outputs, each made by its own layer. Received: "
            f"model {model.name!r} with outputs {names}"
        )
    heads = dict(zip(names, layers, strict=True))
    for name, layer in heads.items():
        if not layer.weights or isinstance(layer, keras.Model):
            raise ValueError(
                f"Output {name!r} is made by {type(layer).__name__} "
                f"{layer.name!r}, which has no weights of its own: "
                "normalize_heads needs each output made by a layer with "
                "weights (Dense, Conv, EinsumDense)."
            )
    return heads


def _primary(model, y, primary) -> set:
    names = output_names(model)
    if primary is not None:
        chosen = {primary} if isinstance(primary, str) else set(primary)
        unknown = sorted(chosen - set(names))
        if unknown or not chosen:
            raise ValueError(
                f"Argument `primary` must name outputs of the model "
                f"({names}). Received: primary={primary!r}"
            )
        return chosen
    if y is None:
        raise ValueError(
            "normalize_heads needs the training targets `y` or the names "
            "of the `primary` outputs to know which heads are small. "
            "Received: y=None, primary=None"
        )
    targets = _as_dict(model, y)
    missing = [n for n in names if n not in targets]
    if missing:
        warnings.warn(
            f"normalize_heads: `y` has no target for output(s) {missing}, "
            "so they count as primary and get no normalisation. Pass every "
            f"output's training target (outputs: {names}), or name the "
            "heads that matter in `primary=`.",
            stacklevel=3,
        )
    scale = {name: _scale(targets[name]) for name in targets}
    largest = max(scale.values())
    return {n for n in names if scale.get(n, largest) >= _SMALL * largest}


def _scale(values) -> float:
    """Root mean square of a regression target; 1 for class labels."""
    values = np.asarray(values)
    if not _is_regression(values):
        return 1.0
    finite = values[np.isfinite(values)].astype("float64")
    return float(np.sqrt(np.mean(finite**2))) if finite.size else 1.0
