"""PhaseLR: the learning rate moves through named phases."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from keras_multiphase import _keras_internals
from keras_multiphase._messages import say
from keras_multiphase._state import unwrap_optimizer
from keras_multiphase._validation import (
    check_bool,
    check_choice,
    check_int,
    check_log_dir,
    check_mapping_keys,
    check_number,
    check_positive,
)
from keras_multiphase.callbacks.lr_callback import LRCallback
from keras_multiphase.layer_groups import check_rates, phase_groups
from keras_multiphase.plateau import PlateauDetector
from keras_multiphase.schedules import numpy_ops
from keras_multiphase.schedules.phase_schedule import TRANSITIONS, NamedPhases

LENGTH_KEYS = ("epochs", "steps", "fraction")
PHASE_KEYS = (
    "name",
    "lr",
    "ratio",
    *LENGTH_KEYS,
    "transition",
    "transition_steps",
    "plateau",
    "layer_rates",
    "train_bn",
)
PLATEAU_KEYS = ("monitor", "patience", "min_delta", "mode", "min_delta_mode")
RANGE_TEST_KEYS = (
    "start_lr",
    "end_lr",
    "num_steps",
    "suggestion",
    "diverge_threshold",
    "seed",
)
AUTO = "auto"


def _normalize_phase(i: int, phase, last: bool, relative: bool) -> dict:
    """One phase, checked, with its defaults filled in."""
    where = f"phases[{i}]"
    phase = check_mapping_keys(where, phase, PHASE_KEYS, "{'lr': 1e-5, 'epochs': 2}")
    key, lr = _phase_rate(where, phase, relative)
    given = _phase_length_keys(where, phase, last)
    out = {"name": phase.get("name", f"phase_{i}"), key: lr}
    if not isinstance(out["name"], str) or not out["name"]:
        raise ValueError(
            f"Argument `{where}.name` must be a non-empty str. "
            f"Received: {where}.name={out['name']!r}"
        )
    for key in given:
        if key == "steps":
            out[key] = check_int(f"{where}.steps", phase[key], minimum=1)
        else:
            out[key] = check_positive(f"{where}.{key}", phase[key])
            if key == "fraction" and out[key] > 1:
                raise ValueError(
                    f"Argument `{where}.fraction` must be in (0, 1]. "
                    f"Received: {where}.fraction={phase[key]!r}"
                )
    out["transition"] = check_choice(
        f"{where}.transition", phase.get("transition", "step"), TRANSITIONS
    )
    span = phase.get("transition_steps", 0)
    if span != "phase":
        span = check_int(f"{where}.transition_steps", span)
    out["transition_steps"] = span
    if phase.get("plateau") is not None:
        out["plateau"] = _phase_plateau(where, phase["plateau"], last)
    if phase.get("layer_rates") is not None:
        out["layer_rates"] = check_rates(f"{where}.layer_rates", phase["layer_rates"])
    if phase.get("train_bn") is not None:
        out["train_bn"] = check_bool(f"{where}.train_bn", phase["train_bn"])
    return out


def _phase_rate(where: str, phase, relative: bool) -> tuple[str, float]:
    """`("lr", rate)` or `("ratio", multiple of the peak)`: exactly one."""
    if ("lr" in phase) == ("ratio" in phase):
        raise ValueError(
            f"Argument `{where}` must give its learning rate as exactly one of "
            "`lr` (a rate) or `ratio` (a multiple of `peak_lr`). "
            f"Received: {where}={dict(phase)!r}"
        )
    if "ratio" in phase and not relative:
        raise ValueError(
            f"Argument `{where}.ratio` is a multiple of `peak_lr`, but PhaseLR "
            "has no `peak_lr`. Pass peak_lr=<rate> or peak_lr='auto', or give "
            f"`lr`. Received: {where}={dict(phase)!r}"
        )
    key = "lr" if "lr" in phase else "ratio"
    return key, check_positive(f"{where}.{key}", phase[key])


def _phase_length_keys(where: str, phase, last: bool) -> list[str]:
    """The length key the phase gives (at most one); only the last phase, or
    one a plateau ends, may give none."""
    given = [k for k in LENGTH_KEYS if phase.get(k) is not None]
    if len(given) > 1:
        raise ValueError(
            f"Argument `{where}` must give at most one of {list(LENGTH_KEYS)}."
            f" Received: {where}={dict(phase)!r}"
        )
    if not given and not last and phase.get("plateau") is None:
        raise ValueError(
            f"Argument `{where}` needs a length ({', '.join(LENGTH_KEYS)}) or "
            "a `plateau` that ends it; only the last phase may omit both. "
            f"Received: {where}={dict(phase)!r}"
        )
    return given


def _phase_plateau(where: str, plateau, last: bool) -> dict:
    """A plateau that ends the phase, checked as PlateauLR checks one."""
    if last:
        raise ValueError(
            f"Argument `{where}.plateau` cannot be set on the last phase: "
            "there is no next phase to advance to."
        )
    plateau = check_mapping_keys(
        f"{where}.plateau",
        plateau,
        PLATEAU_KEYS,
        "{'monitor': 'val_loss', 'patience': 3}",
    )
    PlateauDetector(prefix=f"{where}.plateau.", **plateau)  # validates
    return plateau


def _validate_phases(phases, relative: bool) -> list[dict]:
    if isinstance(phases, (str, bytes)) or not isinstance(phases, Sequence):
        raise ValueError(
            "Argument `phases` must be a list of mappings such as "
            "[{'lr': 1e-5, 'epochs': 2}, {'lr': 1e-6}]. "
            f"Received: phases={phases!r}"
        )
    if not phases:
        raise ValueError(
            f"Argument `phases` must hold at least one phase. "
            f"Received: phases={phases!r}"
        )
    out = [
        _normalize_phase(i, p, i == len(phases) - 1, relative)
        for i, p in enumerate(phases)
    ]
    names = [p["name"] for p in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"Phase names must be unique. Received duplicate name(s) "
            f"{duplicates} in phases={names}"
        )
    fractions = [p.get("fraction") for p in out]
    total = sum(f for f in fractions if f is not None)
    if all(f is not None for f in fractions):
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(
                "When every phase is a `fraction` of the run, the fractions "
                f"must sum to 1. Received fractions {fractions} (sum {total:g})"
            )
    elif total >= 1.0 - 1e-9:
        raise ValueError(
            "Phase fractions leave no room for the other phases. Received "
            f"fractions {fractions} (sum {total:g}); they must sum to less "
            "than 1 when some phase has no fraction."
        )
    return out


def _label(paths: list[str]) -> str:
    """A group of variables in the logs: its first layer, and how many more."""
    layers = list(dict.fromkeys(p.rsplit("/", 1)[0] for p in paths))
    return layers[0] + (f"+{len(layers) - 1}" if len(layers) > 1 else "")


def _config_of(phase: dict) -> dict:
    """A phase as configuration: layers given as objects by their names."""
    out = dict(phase)
    if "layer_rates" in out:
        out["layer_rates"] = {
            (k if isinstance(k, str) else k.name): v
            for k, v in out["layer_rates"].items()
        }
    return out


@keras.saving.register_keras_serializable(package="keras_multiphase")
class PhaseLR(LRCallback):
    """Moves the learning rate through phases during `fit`.

    Each phase has a rate and a length in `epochs`, `steps` or `fraction`
    of the run's epochs (known when training starts, so a recipe fits any
    `epochs`). The last phase may omit its length and runs to the end. A
    phase may be entered through a `"linear"` or `"cosine"` transition from
    the previous rate over `transition_steps` steps, and may end early on a
    plateau of a monitored metric (`plateau: {monitor, patience,
    min_delta}`); a phase with a `plateau` and no length ends only then.

    Each step's rate is read inside the compiled train step from the
    engine's table by `optimizer.iterations` (filled when each epoch
    starts), so boundaries inside an epoch are exact for any
    `steps_per_execution`. PhaseLR is the base of the learning-rate
    composition: `WarmupCosineRestarts`, `PlateauLR` and `AdaptiveBatch`
    multiply it. If the optimizer was built with its own
    `LearningRateSchedule`, PhaseLR replaces it during this fit (with a
    warning) and restores it at the end. Logs `learning_rate` (the rate at
    the epoch's first step) and `phase` (its index) for each epoch.

    A recipe can be written free of scale: with `peak_lr`, a phase may give
    `ratio` (a multiple of the peak) instead of `lr`. `peak_lr="auto"` finds
    the peak with a learning-rate range test (`keras_multiphase.find_lr`) on
    the training data when training starts, with the model left as it was
    and the phases' `layer_rates` lifted (the peak is the whole model's,
    which they then scale). The sweep reports as `fit`'s `verbose` allows: a
    titled progress bar (or its one line), then one line with the peak, the
    rule and the status. The value is logged as `peak_lr` (each epoch, in
    `History`), the whole sweep is `fit`'s returned
    `history.range_test` (an `LRFinderResult`: `.plot()` draws it), and
    the peak is kept in the
    optimizer's state, so a run resumed with `BackupAndRestore` or
    `initial_epoch` reuses it instead of testing again. When the test is
    inconclusive (the loss never fell, never diverged, or was NaN at once)
    or the data cannot be re-read (a generator), the peak falls back to the
    optimizer's own rate, with a warning that says why.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> phase_lr = PhaseLR([
    ...     {"name": "controlled", "lr": 1e-5, "fraction": 0.2},
    ...     {"name": "aggressive", "lr": 5e-5, "fraction": 0.5,
    ...      "transition": "linear", "transition_steps": 4},
    ...     {"name": "fine-tune", "lr": 1e-6},
    ... ])
    >>> history = model.fit(np.ones((32, 4)), np.ones((32, 1)), epochs=10,
    ...                     batch_size=8, callbacks=[phase_lr], verbose=0)
    >>> history.history["phase"]
    [0, 0, 1, 1, 1, 1, 1, 2, 2, 2]

    The same shape relative to a peak found by a range test:

    >>> model.compile(optimizer="adam", loss="mse")
    >>> phase_lr = PhaseLR(peak_lr="auto", phases=[
    ...     {"name": "controlled", "ratio": 0.2, "fraction": 0.2},
    ...     {"name": "aggressive", "ratio": 1.0, "fraction": 0.6},
    ...     {"name": "fine-tune", "ratio": 0.02},
    ... ])
    >>> history = model.fit(np.ones((32, 4)), np.ones((32, 1)), epochs=2,
    ...                     batch_size=8, callbacks=[phase_lr], verbose=0)
    >>> history.history["peak_lr"][0] > 0
    True

    Args:
        phases: List of mappings. Keys: `lr` (float > 0) or, with
            `peak_lr`, `ratio` (float > 0, the rate as a multiple of the
            peak): exactly one is required; one of
            `epochs` (float), `steps` (int) or `fraction` (float in (0, 1]);
            `name` (str, default `"phase_<i>"`); `transition` (`"step"`,
            `"linear"` or `"cosine"`, default `"step"`); `transition_steps`
            (int, default 0, or `"phase"`: the whole phase); `plateau`
            (mapping with `monitor`, `patience`, `min_delta`, `mode`,
            `min_delta_mode`); `layer_rates` (mapping of layer names, glob
            patterns or layers to multipliers of the phase's rate, as
            `LayerRates`'s `rates`: 0 freezes; layers it does not name, and
            every layer in a phase without it, take 1); `train_bn` (bool,
            default False: fastai's `train_bn`): the scale and offset of a
            `BatchNormalization` layer that `layer_rates` freezes train at
            the phase's rate. The multipliers
            change at the phase's first step, inside the step, with no new
            trace.
        peak_lr: Optional float > 0 or `"auto"`. The rate that `ratio`
            multiplies; `"auto"` runs a range test at train begin.
        range_test: Optional mapping of `find_lr` arguments for
            `peak_lr="auto"`: `start_lr`, `end_lr`, `num_steps`,
            `suggestion`, `diverge_threshold`, `seed`.
        verbose: Int. 1 prints a line when a plateau ends a phase, and the
            range test's result even under `fit(verbose=0)`.
        log_dir: Optional folder. Each training step's rate (and phase,
            momentum, loss weights, batch size) is written there as
            TensorBoard event files at each epoch's end, when no
            `keras.callbacks.TensorBoard` is in `fit`'s callbacks (with
            one, they go to its `train` folder): docs/resume.md.
    """

    def __init__(
        self,
        phases: Sequence[Mapping],
        peak_lr: float | str | None = None,
        range_test: Mapping | None = None,
        verbose: int = 0,
        log_dir: str | None = None,
    ):
        super().__init__()
        self.log_dir = check_log_dir(log_dir)
        if peak_lr is not None and peak_lr != AUTO:
            peak_lr = check_number("peak_lr", peak_lr, "a number > 0, 'auto' or None")
            peak_lr = check_positive("peak_lr", peak_lr)
        self.peak_lr = peak_lr
        self.range_test = check_mapping_keys(
            "range_test",
            range_test or {},
            RANGE_TEST_KEYS,
            "{'num_steps': 100, 'suggestion': 'blend'}",
        )
        if self.range_test and peak_lr != AUTO:
            raise ValueError(
                "Argument `range_test` is used only with peak_lr='auto'. "
                f"Received: peak_lr={peak_lr!r}, range_test={self.range_test!r}"
            )
        self.phases = _validate_phases(phases, relative=peak_lr is not None)
        self.verbose = check_int("verbose", verbose)
        self.contribution = NamedPhases(self.phases, relative=peak_lr is not None)
        self.range_test_result = None
        self._detectors = {
            i: PlateauDetector(owner="PhaseLR", **p["plateau"])
            for i, p in enumerate(self.phases)
            if "plateau" in p
        }

    @property
    def phase_lengths(self) -> list[float]:
        """Lengths in steps of all phases but the last, for this fit (known
        from `on_train_begin`; a phase that ends only on a plateau has
        length `NEVER`)."""
        return self.contribution.phase_lengths

    @property
    def phase_names(self) -> list[str]:
        return self.contribution.phase_names

    @property
    def rates(self) -> list[float]:
        """Each phase's rate; a `ratio` phase's needs the peak in effect."""
        peak = self.current_peak_lr() if self.peak_lr is not None else None
        return [p["lr"] if "lr" in p else p["ratio"] * peak for p in self.phases]

    def current_peak_lr(self) -> float | None:
        """The peak in effect: `peak_lr`, or the one the range test found
        (None before it ran)."""
        if self.peak_lr is None:
            return None
        if self.contribution.peak is not None:
            value = float(self.contribution.peak.numpy())
            return value if value > 0 else None
        return None if self.peak_lr == AUTO else float(self.peak_lr)

    def phase_indices(self, names_or_indices) -> list[int]:
        """Maps phase names (or indices) to indices; raises if unknown."""
        return self.contribution.phase_indices(names_or_indices)

    def _create_state(self, store) -> None:
        if self.peak_lr is not None:
            # 0 = not found yet; a resumed run finds the value it used.
            initial = 0.0 if self.peak_lr == AUTO else self.peak_lr
            self.contribution.peak = store.variable(f"{self._key}.peak_lr", initial)
        n = len(self.phases) - 1
        self.contribution.ends = store.variable(f"{self._key}.end_override", [-1.0] * n)
        # The phase lengths (steps) the run follows; -1: none yet.
        self.contribution.planned = store.variable(f"{self._key}.planned", [-1.0] * n)
        for i, detector in self._detectors.items():
            detector.attach(
                store.variable(f"{self._key}.plateau_{i}", detector.initial_state())
            )
        if any("layer_rates" in p or p.get("train_bn") for p in self.phases) and (
            self._optimizer
        ):
            self._scale_layers(store)

    def _scale_layers(self, store) -> None:
        """Groups the model's variables by their phases' `layer_rates`; the
        optimizer updates each group at the rate times the group's
        multiplier, which the step reads from the rate table's row."""
        group_of, table, names = phase_groups(
            self.model,
            [p.get("layer_rates", {}) for p in self.phases],
            [p.get("train_bn", False) for p in self.phases],
        )
        self.contribution.layer_table = np.asarray(table, "float32")
        self.contribution.layer_names = [_label(paths) for paths in names]
        self.contribution.layer_state = store.variable(
            f"{self._key}.layer_rates", table[0], in_step=True
        )
        _keras_internals.scale_variable_updates(
            unwrap_optimizer(self._optimizer),
            self._key,
            group_of,
            self.contribution.layer_state,
        )

    def _end_of_fit(self) -> None:
        if self._optimizer is not None and self.contribution.layer_table is not None:
            _keras_internals.unscale_variable_updates(
                unwrap_optimizer(self._optimizer), self._key
            )
        super()._end_of_fit()

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.contribution.planned.assign(
            np.asarray(self.contribution.lengths or [], "float32")
        )
        for detector in self._detectors.values():
            detector.decide_mode(self.model)
        if self.peak_lr == AUTO and not float(self.contribution.peak.numpy()) > 0:
            # Before the engine installs the composed rate (at the first
            # epoch's start): the sweep trains through its own step.
            with self._whole_model():
                self.contribution.peak.assign(self._find_peak())

    @contextlib.contextmanager
    def _whole_model(self):
        """The phases' layer multipliers at 1 while the range test sweeps: the
        peak is the whole model's, which the phases' `layer_rates` scale
        (a peak taken with a trunk frozen is several times too high for
        the trunk once it trains)."""
        state = self.contribution.layer_state
        if state is None:
            yield
            return
        first = np.array(state.numpy())
        state.assign(np.ones_like(first))
        try:
            yield
        finally:
            state.assign(first)

    def assume_peak(self, value: float) -> None:
        """Sets the peak of `peak_lr="auto"` without a range test (used by
        `preview`, which has no data)."""
        peak = self.contribution.peak
        if self.peak_lr == AUTO and not float(peak.numpy()) > 0:
            peak.assign(float(value))

    def _find_peak(self) -> float:
        from keras_multiphase.lr_finder.auto_peak import find_peak, sweep_verbose

        peak, self.range_test_result = find_peak(
            self.model,
            self._plan.own_rate,
            self.range_test,
            sweep_verbose(self.params, self.verbose),
            "PhaseLR(peak_lr='auto')",
        )
        return peak

    # -- epoch level -----------------------------------------------------
    def _on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.peak_lr is not None:
            logs["peak_lr"] = self.current_peak_lr()
        if not self._detectors:
            return
        step = self._run_step
        current = int(
            self.contribution.phase_at(np.float32(max(step - 1, 0)), numpy_ops)
        )
        detector = self._detectors.get(current)
        if detector is None or not detector.update(logs):
            return
        ends = self.contribution.ends.numpy().copy()
        ends[current] = float(step)
        self.contribution.ends.assign(ends)
        if self.verbose:
            say(
                f"\nEpoch {epoch + 1}: PhaseLR: `{detector.monitor}` reached a "
                f"plateau; phase '{self.phases[current]['name']}' ends, "
                f"'{self.phases[current + 1]['name']}' starts at step {step}."
            )

    def get_config(self) -> dict:
        return {
            "phases": [_config_of(p) for p in self.phases],
            "peak_lr": self.peak_lr,
            "range_test": dict(self.range_test) or None,
            "verbose": self.verbose,
            "log_dir": self.log_dir,
        }
