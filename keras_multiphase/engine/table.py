"""The rate table: what the compiled step reads instead of the schedules.

Between two epoch-level decisions the composed rate is a known function of
the step, so it is computed in NumPy for the `capacity` steps from an
epoch's first one and stored in one optimizer-tracked variable; the step
reads its row with one gather. Later epochs reuse the rows while the state
the rates were computed from is unchanged (`ComposedLearningRate`
checks it when an epoch starts); a decision, or an epoch past the computed
rows, computes them again. Row `i` holds the step `s` with
`s % capacity == i`: an epoch never wraps onto itself (capacity > its
steps), and no start index has to be stored next to the table.

A row is `[rate, *columns]`: the extra columns are per-step values the
step assigns (OneCycle's momentum).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# The largest table (rows): 65,536 float32 per column, 256 KiB. Longer
# epochs, or epochs of unknown length, use the formulas in the step.
TABLE_LIMIT = 1 << 16
MIN_CAPACITY = 64


def tensor_of(step):
    """The backend tensor of `step` (a `keras.Variable`'s value)."""
    return step.value if isinstance(step, keras.Variable) else step


def step_count(step) -> int:
    """A step counter's value in Python: one scalar read of its tensor.

    Not `ops.convert_to_numpy`: on PyTorch it converts a variable through
    its `__array__` twice, and NumPy 2 warns at each (a warning costs even
    when filtered out), several times what this read costs.
    An eager PyTorch step on the CPU reads its step this way."""
    try:
        return int(tensor_of(step))
    except TypeError:
        # A TensorFlow distributed variable (`MirroredVariable`) has no
        # `__int__`; it reads through NumPy.
        return int(np.asarray(step))


def capacity_for(steps, epochs=1) -> int | None:
    """Rows for epochs of up to `steps` steps and the step after the last
    (a power of two), or None when `steps` is unknown or `steps + 1` is
    over `TABLE_LIMIT`. Sized for the whole run of `epochs` epochs when it
    fits in `TABLE_LIMIT` rows (else for as many epochs as fit): rows
    already computed serve the following epochs until an epoch-level
    decision changes the rate. The step after an epoch's last is what a
    callback reading `optimizer.learning_rate` after the last batch asks
    for."""
    if not steps or int(steps) + 1 > TABLE_LIMIT:
        return None
    rows = min(int(steps) * max(int(epochs or 1), 1) + 1, TABLE_LIMIT)
    return max(MIN_CAPACITY, 1 << (rows - 1).bit_length())


class RateTable:
    """A `(capacity, 1 + columns)` float32 table and its host copy."""

    def __init__(self, variable, capacity: int, columns: int):
        self.variable = variable
        self.capacity = int(capacity)
        self.columns = int(columns)
        self.host = np.zeros((self.capacity, 1 + self.columns), "float32")
        # (first step, count): the rows the last fill computed, and the
        # current epoch's steps among them.
        self.computed = (0, 0)
        self.filled = (0, 0)

    def steps_from(self, start: int) -> np.ndarray:
        """The `capacity` steps a fill from `start` holds."""
        return np.arange(int(start), int(start) + self.capacity)

    def fill(self, start: int, count, rows: np.ndarray) -> None:
        """Stores `rows` (shape `(capacity, 1 + columns)`: the rows of
        `steps_from(start)`); the epoch starting at `start` has `count`
        steps (None: `capacity`)."""
        steps = self.steps_from(start)
        self.host[steps % self.capacity] = rows
        self.variable.assign(self.host)
        self.computed = (int(start), self.capacity)
        self._use(start, count)

    def reuse(self, start: int, count) -> bool:
        """Serves the epoch of `count` steps from `start` with the rows
        already computed, if they include it and the step after it."""
        first, computed = self.computed
        count = self.capacity if not count else int(count)
        if computed and first <= int(start) and int(start) + count < first + computed:
            self._use(start, count)
            return True
        return False

    def _use(self, start: int, count) -> None:
        count = self.capacity if not count else min(int(count), self.capacity)
        self.filled = (int(start), count)

    def covers(self, step: int) -> bool:
        """Whether `step` is in the current epoch, whose rows are written
        (reads of later steps evaluate the formulas: a decision at this
        epoch's end may change them)."""
        start, count = self.filled
        return start <= int(step) < start + count

    def holds_next(self) -> bool:
        """Whether the row of the step after the current epoch's last one
        was computed (a read at the end of the epoch's last batch)."""
        first, computed = self.computed
        start, count = self.filled
        return start + count < first + computed

    def row(self, step):
        """The row of `step`, inside the compiled step: one gather."""
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # The counter mod the size, one `ResourceGather` of the
            # variable: `keras.ops` adds a cast, and `ops.take` reads the
            # whole table for its shape and corrects negative indices,
            # which `mod` never gives (7 ops in all that TensorFlow's
            # executor would run at every step).
            return tf.gather(self.variable.value, tensor_of(step) % self.capacity)
        index = ops.cast(ops.mod(step, self.capacity), "int32")
        return ops.take(self.variable.value, index, axis=0)

    def device_row(self, step):
        """The row of `step` in eager PyTorch on an accelerator: a gather
        on the device with no host data in it (`keras.ops` would turn the
        capacity into a tensor, and a 0-d tensor used as an index is read
        back to Python: each waits for the steps queued before it)."""
        index = (tensor_of(step) % self.capacity).reshape(1)
        return self.variable.value.index_select(0, index)[0]

    def host_row(self, step: int):
        """The row of `step` from the host copy (eager PyTorch)."""
        return self.host[int(step) % self.capacity]
