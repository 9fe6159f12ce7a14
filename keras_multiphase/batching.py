"""The training data at a batch size that changes between epochs.

`Source` serves `rebuild(batch_size)`'s data (arrays, a `PyDataset`, a
`tf.data.Dataset`) at one batch size, shuffled per epoch, every sample once;
`EpochMap` converts epochs to steps when epochs differ in length. The
callback that decides the sizes, and what `fit` iterates (`AdaptiveData`),
are in `callbacks/adaptive_batch.py`.
"""

from __future__ import annotations

import math

import keras
import numpy as np


def _is_tf_dataset(data) -> bool:
    return type(data).__module__.startswith("tensorflow") and hasattr(
        data, "cardinality"
    )


class Source:
    """Random access to the batches of what `rebuild` returned."""

    def __init__(self, data, batch_size: int, shuffle: bool, seed: int):
        self.batch_size = batch_size
        self.kind = None
        if isinstance(data, keras.utils.PyDataset):
            self.kind, self.data = "pydataset", data
            self.length = data.num_batches
            if self.length is None:
                raise ValueError(
                    "AdaptiveBatch: the PyDataset returned by `rebuild` must "
                    "have a finite `num_batches` (or `__len__`)."
                )
        elif _is_tf_dataset(data):
            self.kind, self.data = "tf", data
            cardinality = int(data.cardinality())
            if cardinality < 0:
                raise ValueError(
                    "AdaptiveBatch: the tf.data.Dataset returned by `rebuild` "
                    "must have a known, finite cardinality (got "
                    f"{cardinality}). Avoid `repeat()` and `filter()`, or use "
                    "`dataset.apply(tf.data.experimental.assert_cardinality(n))`."
                )
            self.length = cardinality
            self._iterator = None
        elif isinstance(data, (tuple, list)) or isinstance(data, np.ndarray):
            arrays = tuple(data) if isinstance(data, (tuple, list)) else (data,)
            sizes = {len(keras.tree.flatten(a)[0]) for a in arrays if a is not None}
            if len(sizes) != 1:
                raise ValueError(
                    "AdaptiveBatch: the arrays returned by `rebuild` must have "
                    f"the same number of samples. Received sizes {sorted(sizes)}"
                )
            self.kind, self.data = "arrays", arrays
            self.samples = sizes.pop()
            self.length = math.ceil(self.samples / batch_size)
            self._shuffle = shuffle
            self._seed = seed
            self._order = np.arange(self.samples)
            self._served = 0
        else:
            raise ValueError(
                "AdaptiveBatch: `rebuild(batch_size)` must return a "
                "tf.data.Dataset, a keras.utils.PyDataset, or arrays / an "
                f"(x, y[, sample_weight]) tuple. Received: {type(data).__name__}"
            )

    def new_epoch(self, epoch: int) -> None:
        if self.kind == "tf":
            self._iterator = None
        if self.kind == "arrays" and self._shuffle:
            # A function of (seed, epoch): a resumed run shuffles epoch k as
            # the uninterrupted one did.
            rng = np.random.default_rng([self._seed, epoch])
            self._order = rng.permutation(self.samples)
        if self.kind == "arrays":
            self._served = 0
        if self.kind == "pydataset":
            self.data.on_epoch_end()

    def first_batch_size(self) -> int:
        """Samples in the first batch (read once, for the checks)."""
        if self.kind == "arrays":
            return min(self.batch_size, self.samples)
        if self.kind == "pydataset":
            batch = self.data[0]
        else:
            batch = next(iter(self.data.take(1)))
        x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        return int(np.shape(keras.tree.flatten(x)[0])[0])

    def __getitem__(self, index: int):
        if self.kind == "pydataset":
            return self.data[index]
        if self.kind == "arrays":
            # Served in our order, whatever index `fit` asks for: `fit`
            # shuffles the indices with the global NumPy RNG, which a
            # resumed run does not restore; ours is a function of the epoch.
            # `fit` asks each index of an epoch once, so every sample is
            # still used once.
            index = self._served % self.length
            self._served += 1
            rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
            batch = tuple(
                None
                if a is None
                else keras.tree.map_structure(lambda t: np.asarray(t)[rows], a)
                for a in self.data
            )
            return batch if len(batch) > 1 else batch[0]
        # tf.data is sequential. `fit` asks for each index of the epoch once,
        # in an order of its own (it shuffles batches): serve the next batch.
        # Keras also peeks at batches before the first epoch (the output
        # signature; under tf.distribute a whole prefetching pass to build
        # the model), which can run past the end: start over rather than
        # raise StopIteration inside tf.data's generator (a logged
        # traceback). Each epoch starts afresh in `new_epoch`.
        if self._iterator is None:
            self._iterator = iter(self.data)
        try:
            batch = next(self._iterator)
        except StopIteration:
            self._iterator = iter(self.data)
            batch = next(self._iterator)
        return keras.tree.map_structure(lambda t: np.asarray(t), batch)


class EpochMap:
    """Epochs (float) <-> steps when epochs differ in length."""

    def __init__(self, steps_per_epoch):
        self.steps = list(steps_per_epoch)
        self.starts = np.concatenate([[0], np.cumsum(self.steps)])

    def __call__(self, epochs: float) -> int:
        whole = min(int(math.floor(epochs)), len(self.steps))
        part = epochs - whole
        last = self.steps[min(whole, len(self.steps) - 1)]
        return int(round(self.starts[whole] + part * last))

    def inverse(self, step: float) -> float:
        whole = int(np.searchsorted(self.starts, step, side="right") - 1)
        whole = min(whole, len(self.steps))
        last = self.steps[min(whole, len(self.steps) - 1)]
        return whole + (step - self.starts[whole]) / last
