"""Which variables a per-layer learning-rate multiplier applies to.

A key of `LayerRates(rates=...)` is a `keras.Layer` (its trainable
variables) or a glob pattern, matched against the names of the layers a
variable belongs to and against their paths: `"trunk"`, `"block_*"` or
`"trunk/b1"` for the variable `trunk/b1/kernel`. A later key wins over an
earlier one. `layer_decay` (timm's) multiplies the top-level layers that
have trainable variables by `decay ** k`, k counted from the last one (the
head, 1.0) back to the first. Variables no key matches keep the rate (1.0).
"""

from __future__ import annotations

import fnmatch

import keras


def _prefixes(path: str) -> list[str]:
    """`a/b/kernel` -> names and paths of its layers: a, b, a/b."""
    parts = path.split("/")[:-1]
    paths = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return parts + paths


def _matched(model, key) -> set[int]:
    """Ids of the trainable variables `key` covers."""
    variables = model.trainable_variables
    if isinstance(key, keras.layers.Layer):
        return {id(v) for v in key.trainable_variables}
    return {
        id(v)
        for v in variables
        if any(fnmatch.fnmatchcase(p, key) for p in _prefixes(v.path))
    }


def _decay(model, layer_decay: float) -> dict[int, float]:
    """`layer_decay ** k` per variable id, k counted from the last top-level
    layer with trainable variables."""
    layers = [layer for layer in model.layers if layer.trainable_variables]
    out = {}
    for k, layer in enumerate(reversed(layers)):
        for v in layer.trainable_variables:
            out[id(v)] = layer_decay**k
    return out


def multiplier_groups(model, rates: dict, layer_decay: float | None):
    """Groups of the model's trainable variables by multiplier.

    Returns `(group_of, multipliers, names)`: the group index of each
    variable id, each group's multiplier, and each group's variable paths.
    Raises `ValueError` for a key that covers no variable.
    """
    ids = [id(v) for v in model.trainable_variables]
    given = {}
    for key, multiplier in rates.items():
        covered = _matched(model, key) & set(ids)
        if not covered:
            layers = {p for v in model.trainable_variables for p in _prefixes(v.path)}
            raise ValueError(
                f"LayerRates: `rates` key {_label(key)} matches no layer with "
                f"trainable variables of this model. Layers: {sorted(layers)}"
            )
        given.update(dict.fromkeys(covered, float(multiplier)))  # later wins
    decay = _decay(model, layer_decay) if layer_decay is not None else {}
    value = {i: decay.get(i, 1.0) * given.get(i, 1.0) for i in ids}
    multipliers = sorted(set(value.values()), reverse=True)
    index = {m: g for g, m in enumerate(multipliers)}
    group_of = {i: index[m] for i, m in value.items()}
    names = [[] for _ in multipliers]
    for v in model.trainable_variables:
        names[group_of[id(v)]].append(v.path)
    return group_of, multipliers, names


def _label(key) -> str:
    if isinstance(key, keras.layers.Layer):
        return f"layer {key.name!r}"
    return repr(key)
