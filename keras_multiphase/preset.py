"""YAML presets: a list of callbacks from a shipped name or a file.

A preset file has two top-level keys:

```yaml
params:            # values the callbacks refer to as $name
  peak_lr: 5.0e-5
callbacks:         # one {ClassName: {constructor arguments}} per callback
  - PhaseLR:
      phases:
        - {name: warm, lr: $peak_lr, fraction: 0.5}
        - {name: rest, lr: 1.0e-6}
```

Keys are the constructor argument names, which are the `get_config()` keys.
Files are read with a safe loader only.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import os
import sys
from collections.abc import Mapping

import yaml

from keras_multiphase._preset_files import presets, shipped
from keras_multiphase.callbacks import (
    AdaptiveBatch,
    LossWeightBalancer,
    PhaseLR,
    PlateauLR,
    WarmupCosineRestarts,
)

CALLBACKS = {
    cls.__name__: cls
    for cls in (
        PhaseLR,
        WarmupCosineRestarts,
        PlateauLR,
        LossWeightBalancer,
        AdaptiveBatch,
    )
}
TOP_KEYS = ("params", "callbacks")


class PresetError(ValueError):
    """A preset that cannot be loaded: names the file, line, key and value."""


def _suggest(name, options) -> str:
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _read(name_or_path: str) -> tuple[str, str]:
    found = shipped(name_or_path)
    if found is not None:
        return found
    if os.path.exists(name_or_path):
        with open(name_or_path) as f:
            return name_or_path, f.read()
    raise PresetError(
        f"Unknown preset {name_or_path!r}: not a shipped preset "
        f"({', '.join(presets())}) nor an existing file."
        f"{_suggest(name_or_path, presets())}"
    )


def _lines(node, path=()) -> dict:
    """Line (1-based) of every key path in a composed YAML node."""
    out = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out.update(_lines(value, (*path, key.value)))
            out[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            out.update(_lines(value, (*path, i)))
    return out


def _substitute(value, params, where, error):
    if isinstance(value, str) and value.startswith("$"):
        name = value[1:]
        if name not in params:
            raise error(
                where,
                f"refers to ${name}, which is not in `params` "
                f"({sorted(params)}).{_suggest(name, params)}",
            )
        return params[name]
    if isinstance(value, Mapping):
        return {k: _substitute(v, params, (*where, k), error) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params, (*where, i), error) for i, v in enumerate(value)]
    return value


def load_preset(name_or_path: str, **overrides) -> list[tuple]:
    """Reads a preset: `(class name, config, key path, error factory)` per
    callback, overrides applied."""
    source, text = _read(name_or_path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PresetError(
            f"{source}{line}: malformed YAML ({problem}). Only plain YAML is "
            "accepted (no !!python tags)."
        ) from None
    lines = _lines(node) if node is not None else {}

    def error(path, message):
        line = lines.get(tuple(path))
        at = f", line {line}" if line else ""
        key = ".".join(str(p) for p in path)
        return PresetError(f"{source}{at}: `{key}` {message}")

    if not isinstance(data, Mapping) or "callbacks" not in data:
        raise PresetError(
            f"{source}: a preset is a mapping with `callbacks` (a list) and "
            f"optionally `params`. Received: {type(data).__name__}"
        )
    for key in data:
        if key not in TOP_KEYS:
            raise error(
                (key,),
                f"is not a preset key; allowed: {list(TOP_KEYS)}."
                f"{_suggest(key, TOP_KEYS)}",
            )
    params = dict(data.get("params") or {})
    entries = data["callbacks"]
    if not isinstance(entries, list):
        raise error(("callbacks",), f"must be a list. Received: {entries!r}")
    rebuild = overrides.pop("rebuild", None)
    dotted = {k: v for k, v in overrides.items() if "." in k}
    for key, value in overrides.items():
        if "." in key:
            continue
        if key not in params:
            raise PresetError(
                f"{source}: override `{key}` matches no parameter of this "
                f"preset (parameters: {sorted(params)}).{_suggest(key, params)}"
            )
        params[key] = value
    out = []
    for i, entry in enumerate(entries):
        path = ("callbacks", i)
        if not isinstance(entry, Mapping) or len(entry) != 1:
            raise error(
                path,
                f"must be one `ClassName: {{arguments}}` mapping. Received: {entry!r}",
            )
        ((name, config),) = entry.items()
        if name not in CALLBACKS:
            raise error(
                path,
                f"names unknown callback {name!r}; known: {sorted(CALLBACKS)}."
                f"{_suggest(name, CALLBACKS)}",
            )
        config = _substitute(dict(config or {}), params, (*path, name), error)
        allowed = [
            p
            for p in inspect.signature(CALLBACKS[name].__init__).parameters
            if p != "self"
        ]
        for key in config:
            if key not in allowed:
                raise error(
                    (*path, name, key),
                    f"is not an argument of {name}; allowed: {allowed}."
                    f"{_suggest(key, allowed)}",
                )
        out.append([name, config, (*path, name)])
    for key, value in dotted.items():
        _apply_dotted(out, key, value, source)
    if rebuild is not None:
        if not any(name == "AdaptiveBatch" for name, _, _ in out):
            raise PresetError(
                f"{source}: override `rebuild` given, but this preset has no "
                "AdaptiveBatch."
            )
        for item in out:
            if item[0] == "AdaptiveBatch":
                item[1]["rebuild"] = rebuild
    return [(name, config, path, error) for name, config, path in out]


def _apply_dotted(entries, key, value, source) -> None:
    """`"PhaseLR.phases.1.lr"` -> that nested value of the PhaseLR config."""
    name, *rest = key.split(".")
    matches = [item for item in entries if item[0] == name]
    if not matches or not rest:
        raise PresetError(
            f"{source}: override `{key}` matches nothing (callbacks: "
            f"{[item[0] for item in entries]})."
        )
    for item in matches:
        target = item[1]
        for part in rest[:-1]:
            target = _step(target, part, key, source)
        last = rest[-1]
        if isinstance(target, list):
            index = int(last) if last.isdigit() else None
            if index is None or index >= len(target):
                raise PresetError(f"{source}: override `{key}` matches nothing.")
            target[index] = value
        elif isinstance(target, dict) and last in target:
            target[last] = value
        else:
            raise PresetError(f"{source}: override `{key}` matches nothing.")


def _step(target, part, key, source):
    if isinstance(target, list) and part.isdigit() and int(part) < len(target):
        return target[int(part)]
    if isinstance(target, dict) and part in target:
        return target[part]
    raise PresetError(f"{source}: override `{key}` matches nothing.")


def preset(name_or_path: str, **overrides) -> list:
    """Returns the callbacks of a preset, ready for `model.fit`.

    Keyword arguments override the preset's `params` (e.g. `peak_lr=3e-5`);
    a dotted key reaches a nested value
    (`**{"PhaseLR.phases.1.lr": 3e-5}`); `rebuild=` feeds AdaptiveBatch. An
    AdaptiveBatch entry without a `rebuild` is skipped with one message.

    Example:

    >>> callbacks = preset("multiphase", peak_lr=3e-5)
    >>> [type(c).__name__ for c in callbacks][:2]
    ['PhaseLR', 'WarmupCosineRestarts']

    Args:
        name_or_path: Str. A shipped preset (see `presets()`) or a YAML file.
        **overrides: Parameter values, dotted paths, and `rebuild`.

    Returns:
        A list of `keras.callbacks.Callback`.
    """
    callbacks = []
    for name, config, path, error in load_preset(name_or_path, **overrides):
        if name == "AdaptiveBatch" and "rebuild" not in config:
            print(
                "keras_multiphase: preset's batch-size schedule skipped: pass "
                f"rebuild=... to preset() to use it ({name_or_path}).",
                file=sys.stderr,
            )
            continue
        try:
            callbacks.append(CALLBACKS[name](**copy.deepcopy(config)))
        except ValueError as exc:
            raise error(path, f"is invalid: {exc}") from None
    return callbacks


def preset_to_yaml(callbacks) -> str:
    """Writes callbacks of this package as preset YAML (loadable by
    `preset()`); an AdaptiveBatch's `rebuild` function is left out."""
    entries = []
    for callback in callbacks:
        name = type(callback).__name__
        if name not in CALLBACKS:
            raise PresetError(
                f"{name} is not a keras_multiphase callback; a preset can hold "
                f"{sorted(CALLBACKS)}."
            )
        config = copy.deepcopy(callback.get_config())
        config.pop("rebuild", None)
        entries.append({name: config})
    return yaml.safe_dump({"callbacks": entries}, sort_keys=False)
