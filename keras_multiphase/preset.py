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
import re
from collections.abc import Mapping

import yaml

from keras_multiphase._preset_files import presets, shipped
from keras_multiphase._validation import check_log_dir
from keras_multiphase.callbacks import (
    AdaptiveBatch,
    LossWeightBalancer,
    OneCycle,
    PhaseLR,
    PlateauLR,
    WarmupCosineRestarts,
)

CALLBACKS = {
    cls.__name__: cls
    for cls in (
        PhaseLR,
        OneCycle,
        WarmupCosineRestarts,
        PlateauLR,
        LossWeightBalancer,
        AdaptiveBatch,
    )
}
TOP_KEYS = ("params", "callbacks")


class PresetError(ValueError):
    """A preset that cannot be loaded: names the file, line, key and value."""


def _arguments(name: str) -> list[str]:
    """Constructor argument names of callback class `name`."""
    parameters = inspect.signature(CALLBACKS[name].__init__).parameters
    return [p for p in parameters if p != "self"]


def _suggest(name, options) -> str:
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


# Limits on a preset file: presets are a few hundred bytes; these bound the
# work a hostile or broken file can cause.
MAX_BYTES = 1 << 20  # 1 MiB of text
MAX_DEPTH = 32  # nested mappings / lists
MAX_NODES = 100_000  # values after alias expansion


