"""The rate table: what the compiled step reads instead of the schedules.

Between two epoch-level decisions the composed rate is a known function of
the step, so it is computed in NumPy when an epoch starts (or when a
decision changes it) and stored in one optimizer-tracked variable; the step
reads its row with one gather. Row `i` holds the step `s` with
`s % capacity == i`, for the `capacity` steps from the epoch's first one:
an epoch never wraps onto itself (capacity >= its steps), and no start
index has to be stored next to the table.

A row is `[rate, *columns]`: the extra columns are per-step values the
step assigns (OneCycle's momentum).
"""

from __future__ import annotations

import numpy as np
from keras import ops

# The largest table (rows): 65,536 float32 per column, 256 KiB. Longer
# epochs, or epochs of unknown length, use the formulas in the step.
TABLE_LIMIT = 1 << 16
MIN_CAPACITY = 64


def capacity_for(steps) -> int | None:
    """Rows for epochs of up to `steps` steps (a power of two), or None
    when `steps` is unknown or over `TABLE_LIMIT`."""
    if not steps or int(steps) > TABLE_LIMIT:
        return None
    return max(MIN_CAPACITY, 1 << (int(steps) - 1).bit_length())


class RateTable:
    """A `(capacity, 1 + columns)` float32 table and its host copy."""

    def __init__(self, variable, capacity: int, columns: int):
        self.variable = variable
        self.capacity = int(capacity)
        self.columns = int(columns)
        self.host = np.zeros((self.capacity, 1 + self.columns), "float32")
        self.filled = (0, 0)  # (first step, count) written by the last fill

    def fill(self, start: int, count, rows) -> None:
        """Stores `rows(steps)` (an array of shape `(len(steps), 1 +
        columns)`) for the `count` steps from `start` (at most `capacity`;
        None: `capacity`)."""
        count = self.capacity if not count else min(int(count), self.capacity)
        steps = np.arange(int(start), int(start) + count)
        self.host[steps % self.capacity] = rows(steps)
        self.variable.assign(self.host)
        self.filled = (int(start), count)

    def covers(self, step: int) -> bool:
        """Whether the last fill wrote `step`'s row."""
        start, count = self.filled
        return start <= int(step) < start + count

    def row(self, step):
        """The row of `step`, inside the compiled step: one gather."""
        index = ops.cast(ops.mod(step, self.capacity), "int32")
        return ops.take(self.variable.value, index, axis=0)

    def host_row(self, step: int):
        """The row of `step` from the host copy (eager PyTorch)."""
        return self.host[int(step) % self.capacity]
