"""Argument checks whose messages name the argument and the value."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(name: str, value, allowed: str = "a number") -> float:
    if not _is_number(value) or not math.isfinite(float(value)):
        raise ValueError(
            f"Argument `{name}` must be {allowed}. Received: {name}={value!r}"
        )
    return float(value)


def check_positive(name: str, value) -> float:
    value_f = check_number(name, value, "a finite number > 0")
    if value_f <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value!r}")
    return value_f


def check_non_negative(name: str, value) -> float:
    value_f = check_number(name, value, "a finite number >= 0")
    if value_f < 0:
        raise ValueError(f"Argument `{name}` must be >= 0. Received: {name}={value!r}")
    return value_f


def check_int(name: str, value, minimum: int = 0) -> int:
    if (
        not _is_number(value)
        or not math.isfinite(float(value))  # int() of inf or NaN would raise
        or float(value) != int(value)
        or int(value) < minimum
    ):
        raise ValueError(
            f"Argument `{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(
            f"Argument `{name}` must be a bool. Received: {name}={value!r}"
        )
    return value


def check_ratio(name: str, value, upper_open: bool = False) -> float:
    value_f = check_number(name, value, "a number in [0, 1]")
    if value_f < 0 or value_f > 1 or (upper_open and value_f == 1):
        bound = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(
            f"Argument `{name}` must be in {bound}. Received: {name}={value!r}"
        )
    return value_f


def check_mapping_keys(name: str, value, allowed, example: str) -> dict:
    """A mapping whose keys are all in `allowed`; returns a copy."""
    if not isinstance(value, Mapping):
        raise ValueError(
            f"Argument `{name}` must be a mapping such as {example}. "
            f"Received: {name}={value!r}"
        )
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ValueError(
            f"Argument `{name}` has unknown key(s) {unknown}. "
            f"Allowed keys: {list(allowed)}. Received: {name}={dict(value)!r}"
        )
    return dict(value)


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(
            f"Argument `{name}` must be one of {tuple(choices)}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_verbose(name: str, value) -> int:
    """`fit`'s verbosity: 0 silent, 1 a progress bar, 2 one line when done
    (what Keras recommends for logs that are not a terminal), `"auto"` 1."""
    if value == "auto":
        return 1
    if isinstance(value, bool) or value not in (0, 1, 2):
        raise ValueError(
            f"Argument `{name}` must be 0, 1, 2 or 'auto', as in `fit`. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_log_dir(value):
    """None, or a folder path (str or `os.PathLike`) for per-step logs."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ValueError(
            "Argument `log_dir` must be a folder path (str or os.PathLike) or "
            f"None. Received: log_dir={value!r}"
        )
    return value
