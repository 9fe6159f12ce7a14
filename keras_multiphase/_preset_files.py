"""The YAML presets shipped inside the package (no Keras import here, so
`python -m keras_multiphase presets` answers without a backend)."""

from __future__ import annotations

from importlib import resources


def _folder():
    return resources.files("keras_multiphase") / "presets"


def presets() -> list[str]:
    """Names of the presets shipped with the package."""
    return sorted(
        p.name[: -len(".yaml")] for p in _folder().iterdir() if p.name.endswith(".yaml")
    )


def shipped(name: str) -> tuple[str, str] | None:
    """`(path, text)` of a shipped preset, or None."""
    if name not in presets():
        return None
    path = _folder() / f"{name}.yaml"
    return str(path), path.read_text()
