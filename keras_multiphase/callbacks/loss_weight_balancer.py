"""LossWeightBalancer: loss weights that follow each component's convergence."""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Mapping

import keras
import numpy as np

from keras_multiphase import _keras_internals
from keras_multiphase._distribution import check_supported, creation_scope
from keras_multiphase._messages import say
from keras_multiphase._state import state_store
from keras_multiphase._validation import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
)
from keras_multiphase.balancing.loss_weights import LossWeights
from keras_multiphase.balancing.strategies import STRATEGIES
from keras_multiphase.callbacks.epoch_callback import EpochCallback
from keras_multiphase.callbacks.lr_callback import LRCallback, check_backup_order
from keras_multiphase.callbacks.monitor import TrainingDynamicsWarning
from keras_multiphase.diagnosis.hidden_heads import HiddenHeads
from keras_multiphase.engine.plan import BASE
from keras_multiphase.layer_groups import layer_tree

NORMALIZE = ("count", "initial_sum", "none")


def _check_strategy(strategy, schedule) -> str:
    """A known strategy, with the `schedule` the 'schedule' one needs."""
    if strategy not in STRATEGIES:
        raise ValueError(
            f"Argument `strategy` must be one of {sorted(STRATEGIES)}. "
            f"Received: strategy={strategy!r}.{_suggest(strategy, STRATEGIES)}"
        )
    if strategy == "schedule" and not schedule:
        raise ValueError(
            "Argument `schedule` is required with strategy='schedule', e.g. "
            "{0: {'a': 1.0, 'b': 1.0}, 10: {'a': 0.5, 'b': 2.0}}. "
            f"Received: schedule={schedule!r}"
        )
    return strategy


def _check_smoothing(smoothing) -> float:
    smoothing = check_non_negative("smoothing", smoothing)
    if smoothing >= 1:
        raise ValueError(
            f"Argument `smoothing` must be in [0, 1). Received: smoothing={smoothing!r}"
        )
    return smoothing


def _check_bounds(min_weight, max_weight) -> tuple:
    """`min_weight` >= 0 and `max_weight` > 0 (each optional), in order."""
    low = None if min_weight is None else check_non_negative("min_weight", min_weight)
    high = None if max_weight is None else check_positive("max_weight", max_weight)
    if low is not None and high is not None and low > high:
        raise ValueError(
            "Argument `min_weight` must not exceed `max_weight`. Received: "
            f"min_weight={min_weight!r}, max_weight={max_weight!r}"
        )
    return low, high


def _suggest(name, options) -> str:
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _check_names(what, names, known) -> None:
    for name in names:
        if name not in known:
            raise ValueError(
                f"Argument `{what}` names unknown loss component {name!r}."
                f"{_suggest(name, known)} The model's components are "
                f"{list(known)}."
            )


