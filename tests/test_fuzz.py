"""Hostile input, property-based: every failure is the documented error.

Shipped presets with one scalar replaced by a hostile value, and callback
constructors called with hostile values, must either work or raise a
`ValueError` (`PresetError` is one) naming what is wrong: never another
exception from deep inside the package, PyYAML or Keras.
"""

import pathlib
import re

import pytest

pytest.importorskip("hypothesis", reason="the [test] extra installs hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import keras_multiphase as km  # noqa: E402

PRESETS = pathlib.Path(km.__file__).parent / "presets"
HOSTILE = st.sampled_from(
    [
        ".inf",
        "-.inf",
        ".nan",
        "-1",
        "0",
        "1e308",
        "[]",
        "{}",
        "[1, 2]",
        "{a: 1}",
        "null",
        "true",
        '"text"',
        "&a [*a]",
        "$missing",
        "999999999999999999999",
    ]
)
SCALAR = re.compile(r"(:\s+)([^\s{\[#][^#\n]*?)(\s*(#.*)?)$", re.M)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(p.stem for p in PRESETS.glob("*.yaml"))),
    which=st.integers(min_value=0, max_value=200),
    value=HOSTILE,
)
def test_a_mutated_preset_builds_or_raises_a_preset_error(
    tmp_path_factory, name, which, value
):
    text = (PRESETS / f"{name}.yaml").read_text()
    spots = list(SCALAR.finditer(text))
    spot = spots[which % len(spots)]
    mutated = text[: spot.start(2)] + value + text[spot.end(2) :]
    path = tmp_path_factory.mktemp("fuzz") / f"{name}.yaml"
    path.write_text(mutated)
    try:
        km.preset(str(path))
    except km.PresetError as error:  # a constructor's ValueError is wrapped
        message = str(error)
        assert message.startswith(str(path)), message
        line = mutated[: spot.start(2)].count("\n") + 1
        key = re.findall(r"([\w-]+)\s*$", mutated[: spot.start(1)])
        # A parse error is found where the parser stopped: that line or the next.
        lines = (f"line {line}:", f"line {line + 1}: malformed")
        assert any(at in message for at in lines) or any(
            name in message for name in _names_for(key, mutated)
        ), (key, line, message)


def _names_for(key, text) -> set:
    """What an error about the value at `key` may name: the key, and every
    argument that takes it as `$key` (a preset parameter)."""
    if not key:
        return set()
    users = re.findall(rf"([\w-]+):\s*\${key[0]}\b", text)
    return {key[0], *users}


CONSTRUCTORS = {
    "PlateauLR": ("patience", "cooldown", "factor", "min_delta", "min_lr"),
    "WarmupCosineRestarts": (
        "warmup_epochs",
        "first_cycle_epochs",
        "cycle_mult",
        "min_ratio",
        "max_cycles",
    ),
    "LossWeightBalancer": ("warmup_epochs", "update_every", "temperature"),
    "OneCycle": ("max_lr", "pct_start", "div_factor", "final_div_factor"),
}
VALUES = st.sampled_from(
    [float("inf"), -float("inf"), float("nan"), -1, 0, 1e308, 10**30, "x", None, [1]]
)


@settings(max_examples=80, deadline=None)
@given(
    pair=st.sampled_from(
        [(cls, arg) for cls, args in CONSTRUCTORS.items() for arg in args]
    ),
    value=VALUES,
)
def test_hostile_constructor_values_raise_a_value_error_or_work(pair, value):
    cls, argument = pair
    try:
        getattr(km, cls)(**{argument: value})
    except ValueError as error:
        assert f"`{argument}`" in str(error) or argument in str(error), str(error)
    except TypeError as error:  # a wrong type may be said by Python itself
        pytest.fail(f"{cls}({argument}={value!r}) raised TypeError: {error}")
