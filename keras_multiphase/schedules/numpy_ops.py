"""The few `keras.ops` the schedules use, in NumPy (float32).

The schedule functions take an `xp` argument: `keras.ops` inside the
compiled train step, this module where a value is needed in Python (logs,
plateau decisions, previews, and per-epoch rate tables on eager PyTorch).
One implementation, two evaluators; the tests check that they agree.
"""

import numpy as np

abs = np.abs  # noqa: A001
cos = np.cos
equal = np.equal
expm1 = np.expm1
floor = np.floor
log1p = np.log1p
logical_and = np.logical_and
logical_or = np.logical_or
maximum = np.maximum
minimum = np.minimum
power = np.power
round = np.round  # noqa: A001
where = np.where


def convert_to_tensor(x, dtype="float32"):
    return np.asarray(x, dtype=dtype)


def cast(x, dtype):
    return np.asarray(x).astype(dtype)


def zeros_like(x):
    return np.zeros_like(np.asarray(x, dtype="float32"))


def ones_like(x):
    return np.ones_like(np.asarray(x, dtype="float32"))


def clip(x, low, high):
    return np.clip(x, low, high)


def take(x, indices):
    return np.take(x, indices)


def read(variable):
    """The value of a `keras.Variable`, as a float32 array."""
    return np.asarray(variable.numpy(), dtype="float32")


def value_of(variable, xp):
    """A state variable's value for evaluator `xp`: its tensor inside the
    step (`keras.ops`), a NumPy array from this module (recorded by a
    `Recording` evaluator)."""
    reader = getattr(xp, "read", None)
    return variable.value if reader is None else reader(variable)


class Recording:
    """This evaluator, recording every variable read and the value read:
    the rate table's rows then say what they were computed from."""

    def __init__(self):
        self.reads: list = []

    def __getattr__(self, name):
        try:
            return globals()[name]
        except KeyError:
            raise AttributeError(name) from None

    def read(self, variable):
        value = read(variable)
        self.reads.append((variable, value.copy()))
        return value
