"""Which variables a per-layer learning-rate multiplier applies to.

A key of `LayerRates(rates=...)` is a `keras.Layer` (its trainable
variables) or a glob pattern, matched against the names of the layers a
variable belongs to and against their paths: `"trunk"`, `"block_*"` or
`"trunk/b1"` for the variable `trunk/b1/kernel`; and against the names and
paths of the model's layers, nested models' included (`"backbone"`,
`"backbone/block_1"`), since a functional backbone's variable paths do not
hold its name. A later key wins over an
earlier one. The key `"auto"` is the model's trunk (`trunk_layers`).
`layer_decay` (timm's) multiplies the top-level layers that
have trainable variables by `decay ** k`, k counted from the last one (the
head, 1.0) back to the first. Variables no key matches keep the rate (1.0).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

import keras

# The key that stands for the model's trunk (`trunk_layers`).
AUTO = "auto"


def check_rates(name: str, rates, empty_ok: bool = False) -> dict:
    """Argument `name` as per-layer multipliers: a mapping of layer names,
    glob patterns or layers to numbers >= 0 (0 freezes)."""
    from keras_multiphase._validation import check_non_negative

    if not isinstance(rates, Mapping) or not (rates or empty_ok):
        raise ValueError(
            f"Argument `{name}` must be a non-empty mapping of layer names, "
            "glob patterns or layers to multipliers, e.g. {'trunk': 0.1}. "
            f"Received: {name}={rates!r}"
        )
    out = {}
    for key, value in rates.items():
        if not isinstance(key, (str, keras.layers.Layer)):
            raise ValueError(
                f"Keys of `{name}` must be layer names, glob patterns or "
                f"layers. Received key {key!r}"
            )
        out[key] = check_non_negative(f"{name}[{key!r}]", value)
    return out


def _prefixes(path: str) -> list[str]:
    """`a/b/kernel` -> names and paths of its layers: a, b, a/b."""
    parts = path.split("/")[:-1]
    paths = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return parts + paths


def trunk_layers(model) -> list:
    """The layers the key `"auto"` stands for (the trunk of a model being
    fine-tuned): its nested models with weights (a `keras.applications` or
    keras-hub backbone), if any; else, with several outputs, the layers
    with weights every output depends on; else every layer with weights
    but the last. A model whose only layer with weights is one nested
    model (a wrapper) has that model's trunk."""
    weighted = [layer for layer in model.layers if layer.trainable_variables]
    nested = [layer for layer in weighted if isinstance(layer, keras.Model)]
    if weighted == nested and len(nested) == 1:
        # A wrapper (normalize_heads' units model): its inner model's trunk.
        return trunk_layers(nested[0])
    if nested:
        return nested
    outputs = list(getattr(model, "outputs", None) or [])
    if len(outputs) > 1:
        shared = None
        for output in outputs:
            names = {layer.name for layer in keras.Model(model.inputs, output).layers}
            shared = names if shared is None else shared & names
        trunk = [layer for layer in weighted if layer.name in shared]
        if trunk:
            return trunk
    return weighted[:-1]


def layer_tree(model, prefix: str = "") -> dict:
    """Every layer of `model` with trainable variables, nested models'
    layers included, by its path of names (`"backbone"`,
    `"backbone/block_1"`). A functional model's variable paths leave out
    the nested models' names, so names are matched here too."""
    out = {}
    for layer in model.layers:
        if not layer.trainable_variables:
            continue
        path = f"{prefix}{layer.name}"
        out[path] = layer
        if isinstance(layer, keras.Model):
            out.update(layer_tree(layer, f"{path}/"))
    return out


def _matched(model, key) -> set[int]:
    """Ids of the trainable variables `key` covers."""
    variables = model.trainable_variables
    if key == AUTO:
        return {
            id(v) for layer in trunk_layers(model) for v in layer.trainable_variables
        }
    if isinstance(key, keras.layers.Layer):
        return {id(v) for v in key.trainable_variables}
    by_path = {
        id(v)
        for v in variables
        if any(fnmatch.fnmatchcase(p, key) for p in _prefixes(v.path))
    }
    by_name = {
        id(v)
        for path, layer in layer_tree(model).items()
        if fnmatch.fnmatchcase(path, key) or fnmatch.fnmatchcase(layer.name, key)
        for v in layer.trainable_variables
    }
    return by_path | by_name