@keras.saving.register_keras_serializable(package="keras_multiphase")
class LossWeightBalancer(EpochCallback):
    """Re-weights the loss components of a multi-output model during `fit`.

    Works on a model compiled the ordinary way, e.g.
    `model.compile(loss={"threshold": "mse", "cls": "binary_crossentropy"})`
    (dict, list or one loss for several outputs): the callback finds the
    components itself. Weights passed to `compile(loss_weights=...)` are the
    starting weights. The weights are variables the compiled step reads, so
    TensorFlow, JAX and PyTorch all use the current values; changing them
    never recompiles and never touches optimizer state. `"fixed"` at the
    starting weights changes nothing and leaves the compiled loss as it is
    (no variable enters the step).

    Strategies (`strategy=`):

    * `"magnitude"`: `w_i ~ target_i / EMA(L_i)`, so each component
      contributes equally (or in the proportions `targets`). Risk, measured
      (benchmarks/README.md): a head whose loss is large because its target
      is unnormalised gets a weight near 0 (2e-6 to 3e-4) and never reaches
      its scale; on the benchmark problems the dominant head's final MAE was
      1.2x to 16x that of no re-weighting. Prefer `scale_outputs` for such a
      head; use `magnitude` with `warmup_epochs` long enough for every head
      to fit its scale, or with `min_weight`.
    * `"dwa"`: Dynamic Weight Average (Liu, Johns & Davison, "End-to-End
      Multi-Task Learning with Attention", CVPR 2019):
      `w_i = K softmax(L_i(t-1) / L_i(t-2) / T)`, `temperature` T = 2.
    * `"schedule"`: weights per epoch, `{0: {"a": 1, "b": 1}, 10: {...}}`, or
      per PhaseLR phase name; `interpolate=True` moves linearly between
      epoch keys.
    * `"fixed"`: constant `weights` (a baseline, or logging only).

    Shared options: `update_every` N epochs, `warmup_epochs` before the first
    change, `min_weight` / `max_weight` clamps (applied after
    normalisation), `normalize` (`"count"`: weights sum to the number of
    components; `"initial_sum"`: to the starting sum; `"none"`), and
    `freeze_converged`: a component whose loss has not improved by
    `converged_min_delta` (relative) for `converged_patience` epochs keeps
    its weight from then on.

    Reads the unweighted `<output>_loss` entries Keras logs (or
    `val_<output>_loss` with `use_validation=True`) and logs
    `<output>_loss_weight`: the weight in effect during the epoch. A NaN or
    infinite component loss never reaches the weights: the previous weights
    stay, with one warning. Single-output models are left unchanged.

    Example:

    >>> import numpy as np
    >>> inputs = keras.Input((4,))
    >>> model = keras.Model(inputs, {
    ...     "threshold": keras.layers.Dense(1, name="threshold")(inputs),
    ...     "cls": keras.layers.Dense(1, name="cls")(inputs)})
    >>> model.compile(optimizer="adam",
    ...               loss={"threshold": "mse", "cls": "mse"})
    >>> x = np.ones((16, 4))
    >>> y = {"threshold": np.full((16, 1), 70.0), "cls": np.ones((16, 1))}
    >>> history = model.fit(x, y, epochs=2, verbose=0,
    ...                     callbacks=[LossWeightBalancer("magnitude")])
    >>> sorted(k for k in history.history if k.endswith("_loss_weight"))
    ['cls_loss_weight', 'threshold_loss_weight']

    Args:
        strategy: Str. `"magnitude"`, `"dwa"`, `"schedule"` or `"fixed"`.
        targets: Optional mapping name -> relative contribution
            (`magnitude`).
        smoothing: Float in [0, 1). EMA factor of the loss magnitudes.
        temperature: Float > 0. DWA temperature.
        schedule: Mapping epoch (int) or PhaseLR phase name (str) ->
            mapping name -> weight (`schedule`).
        interpolate: Bool. Interpolate linearly between epoch keys.
        weights: Optional mapping name -> weight (`fixed`; defaults to the
            starting weights).
        update_every: Int >= 1. Update every N epochs.
        warmup_epochs: Int >= 0. Epochs observed without acting: the first
            epoch always runs at the starting weights, and the weights first
            change after `warmup_epochs + 1` epochs.
        min_weight: Optional float. Lower clamp.
        max_weight: Optional float. Upper clamp.
        normalize: Str. `"count"`, `"initial_sum"` or `"none"`.
        freeze_converged: Bool. Freeze the weight of converged components.
        converged_patience: Int. Epochs without improvement to converge.
        converged_min_delta: Float. Relative improvement that counts.
        use_validation: Bool. Read `val_<output>_loss` instead.
        verbose: Int. 1 prints the weights when they change.
    """

    def __init__(
        self,
        strategy: str = "magnitude",
        targets: Mapping[str, float] | None = None,
        smoothing: float = 0.5,
        temperature: float = 2.0,
        schedule: Mapping | None = None,
        interpolate: bool = False,
        weights: Mapping[str, float] | None = None,
        update_every: int = 1,
        warmup_epochs: int = 0,
        min_weight: float | None = None,
        max_weight: float | None = None,
        normalize: str = "count",
        freeze_converged: bool = False,
        converged_patience: int = 3,
        converged_min_delta: float = 1e-3,
        use_validation: bool = False,
        verbose: int = 0,
    ):
        super().__init__()
        self.strategy = _check_strategy(strategy, schedule)
        self._strategy = STRATEGIES[strategy]()
        self.targets = self._check_mapping("targets", targets, positive=True)
        self.smoothing = _check_smoothing(smoothing)
        self.temperature = check_positive("temperature", temperature)
        self.schedule = self._check_schedule(schedule)
        self.interpolate = bool(interpolate)
        self.weights = self._check_mapping("weights", weights, positive=False)
        self.update_every = check_int("update_every", update_every, minimum=1)
        self.warmup_epochs = check_int("warmup_epochs", warmup_epochs)
        self.min_weight, self.max_weight = _check_bounds(min_weight, max_weight)
        self.normalize = check_choice("normalize", normalize, NORMALIZE)
        self.freeze_converged = bool(freeze_converged)
        self.converged_patience = check_int(
            "converged_patience", converged_patience, minimum=1
        )
        self.converged_min_delta = check_non_negative(
            "converged_min_delta", converged_min_delta
        )
        self.use_validation = bool(use_validation)
        self.verbose = check_int("verbose", verbose)
        self._names: list[str] = []
        # The weights in the step (None: compile's, unchanged); also what
        # the per-step logs read (`step_source`).
        self._metric = self.step_source = None
        self._compile_loss = None
        self._pending = False
        self._constant = False  # `fixed` at the compiled weights: no variables
        self._warned = set()
        self._hidden = None  # this fit's per-output losses (HiddenHeads)

    @property
    def _balances(self) -> bool:
        """Whether there are components to weigh (and state to keep)."""
        return self._metric is not None or self._constant

    # -- validation ------------------------------------------------------
    @staticmethod
    def _check_mapping(what, mapping, positive):
        if mapping is None:
            return None
        if not isinstance(mapping, Mapping):
            raise ValueError(
                f"Argument `{what}` must be a mapping from output name to "
                f"number. Received: {what}={mapping!r}"
            )
        out = {}
        for name, value in mapping.items():
            key = f"{what}[{name!r}]"
            out[str(name)] = (
                check_positive(key, value)
                if positive
                else check_non_negative(key, value)
            )
        return out

    def _check_schedule(self, schedule):
        if schedule is None:
            return None
        if not isinstance(schedule, Mapping) or not schedule:
            raise ValueError(
                "Argument `schedule` must be a non-empty mapping from epoch "
                "(int) or phase name (str) to a mapping of weights. "
                f"Received: schedule={schedule!r}"
            )
        out = {}
        for key, weights in schedule.items():
            if isinstance(key, bool) or not isinstance(key, (int, str)):
                raise ValueError(
                    "Keys of `schedule` must be epochs (int >= 0) or PhaseLR "
                    f"phase names (str). Received key {key!r}"
                )
            if isinstance(key, int) and key < 0:
                raise ValueError(
                    f"Epoch keys of `schedule` must be >= 0. Received key {key!r}"
                )
            out[key] = self._check_mapping(f"schedule[{key!r}]", weights, False)
        if (
            any(isinstance(k, int) for k in out)
            and 0 not in out
            and not any(isinstance(k, str) for k in out)
        ):
            raise ValueError(
                "An epoch `schedule` must start at epoch 0. Received keys "
                f"{sorted(out)}"
            )
        return out

    # -- wiring ------------------------------------------------------------
    def set_model(self, model):
        super().set_model(model)
        compile_loss = _keras_internals.compiled_loss(model)
        if compile_loss is None or compile_loss is self._compile_loss:
            return
        if not compile_loss.built:
            self._symbolic_build(model, compile_loss)
        if not compile_loss.built:
            self._install_when_built(model, compile_loss)
        elif compile_loss.built:
            self._install(model, compile_loss)
            if self._balances and getattr(model, "optimizer", None):
                # Before BackupAndRestore's on_train_begin loads a backup.
                self._attach_state()

    @staticmethod
    def _symbolic_build(model, compile_loss) -> None:
        # TensorFlow builds the compiled loss inside the first traced step;
        # build it now from the model's symbolic outputs when it has them.
        try:
            outputs = model.output
        except (AttributeError, ValueError):
            return
        compile_loss.build(outputs, outputs)

    def _install_when_built(self, model, compile_loss) -> None:
        """TensorFlow, subclassed model: install when the first trace builds
        the compiled loss (state for resumes is attached after epoch 1)."""
        build = compile_loss.build

        def build_then_install(y_true, y_pred):
            build(y_true, y_pred)
            _keras_internals.replace_loss_build(compile_loss, build)
            self._install(model, compile_loss, retrace=False)

        _keras_internals.replace_loss_build(compile_loss, build_then_install)
        self._compile_loss = compile_loss
        self._pending = True

    def _install(self, model, compile_loss, retrace=True) -> None:
        flat = _keras_internals.loss_entries(compile_loss)
        self._compile_loss = compile_loss
        self._names = [entry.name for entry in flat]
        self._constant = False
        if len(flat) < 2:
            self._metric = self.step_source = None
            return
        existing = _keras_internals.attached(compile_loss, "_keras_multiphase_weights")
        if existing is not None:
            self._metric = self.step_source = existing
            self._initial = existing.initial
        else:
            initial = [
                1.0 if entry.loss_weights is None else float(entry.loss_weights)
                for entry in flat
            ]
            if self._keeps_compiled_weights(initial):
                # The compiled loss already multiplies by these weights, as
                # constants; variables would only add to the state every
                # step carries (on JAX, a cost per variable and step).
                self._metric = self.step_source = None
                self._initial = np.asarray(initial, "float64")
                self._constant = True
                return
            with creation_scope(model):
                metric = LossWeights(self._names, initial)
            self._initial = metric.initial
            _keras_internals.replace_loss_weights(
                compile_loss, metric, metric.weights_vars
            )
            _keras_internals.attach(compile_loss, "_keras_multiphase_weights", metric)
            self._metric = self.step_source = metric
            if retrace:
                # A step traced before used constant weights: trace it again.
                _keras_internals.forget_train_function(model)

    def _keeps_compiled_weights(self, initial) -> bool:
        """`fixed` at the weights given to compile: nothing to change."""
        if self.strategy != "fixed":
            return False
        given = self.weights or {}
        return all(
            given.get(name, w) == w
            for name, w in zip(self._names, initial, strict=True)
        )

    def _attach_state(self, new_run: bool | None = None) -> None:
        optimizer = _keras_internals.callback_model(self).optimizer
        self._state_owner = optimizer
        store = state_store(optimizer)
        key = store.claim_key("LossWeightBalancer", self, new_run)
        self._state_key = key
        k = len(self._names)
        self._state_vars = {
            "weights": store.variable(f"{key}.weights", self._initial),
            "ema": store.variable(f"{key}.ema", np.full(k, np.nan)),
            "last": store.variable(f"{key}.last", np.full(k, np.nan)),
            "before": store.variable(f"{key}.before", np.full(k, np.nan)),
            "best": store.variable(f"{key}.best", np.full(k, np.nan)),
            "wait": store.variable(f"{key}.wait", np.zeros(k)),
            "epochs_seen": store.variable(f"{key}.epochs_seen", 0.0),
        }

    def on_train_end(self, logs=None):
        _keras_internals.cancel_at_fit_exit(
            _keras_internals.callback_model(self), id(self)
        )
        self._end_of_fit()

    def _end_of_fit(self) -> None:
        """The fit is over: another balancer may take the state key over
        (the weights on the compiled loss stay, as documented)."""
        owner = getattr(self, "_state_owner", None)
        if owner is not None:
            state_store(owner).release(self)

    @property
    def target_vector(self) -> np.ndarray:
        targets = self.targets or {}
        return np.asarray([targets.get(n, 1.0) for n in self._names], "float64")

    # -- Keras hooks ---------------------------------------------------------
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._hidden = None
        check_supported("LossWeightBalancer")
        check_backup_order(self)
        model = self.model
        compile_loss = _keras_internals.compiled_loss(model)
        if compile_loss is None:
            raise ValueError(
                "LossWeightBalancer needs a model compiled with a `loss` "
                "(model.compile(loss={...})); this model has none."
            )
        if self._pending and not self._balances:
            return  # installed by the first traced step
        if not self._balances:
            if compile_loss is not self._compile_loss:
                raise ValueError(
                    "LossWeightBalancer could not find the loss components "
                    "before training: build the model (call it on a batch or "
                    "give it an Input) before `fit`."
                )
            return  # single output: nothing to balance
        known = self._names
        for what, mapping in (("targets", self.targets), ("weights", self.weights)):
            if mapping:
                _check_names(what, mapping, known)
        for key, weights in (self.schedule or {}).items():
            _check_names(f"schedule[{key!r}]", weights, known)
            if isinstance(key, str):
                if key not in self._phase_names():
                    raise ValueError(
                        f"`schedule` key {key!r} is not a PhaseLR phase."
                        f"{_suggest(key, self._phase_names())} Phases: "
                        f"{self._phase_names()}"
                    )
        if model.optimizer is None:
            raise ValueError("LossWeightBalancer needs a compiled optimizer.")
        # A fit with `initial_epoch=0` is a new run: fresh state.
        new_run = _keras_internals.fit_starts_a_run()
        if (
            new_run
            or getattr(self, "_state_owner", None) is not model.optimizer
            or state_store(model.optimizer).claim_key("LossWeightBalancer", self)
            != self._state_key
        ):
            self._attach_state(new_run)
        _keras_internals.run_at_fit_exit(model, id(self), self._end_of_fit)
        if self.strategy == "fixed" and self.weights:
            fixed = [
                self.weights.get(n, w)
                for n, w in zip(known, self._initial, strict=True)
            ]
            self._state_vars["weights"].assign(np.asarray(fixed, "float32"))

    _base = None  # the base rate callback a phase-keyed schedule follows

    def _phase_source(self):
        """The fit's base rate callback (PhaseLR or OneCycle), whose phases
        a phase-keyed `schedule` follows."""
        for callback in _keras_internals.running_fit_callbacks() or []:
            if isinstance(callback, LRCallback) and callback.contribution.role == BASE:
                return callback
        raise ValueError(
            "`schedule` names PhaseLR phases, but no PhaseLR is in the callbacks."
        )

    def _phase_names(self) -> list[str]:
        self._base = self._phase_source()
        return self._base.phase_names

    def on_epoch_begin(self, epoch, logs=None):
        if self._metric is None:
            return
        _ = self.model  # JAX: sync before assigning.
        owner = getattr(self, "_state_owner", None)
        if owner is not None:
            state_store(owner).agree()  # several processes: process 0's
        if self.strategy == "schedule":
            scheduled = self._scheduled_weights(epoch)
            if scheduled is not None:
                self._state_vars["weights"].assign(scheduled.astype("float32"))
        weights = self._state_vars["weights"].numpy()
        for var, value in zip(self._metric.weights_vars, weights, strict=True):
            var.assign(float(value))

    def _scheduled_weights(self, epoch):
        current = dict(zip(self._names, self._initial, strict=True))
        epochs = sorted(k for k in self.schedule if isinstance(k, int))
        phases = {k: v for k, v in self.schedule.items() if isinstance(k, str)}
        if phases:
            name = self._base.phase_names[self._base.current_phase()]
            if name not in phases:
                return None
            current.update(phases[name])
            return np.asarray([current[n] for n in self._names])
        past = [e for e in epochs if e <= epoch]
        if not past:
            return None
        start = past[-1]
        current.update(self.schedule[start])
        later = [e for e in epochs if e > epoch]
        if self.interpolate and later:
            end = later[0]
            nxt = dict(current)
            nxt.update(self.schedule[end])
            u = (epoch - start) / (end - start)
            return np.asarray(
                [current[n] + (nxt[n] - current[n]) * u for n in self._names]
            )
        return np.asarray([current[n] for n in self._names])

    def on_epoch_end(self, epoch, logs=None):
        if not self._balances or logs is None:
            return
        self._watch_heads(epoch, logs)
        _ = self.model
        if getattr(self, "_state_owner", None) is not self.model.optimizer:
            self._attach_state()  # installed lazily during the first step
        weights = self._state_vars["weights"].numpy().astype("float64")
        for name, w in zip(self._names, weights, strict=True):
            logs[f"{name}_loss_weight"] = float(w)
        prefix = "val_" if self.use_validation else ""
        keys = [f"{prefix}{name}_loss" for name in self._names]
        missing = [k for k in keys if k not in logs]
        if missing:
            self._warn_once(
                "missing",
                f"LossWeightBalancer: {missing} not in the logs (available: "
                f"{sorted(logs)}); weights unchanged.",
            )
            return
        losses = np.asarray([float(np.asarray(logs[k])) for k in keys], "float64")
        if not np.all(np.isfinite(losses)):
            self._warn_once(
                "nan",
                f"LossWeightBalancer: non-finite component loss at epoch "
                f"{epoch + 1} ({dict(zip(keys, losses.tolist(), strict=True))}); "
                "the previous weights are kept.",
            )
            return
        state = self._update_history(losses)
        seen = int(state["epochs_seen"])
        due = (
            seen > self.warmup_epochs
            and (seen - self.warmup_epochs) % self.update_every == 0
            and seen >= self._strategy.needs_history
        )
        if not due:
            return
        raw = self._strategy.propose(state, self.target_vector, self.temperature)
        if raw is None:
            return
        new = self._finish(np.asarray(raw, "float64"), weights, state)
        self._state_vars["weights"].assign(new.astype("float32"))
        if self.verbose:
            shown = ", ".join(
                f"{n}={w:.4g}" for n, w in zip(self._names, new, strict=True)
            )
            say(f"\nEpoch {epoch + 1}: loss weights {shown}")

    def _watch_heads(self, epoch, logs) -> None:
        """Warns, once per head and fit, of a small head not learning beside
        a dominant one (read from the per-output training losses), with the
        fix that applies to it."""
        keys = [f"{name}_loss" for name in self._names]
        if not all(key in logs for key in keys):
            return
        if self._hidden is None:
            # units="standard" nests the normalised model: look inside.
            layers = {layer.name for layer in layer_tree(self.model).values()}
            normalized = {n for n in self._names if f"{n}_input_norm" in layers}
            self._hidden = HiddenHeads(self._names, normalized)
        losses = {n: float(np.asarray(logs[f"{n}_loss"])) for n in self._names}
        for message in self._hidden.update(losses):
            warnings.warn(
                f"Epoch {epoch + 1}: {message}", TrainingDynamicsWarning, stacklevel=2
            )

    def _update_history(self, losses):
        v = self._state_vars
        ema = v["ema"].numpy().astype("float64")
        ema = np.where(
            np.isnan(ema), losses, self.smoothing * ema + (1 - self.smoothing) * losses
        )
        before = v["last"].numpy().astype("float64")
        best = v["best"].numpy().astype("float64")
        wait = v["wait"].numpy().astype("float64")
        improved = np.isnan(best) | (losses < best * (1 - self.converged_min_delta))
        best = np.where(improved, losses, best)
        wait = np.where(improved, 0.0, wait + 1)
        seen = float(v["epochs_seen"].numpy()) + 1
        for key, value in (
            ("ema", ema),
            ("before", before),
            ("last", losses),
            ("best", best),
            ("wait", wait),
        ):
            v[key].assign(value.astype("float32"))
        v["epochs_seen"].assign(seen)
        return {
            "ema": ema,
            "last": losses,
            "before": before,
            "wait": wait,
            "epochs_seen": seen,
        }

    def _finish(self, raw, old, state):
        if self.freeze_converged:
            frozen = state["wait"] >= self.converged_patience
            raw = np.where(frozen, old, raw)
        if self.normalize == "count":
            raw = raw * len(raw) / raw.sum()
        elif self.normalize == "initial_sum":
            raw = raw * self._initial.sum() / raw.sum()
        if self.freeze_converged:
            raw = np.where(frozen, old, raw)
        if self.min_weight is not None or self.max_weight is not None:
            raw = np.clip(
                raw,
                self.min_weight if self.min_weight is not None else -math.inf,
                self.max_weight if self.max_weight is not None else math.inf,
            )
        return raw

    def _warn_once(self, key, message) -> None:
        if key not in self._warned:
            warnings.warn(message, stacklevel=3)
            self._warned.add(key)

    # -- serialization ------------------------------------------------------
    def get_config(self) -> dict:
        return {
            "strategy": self.strategy,
            "targets": self.targets,
            "smoothing": self.smoothing,
            "temperature": self.temperature,
            "schedule": self.schedule,
            "interpolate": self.interpolate,
            "weights": self.weights,
            "update_every": self.update_every,
            "warmup_epochs": self.warmup_epochs,
            "min_weight": self.min_weight,
            "max_weight": self.max_weight,
            "normalize": self.normalize,
            "freeze_converged": self.freeze_converged,
            "converged_patience": self.converged_patience,
            "converged_min_delta": self.converged_min_delta,
            "use_validation": self.use_validation,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)