def _read(name_or_path: str) -> tuple[str, str]:
    found = shipped(name_or_path)
    if found is not None:
        return found
    if os.path.isdir(name_or_path):
        raise PresetError(
            f"{name_or_path}: is a directory; a preset is a YAML file or a "
            f"shipped name ({', '.join(presets())})."
        )
    if os.path.exists(name_or_path):
        try:
            with open(name_or_path, "rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise PresetError(f"{name_or_path}: cannot be read ({exc}).") from None
        if len(raw) > MAX_BYTES:
            raise PresetError(
                f"{name_or_path}: is larger than the {MAX_BYTES:,}-byte limit "
                "for a preset file."
            )
        try:
            return name_or_path, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise PresetError(
                f"{name_or_path}, line {line}: is not UTF-8 text (byte "
                f"{raw[exc.start]:#04x} at offset {exc.start})."
            ) from None
    raise PresetError(
        f"Unknown preset {name_or_path!r}: not a shipped preset "
        f"({', '.join(presets())}) nor an existing file."
        f"{_suggest(name_or_path, presets())}"
    )


def _check_structure(text: str, source: str) -> None:
    """Refuses deep nesting and alias bombs before anything is built.

    Reads PyYAML's event stream (an iterative parser: no recursion, no
    alias expansion) and counts the values the document expands to, an
    alias counting as the size of what it names.
    """
    sizes: dict[str, int] = {}
    opened: list[tuple[int, str | None]] = []  # (count at start, anchor)
    expanded = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            opened.append((expanded, event.anchor))
            expanded += 1
            if len(opened) > MAX_DEPTH:
                raise PresetError(
                    f"{source}, line {line}: nests deeper than the limit of "
                    f"{MAX_DEPTH} levels for a preset."
                )
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            start, anchor = opened.pop()
            if anchor is not None:
                sizes[anchor] = expanded - start
        elif isinstance(event, yaml.ScalarEvent):
            expanded += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for _, anchor in opened):
                raise PresetError(
                    f"{source}, line {line}: alias *{event.anchor} refers to a "
                    "value that contains it (a recursive structure); a preset "
                    "holds plain values."
                )
            expanded += sizes.get(event.anchor, 1)
        if expanded > MAX_NODES:
            raise PresetError(
                f"{source}, line {line}: expands (aliases included) to more "
                f"than the limit of {MAX_NODES:,} values for a preset."
            )


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (a second `callbacks:`
    would silently replace the first)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _lines(root) -> dict:
    """Line (1-based) of every key path in a composed YAML node; a node
    reached again through an alias is not walked again."""
    out, seen = {}, set()
    stack = [(root, ())]
    while stack:
        node, path = stack.pop()
        out.setdefault(path, node.start_mark.line + 1)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                out[(*path, key.value)] = key.start_mark.line + 1
                stack.append((value, (*path, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                stack.append((value, (*path, i)))
    return out


def _numeric_strings(value) -> list[str]:
    """Strings that read as numbers: YAML 1.1 (PyYAML) reads `1e-5` as the
    string '1e-5' (a float needs a dot: `1.0e-5`)."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return []
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _numeric_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _numeric_strings(v)]
    return []


def _is_ref(value) -> bool:
    return isinstance(value, str) and value.startswith("$")


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
        out = {}
        for k, v in value.items():
            v = _substitute(v, params, (*where, k), error)
            # A `$name` key stands for the parameter's value, or for each of
            # its items (`layer_rates: {$trunk: 0}` with trunk=["a", "b*"]).
            keys = _substitute(k, params, where, error) if _is_ref(k) else k
            for key in keys if isinstance(keys, (list, tuple)) else [keys]:
                out[key] = v
        return out
    if isinstance(value, list):
        return [_substitute(v, params, (*where, i), error) for i, v in enumerate(value)]
    return value


def _refs(value) -> list[str]:
    """The `$name` parameters a raw entry refers to, keys included."""
    if _is_ref(value):
        return [value[1:]]
    if isinstance(value, Mapping):
        return [n for k, v in value.items() for n in [*_refs(k), *_refs(v)]]
    if isinstance(value, list):
        return [n for v in value for n in _refs(v)]
    return []


def _naming_params(error, entry, params):
    """The entry's error factory, its messages ending with the values of
    the parameters the entry uses: a bad `trunk_ratio` shows up as a bad
    `layer_rates` value, and the user set `trunk_ratio`."""
    used = {n: params[n] for n in dict.fromkeys(_refs(entry)) if n in params}
    if not used:
        return error

    def make(path, message):
        shown = ", ".join(f"{n}={v!r}" for n, v in used.items())
        return error(path, f"{message} (the entry's parameters: {shown})")

    return make


def load_preset(name_or_path: str, **overrides) -> list[tuple]:
    """Reads a preset: `(class name, config, key path, error factory)` per
    callback, overrides applied."""
    source, data, error = _parse(name_or_path)
    params, entries = _top_level(data, source, error)
    rebuild = overrides.pop("rebuild", None)
    dotted = _override_params(params, overrides, source)
    out, errors = [], []
    for i, entry in enumerate(entries):
        item = _entry(("callbacks", i), entry, params, error)
        errors.append(_naming_params(error, entry, params))
        label = item[3]
        if label is not None and label in [other[3] for other in out]:
            raise error((*item[2][:2], "name"), f"repeats the entry name {label!r}.")
        out.append(item)
    originals = [_copied(item[1]) for item in out]
    touched = {}  # entry index -> the dotted overrides that changed it
    for key, value in dotted.items():
        entry = _apply_dotted(out, key, value, source)
        touched.setdefault(next(i for i, e in enumerate(out) if e is entry), []).append(
            key
        )
    if rebuild is not None:
        _set_rebuild(out, rebuild, source)
    return [
        (
            name,
            config,
            path,
            _override_error(errors[i], touched[i], source, name, originals[i])
            if i in touched
            else errors[i],
        )
        for i, (name, config, path, _) in enumerate(out)
    ]


def _copied(config):
    """A deep copy of `config` that keeps what can be called (a layer given
    as `trunk=`, `rebuild=`'s function) as it is: a copied layer is not the
    model's, and matches none of its layers."""
    memo = {}

    def keep(value):
        if callable(value):
            memo[id(value)] = value
        elif isinstance(value, Mapping):
            for key, item in value.items():
                keep(key)
                keep(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                keep(item)

    keep(config)
    return copy.deepcopy(config, memo)


def _override_error(error, keys, source, name, original):
    """The error factory of an entry that dotted overrides changed: an
    invalid result is blamed on the overrides (not on a line of the YAML
    file) when the entry was valid without them."""

    def make(path, message):
        try:
            CALLBACKS[name](**_copied(original))
        except (ValueError, TypeError):
            return error(path, message)  # invalid in the file already
        shown = ", ".join(f"`{key}`" for key in keys)
        return PresetError(f"{source}: override {shown} {message}")

    return make


def _parse(name_or_path: str):
    """The preset's source, its YAML data, and a factory of `PresetError`s
    that name a key path and its line."""
    source, text = _read(name_or_path)
    try:
        _check_structure(text, source)
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
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

    return source, data, error


def _top_level(data, source: str, error) -> tuple[dict, list]:
    """The preset's `params` (a copy) and `callbacks`, checked."""
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
    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        raise error(
            ("params",),
            "must map parameter names to values, e.g. `params: {peak_lr: auto}`. "
            f"Received: {params!r}",
        )
    entries = data["callbacks"]
    if not isinstance(entries, list):
        raise error(("callbacks",), f"must be a list. Received: {entries!r}")
    return dict(params), entries


def _override_params(params: dict, overrides: dict, source: str) -> dict:
    """Sets the overridden `params`; returns the dotted overrides."""
    for key, value in overrides.items():
        if "." in key:
            continue
        if key not in params:
            raise PresetError(
                f"{source}: override `{key}` matches no parameter of this "
                f"preset (parameters: {sorted(params)}).{_suggest(key, params)}"
            )
        params[key] = value
    return {k: v for k, v in overrides.items() if "." in k}


def _entry(path: tuple, entry, params: dict, error) -> list:
    """One `callbacks` entry, checked: `[class name, config with the params
    substituted, key path, label]`."""
    label = entry.get("name") if isinstance(entry, Mapping) else None
    classes = [k for k in entry if k != "name"] if isinstance(entry, Mapping) else []
    if len(classes) != 1 or (label is not None and not isinstance(label, str)):
        raise error(
            path,
            "must be one `ClassName: {arguments}` mapping, with an optional "
            f"`name: <str>` to address it in overrides. Received: {entry!r}",
        )
    name, config = classes[0], entry[classes[0]]
    if config is not None and not isinstance(config, Mapping):
        raise error(
            (*path, name),
            f"must map {name}'s argument names to values, e.g. "
            f"`- {name}: {{...}}`. Received: {config!r}",
        )
    if name not in CALLBACKS:
        raise error(
            path,
            f"names unknown callback {name!r}; known: {sorted(CALLBACKS)}."
            f"{_suggest(name, CALLBACKS)}",
        )
    config = _substitute(dict(config or {}), params, (*path, name), error)
    allowed = _arguments(name)
    for key in config:
        if key not in allowed:
            raise error(
                (*path, name, key),
                f"is not an argument of {name}; allowed: {allowed}."
                f"{_suggest(key, allowed)}",
            )
    return [name, config, (*path, name), label]


def _set_rebuild(entries, rebuild, source: str) -> None:
    """Gives `rebuild` to the preset's AdaptiveBatch."""
    if not any(item[0] == "AdaptiveBatch" for item in entries):
        raise PresetError(
            f"{source}: override `rebuild` given, but this preset has no AdaptiveBatch."
        )
    for item in entries:
        if item[0] == "AdaptiveBatch":
            item[1]["rebuild"] = rebuild


_ADDRESS = re.compile(r"(?P<head>[A-Za-z_][\w-]*)(\[(?P<index>\d+)\])?")


def _target_entry(entries, key, source):
    """The one entry an override's first part names: a class name (when
    the preset has one entry of that class), `Class[i]` (the i-th entry of
    that class) or an entry's `name`."""
    head, *rest = key.split(".")
    found = _ADDRESS.fullmatch(head)
    if found is None or not rest:
        raise PresetError(
            f"{source}: override `{key}` must be `<entry>.<argument>[.<key>...]`, "
            "where <entry> is a class name (`PlateauLR`), a class name with "
            "its position among that class's entries (`WarmupCosineRestarts[1]`) "
            "or an entry's `name`."
        )
    head, index = found["head"], found["index"]
    named = [item for item in entries if item[3] == head]
    if named and index is None:
        return named[0], rest
    same = [item for item in entries if item[0] == head]
    if not same:
        names = [item[3] for item in entries if item[3]]
        raise PresetError(
            f"{source}: override `{key}` matches no entry (callbacks: "
            f"{[item[0] for item in entries]}; names: {names})."
            f"{_suggest(head, [item[0] for item in entries] + names)}"
        )
    if index is not None:
        if int(index) >= len(same):
            raise PresetError(
                f"{source}: override `{key}`: this preset has {len(same)} "
                f"{head} entr{'y' if len(same) == 1 else 'ies'} (positions 0 to "
                f"{len(same) - 1}). Received position {index}."
            )
        return same[int(index)], rest
    if len(same) > 1:
        tail = ".".join(rest)
        choices = [f"`{head}[{i}].{tail}`" for i in range(len(same))]
        choices += [f"`{item[3]}.{tail}`" for item in same if item[3]]
        raise PresetError(
            f"{source}: override `{key}` is ambiguous: this preset has "
            f"{len(same)} {head} entries. Address one: {', '.join(choices)}."
        )
    return same[0], rest


def _apply_dotted(entries, key, value, source) -> list:
    """`"PhaseLR.phases.1.ratio"` -> that nested value of one entry's
    config; a missing last key is set (an argument the YAML omits).
    Returns the entry."""
    entry, rest = _target_entry(entries, key, source)
    name, config = entry[0], entry[1]
    target = config
    for part in rest[:-1]:
        target = _step(target, part, key, source)
    last = rest[-1]
    if isinstance(target, list):
        index = int(last) if last.isdigit() else None
        if index is None or index >= len(target):
            raise PresetError(f"{source}: override `{key}` matches nothing.")
        target[index] = value
        return entry
    if not isinstance(target, dict):
        raise PresetError(f"{source}: override `{key}` matches nothing.")
    if target is config:
        allowed = _arguments(name)
        if last not in allowed:
            raise PresetError(
                f"{source}: override `{key}`: `{last}` is not an argument of "
                f"{name}; allowed: {allowed}.{_suggest(last, allowed)}"
            )
    target[last] = value
    return entry


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
    (`**{"PhaseLR.phases.1.ratio": 0.5}`) of one entry: a class name when
    the preset has one entry of that class, `Class[i]` (its i-th entry of
    that class) or the entry's `name` (`**{"restarts.cycle_mult": 3.0}`); an
    argument the YAML omits can be set (`**{"PlateauLR.cooldown": 2}`); an
    override that names several entries is an error. `rebuild=` feeds
    AdaptiveBatch. An
    AdaptiveBatch entry without a `rebuild` is skipped; the first fit says
    so once, at train begin, when its `verbose` is not 0. `log_dir=` is
    where every step's rate, phase and the rest are written for
    TensorBoard when `fit` has no `keras.callbacks.TensorBoard` (see
    `PhaseLR`).

    Example:

    >>> callbacks = preset("multiphase", peak_lr=3e-5)
    >>> [type(c).__name__ for c in callbacks][:2]
    ['PhaseLR', 'WarmupCosineRestarts']

    Args:
        name_or_path: Str. A shipped preset (see `presets()`) or a YAML file.
        **overrides: Parameter values, dotted paths, `rebuild` and
            `log_dir`.

    Returns:
        A list of `keras.callbacks.Callback`.
    """
    log_dir = check_log_dir(overrides.pop("log_dir", None))
    callbacks, notes = [], []
    for name, config, path, error in load_preset(name_or_path, **overrides):
        if name == "AdaptiveBatch" and "rebuild" not in config:
            notes.append(
                f"keras_multiphase: {name_or_path}'s batch-size schedule is "
                "off (pass rebuild=... to preset() to use it)."
            )
            continue
        try:
            callbacks.append(CALLBACKS[name](**_copied(config)))
        except (ValueError, TypeError) as exc:
            hint = ""
            numbers = _numeric_strings(config)
            if numbers:
                hint = (
                    f" Note: {numbers[0]!r} is a string here: YAML 1.1 (PyYAML) "
                    "reads a float only with a dot, so write `1.0e-5`, not "
                    "`1e-5`."
                )
            raise error(path, f"is invalid: {exc}{hint}") from None
    if notes and callbacks:
        # Said once, when training starts, if `fit`'s verbose allows.
        callbacks[0].train_begin_notes = notes
    if log_dir is not None and callbacks:
        callbacks[0].log_dir = log_dir  # a rate callback: the engine reads it
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
