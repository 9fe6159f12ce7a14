"""What a small head reads from the model's inputs (`normalize_heads(x=)`).

Each input becomes a flat vector of standardised features, whatever the
architecture: a flat float input is standardised with the training inputs'
moments; an image, a signal or a sequence of fixed shape is standardised
per channel and flattened (or, past `FLATTEN_LIMIT` values per sample,
averaged over its positions); token ids go through their own embedding,
averaged over the positions (a bag of tokens). Only Keras layers are used.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_multiphase.output_scaling import _arrays_per_input, _standardized

# Above this many values per sample a float input is averaged over its
# positions (a large image, a long sequence) rather than flattened.
FLATTEN_LIMIT = 1024
# Width of the embedding a token input gets.
EMBEDDING = 16
_POOLS = {
    2: keras.layers.GlobalAveragePooling1D,
    3: keras.layers.GlobalAveragePooling2D,
    4: keras.layers.GlobalAveragePooling3D,
}


def input_features(model, inputs, x):
    """The model's inputs `inputs` (fresh `keras.Input`s like the model's),
    each as flat standardised features with `x`'s moments, joined."""
    tensors = inputs if isinstance(inputs, list) else [inputs]
    arrays = _arrays_per_input(model, x)
    parts = [
        part
        for tensor, array in zip(tensors, arrays, strict=True)
        if (part := _features(tensor, array)) is not None
    ]
    if not parts:
        raise ValueError(
            "Argument `x` gives the small heads a path from the model's "
            "float or token-id inputs, and the model has none. Received "
            "inputs: "
            f"{[(t.name, tuple(t.shape), str(t.dtype)) for t in model.inputs]}"
        )
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate()(parts)


def _features(tensor, array):
    """One input as flat features (None for an input of another kind: a
    boolean mask, a string)."""
    shape = tuple(tensor.shape[1:])
    if any(d is None for d in shape):
        raise ValueError(
            f"Argument `x` gives each small head a path from the inputs, which "
            f"needs inputs of fixed shape; input {tensor.name!r} has shape "
            f"{shape}. Pad the sequences to one length, or call normalize_heads "
            "without `x`."
        )
    dtype = str(tensor.dtype)
    if "int" in dtype and len(shape) == 1:
        return _bag_of_tokens(tensor, array)
    if "float" not in dtype:
        return None
    h = _standardized(tensor, array, suffix="_shortcut_norm")
    if len(shape) == 1:
        return h
    if int(np.prod(shape)) <= FLATTEN_LIMIT or len(shape) - 1 not in _POOLS:
        return keras.layers.Flatten(name=f"{tensor.name}_shortcut_flat")(h)
    pool = _POOLS[len(shape) - 1]
    return pool(name=f"{tensor.name}_shortcut_pool")(h)


def _bag_of_tokens(tensor, array):
    """Token ids through their own embedding, averaged over the positions;
    the vocabulary is 0 to the largest id in `x` (the training inputs hold
    the ids the tokenizer gives)."""
    if array.size and np.min(array) < 0:
        raise ValueError(
            f"Argument `x` gives token ids for input {tensor.name!r}, which must "
            f"be >= 0. Received: ids from {int(np.min(array))}"
        )
    vocabulary = int(np.max(array)) + 1 if array.size else 1
    h = keras.layers.Embedding(
        vocabulary, EMBEDDING, name=f"{tensor.name}_shortcut_embedding"
    )(tensor)
    return keras.layers.GlobalAveragePooling1D(name=f"{tensor.name}_shortcut_pool")(h)