def _decay(model, layer_decay: float) -> dict[int, float]:
    """`layer_decay ** k` per variable id, k counted from the last top-level
    layer with trainable variables."""
    layers = [layer for layer in model.layers if layer.trainable_variables]
    out = {}
    for k, layer in enumerate(reversed(layers)):
        for v in layer.trainable_variables:
            out[id(v)] = layer_decay**k
    return out


def _given(model, rates: dict, ids: list[int], where: str) -> dict[int, float]:
    """The multiplier `rates` gives each variable id it covers (a later key
    wins)."""
    given = {}
    for key, multiplier in rates.items():
        covered = _matched(model, key) & set(ids)
        if not covered:
            layers = {p for v in model.trainable_variables for p in _prefixes(v.path)}
            layers |= set(layer_tree(model))
            raise ValueError(
                f"{where} key {_label(key)} matches no layer with trainable "
                f"variables of this model. Layers: {sorted(layers)}"
            )
        given.update(dict.fromkeys(covered, float(multiplier)))
    return given


def _grouped(model, vectors: dict[int, tuple]):
    """Variables grouped by their tuple of multipliers (one per phase, or
    one): `(group_of, each group's tuple, each group's variable paths)`."""
    tuples = sorted(set(vectors.values()), reverse=True)
    index = {t: g for g, t in enumerate(tuples)}
    group_of = {i: index[t] for i, t in vectors.items()}
    names = [[] for _ in tuples]
    for v in model.trainable_variables:
        names[group_of[id(v)]].append(v.path)
    return group_of, tuples, names


def multiplier_groups(model, rates: dict, layer_decay: float | None):
    """Groups of the model's trainable variables by multiplier.

    Returns `(group_of, multipliers, names)`: the group index of each
    variable id, each group's multiplier, and each group's variable paths.
    Raises `ValueError` for a key that covers no variable.
    """
    ids = [id(v) for v in model.trainable_variables]
    given = _given(model, rates, ids, "LayerRates: `rates`")
    decay = _decay(model, layer_decay) if layer_decay is not None else {}
    vectors = {i: (decay.get(i, 1.0) * given.get(i, 1.0),) for i in ids}
    group_of, tuples, names = _grouped(model, vectors)
    return group_of, [t[0] for t in tuples], names


def batch_norm_variables(model) -> set[int]:
    """Ids of the scales and offsets of the model's `BatchNormalization`
    layers, nested models' included."""
    return {
        id(v)
        for layer in layer_tree(model).values()
        if isinstance(layer, keras.layers.BatchNormalization)
        for v in layer.trainable_variables
    }


def phase_groups(model, per_phase: list[dict], train_bn: list[bool] | None = None):
    """Groups of the model's trainable variables by their multipliers in
    each phase (`per_phase[k]`: phase k's `layer_rates`, or `{}`). In a
    phase with `train_bn[k]`, a `BatchNormalization` layer's scale and
    offset that a key freezes (0) train at the phase's rate (1.0):
    fastai's `train_bn`.

    Returns `(group_of, table, names)`: `table[k][g]` is group g's
    multiplier in phase k.
    """
    ids = [id(v) for v in model.trainable_variables]
    given = [
        _given(model, rates, ids, f"PhaseLR: `phases[{k}].layer_rates`")
        for k, rates in enumerate(per_phase)
    ]
    if any(train_bn or ()):
        norms = batch_norm_variables(model)
        for g, on in zip(given, train_bn, strict=True):
            g.update({i: 1.0 for i in norms if on and g.get(i) == 0.0})
    vectors = {i: tuple(g.get(i, 1.0) for g in given) for i in ids}
    group_of, tuples, names = _grouped(model, vectors)
    table = [[t[k] for t in tuples] for k in range(len(per_phase))]
    return group_of, table, names


def _label(key) -> str:
    if isinstance(key, keras.layers.Layer):
        return f"layer {key.name!r}"
    return repr(key)
