"""Optional dependencies, each named with the extra that installs it."""

from __future__ import annotations

import importlib

EXTRAS = {"matplotlib": "plot"}


def require(module: str, what: str):
    """Imports `module`, or raises `ModuleNotFoundError` saying which extra
    of this package installs it and what needed it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"{what} needs {module}: pip install 'keras-multiphase[{EXTRAS[module]}]'",
            name=module,
        ) from exc
