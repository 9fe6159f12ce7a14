"""Batches for a range test from whatever `model.fit` accepts.

Arrays (and nested dicts/lists of them) are shuffled and batched here;
`keras.utils.PyDataset`, `tf.data.Dataset`, `torch.utils.data.DataLoader`
and other re-iterable objects are read pass after pass; a one-shot iterator
or generator is read as far as the sweep goes (its items are consumed).
Each batch is `(x, y, sample_weight)` as `keras.utils.unpack_x_y_sample_weight`
unpacks it, with NumPy leaves.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import keras
import numpy as np

DEFAULT_BATCH_SIZE = 32  # Keras's default for arrays


def _to_numpy(leaf):
    if leaf is None:
        return None
    module = type(leaf).__module__
    if module.startswith("torch"):
        return leaf.detach().cpu().numpy()
    return np.asarray(leaf)


def _numpy_batch(batch):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
    convert = lambda value: keras.tree.map_structure(_to_numpy, value)  # noqa: E731
    return convert(x), convert(y), convert(sample_weight)


def kind(x) -> str:
    """`"pydataset"`, `"tf.data"`, `"iterable"`, `"iterator"` or `"arrays"`."""
    if isinstance(x, keras.utils.PyDataset):
        return "pydataset"
    module = type(x).__module__
    if module.startswith("tensorflow") and hasattr(x, "as_numpy_iterator"):
        return "tf.data"
    if isinstance(x, Iterator):
        return "iterator"
    if module.startswith("torch") and hasattr(x, "__iter__"):
        return "iterable"
    return "arrays"


def _arrays(x, y, sample_weight, batch_size, seed):
    leaves = [leaf for leaf in keras.tree.flatten(x) if leaf is not None]
    if not leaves:
        raise ValueError("find_lr needs training data. Received: x=None")
    samples = len(leaves[0])
    size = min(int(batch_size or DEFAULT_BATCH_SIZE), samples)
    rng = np.random.default_rng(seed)
    convert = lambda value: keras.tree.map_structure(_to_numpy, value)  # noqa: E731
    x, y, sample_weight = convert(x), convert(y), convert(sample_weight)

    def take(value, index):
        if value is None:
            return None
        return keras.tree.map_structure(lambda a: a[index], value)

    while True:
        order = rng.permutation(samples)
        for start in range(0, samples - size + 1, size):
            index = order[start : start + size]
            yield take(x, index), take(y, index), take(sample_weight, index)


def batches(x, y=None, sample_weight=None, batch_size=None, seed=0):
    """An endless (except for one-shot iterators) stream of NumPy batches."""
    what = kind(x)
    if what != "arrays":
        if y is not None or sample_weight is not None:
            raise ValueError(
                f"Argument `y` (and `sample_weight`) must not be given when "
                f"`x` is a {what} that yields its own targets. Received: "
                f"x={type(x).__name__}, y={type(y).__name__}"
            )
        if batch_size is not None:
            raise ValueError(
                f"Argument `batch_size` must not be given when `x` is a "
                f"{what}: it batches its own data. Received: "
                f"batch_size={batch_size!r}"
            )
    if what == "arrays":
        yield from _arrays(x, y, sample_weight, batch_size, seed)
    elif what == "pydataset":
        count = x.num_batches  # None for an infinite PyDataset
        if count == 0:
            raise ValueError("Argument `x` is a PyDataset of length 0.")
        while True:
            for i in range(count) if count is not None else itertools.count():
                yield _numpy_batch(x[i])
    elif what == "iterator":
        for batch in x:
            yield _numpy_batch(batch)
    else:
        while True:
            empty = True
            source = x.as_numpy_iterator() if what == "tf.data" else iter(x)
            for batch in source:
                empty = False
                yield _numpy_batch(batch)
            if empty:
                raise ValueError(f"Argument `x` ({type(x).__name__}) yields no batch.")
