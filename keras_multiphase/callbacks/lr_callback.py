"""Private base of the callbacks that contribute to the learning rate."""

from __future__ import annotations

import keras
import numpy as np

from keras_multiphase import _keras_internals
from keras_multiphase._distribution import check_supported
from keras_multiphase._state import state_store, unwrap_optimizer
from keras_multiphase.callbacks.epoch_callback import EpochCallback
from keras_multiphase.engine.composer import engine_for, release
from keras_multiphase.engine.plan import Plan
from keras_multiphase.engine.table import step_count
from keras_multiphase.schedules import numpy_ops


def check_backup_order(callback, callbacks: list | None = None) -> None:
    """Refuses a `BackupAndRestore` listed before `callback`: Keras runs
    callbacks in order, so its backup would be written before this epoch's
    decisions, and a resumed run would follow another trajectory.
    `callbacks`: the running fit's (found when not given)."""
    if callbacks is None:
        callbacks = _keras_internals.running_fit_callbacks() or []
    position = next((i for i, c in enumerate(callbacks) if c is callback), None)
    if position is None:
        return
    for earlier in callbacks[:position]:
        if isinstance(earlier, keras.callbacks.BackupAndRestore):
            raise ValueError(
                f"`BackupAndRestore` is listed before {type(callback).__name__} "
                "in `callbacks`: it would back up each epoch before this "
                "package's end-of-epoch decisions, and a resumed run would "
                "follow another trajectory. List it after this package's "
                "callbacks: callbacks=[*keras_multiphase_callbacks, "
                "keras.callbacks.BackupAndRestore(...)]."
            )


# Keras's callbacks that set the optimizer's rate each epoch, and what
# replaces each on top of this package's composed rate.
_RATE_SETTERS = {
    "ReduceLROnPlateau": (
        "keras_multiphase.PlateauLR (the same arguments: monitor, factor, "
        "patience, min_delta, cooldown, min_lr), which reduces the rate on "
        "top of a schedule"
    ),
    "LearningRateScheduler": (
        "a keras.optimizers.schedules.LearningRateSchedule given to the "
        "optimizer (`optimizer=keras.optimizers.AdamW(learning_rate="
        "my_schedule)`), which this package's callbacks compose with, or "
        "PhaseLR phases"
    ),
}


def check_rate_setters(callback, callbacks: list) -> None:
    """Refuses Keras's own `ReduceLROnPlateau` and `LearningRateScheduler`
    among the running fit's `callbacks`: they assign a float to the
    optimizer's rate, which this package holds as a schedule for the fit,
    and Keras would fail at the first epoch's end with a TypeError that
    names neither."""
    setters = (keras.callbacks.ReduceLROnPlateau, keras.callbacks.LearningRateScheduler)
    for other in callbacks:
        if isinstance(other, setters):
            name = next(c.__name__ for c in setters if isinstance(other, c))
            raise ValueError(
                f"`callbacks` holds keras.callbacks.{name} beside "
                f"{type(callback).__name__}, which sets the learning rate of "
                f"every step for this fit; {name} would assign a float over "
                "it and fail. Received: callbacks=[..., "
                f"{name}(...), ...]. Replace it with {_RATE_SETTERS[name]}."
            )


class PhaseIndex(float):
    """The `phase` logged for an epoch: a number (History, CSVLogger,
    TensorBoard and `diagnose` read it as one) that prints as an integer.

    Keras's progress bar formats every logged value with `.4f` or `.4e`
    (`phase: 0.0000e+00`); this value keeps its integer form through the
    bar's averaging (one value, divided by 1) and formatting.
    """

    def __truediv__(self, other):
        return PhaseIndex(float(self) / other)

    def __abs__(self):
        return PhaseIndex(abs(float(self)))

    def __format__(self, spec):
        return str(int(self))

    def __repr__(self):
        return str(int(self))

    __str__ = __repr__


class LRCallback(EpochCallback):
    """Registers one contribution to the optimizer's composed rate, and
    takes the epoch-level decisions that move its state.

    Subclasses set `contribution` in `__init__` (an object of
    `schedules/` that the engine resolves and evaluates:
    `engine/plan.py` says what it has) and implement `_create_state(store)`
    (create the state variables the contribution reads) and `_on_epoch_end`.
    Each Keras hook tells the engine one thing, with one verb; the engine
    never calls back into the callback.
    """

    # Where per-step logs go without a `keras.callbacks.TensorBoard` (given
    # to the engine when registering; PhaseLR and OneCycle take it).
    log_dir = None

    def __init__(self):
        super().__init__()
        self.contribution = None
        self._optimizer = None
        self._composer = None
        self._key = None
        self._plan: Plan | None = None

    # -- Keras hooks: one engine verb each -------------------------------
    def set_model(self, model):
        super().set_model(model)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            return
        if not optimizer.built and model.built:
            # TensorFlow defers this to the first traced step; building now
            # fixes the variable order before any checkpoint is loaded.
            optimizer.build(model.trainable_variables)
        self._register(model, optimizer)

    def set_params(self, params):
        super().set_params(params)
        # Every callback of the fit has had `set_model`: the engine sizes
        # what the step will read (once per fit).
        if self._composer is not None:
            self._composer.size(params)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        check_supported(type(self).__name__)
        callbacks = _keras_internals.running_fit_callbacks() or []  # one walk
        check_backup_order(self, callbacks)
        check_rate_setters(self, callbacks)
        model = self._ensure_registered()
        self._plan = self._composer.begin_fit(model)

    def on_epoch_begin(self, epoch, logs=None):
        _ = self.model  # On JAX, reading `model` syncs the training state.
        self._composer.begin_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        _ = self.model  # Sync (JAX) before reading or assigning state.
        rate, phase = self._composer.end_epoch(epoch)
        if logs is not None:
            logs["learning_rate"] = rate
            if self._plan is not None and self._plan.phases is not None:
                logs["phase"] = PhaseIndex(phase)
        self._on_epoch_end(epoch, logs or {})

    def on_train_end(self, logs=None):
        _keras_internals.cancel_at_fit_exit(
            _keras_internals.callback_model(self), id(self)
        )
        self._end_of_fit()

    # -- registration ----------------------------------------------------
    def register_for_preview(self, composer, store, params) -> None:
        """Registers with an engine that has no model or optimizer
        (`preview`): the same state, from `store`, and the same plan."""
        self._composer = composer
        self._key = f"{type(self).__name__}_{len(composer.providers)}"
        self._create_state(store)
        composer.register(self._key, self.contribution)
        keras.callbacks.Callback.set_params(self, params)

    def _register(self, model, optimizer) -> None:
        store = state_store(optimizer)
        # A fit with `initial_epoch=0` is a new run: fresh state, the
        # schedule from its first step; `initial_epoch=k` continues one.
        new_run = _keras_internals.fit_starts_a_run()
        key = store.claim_key(type(self).__name__, self, new_run)
        self._optimizer = optimizer
        self._key = key
        # Known variables come back as they are; a taken-over key's are reset.
        self._create_state(store)
        self._composer = engine_for(optimizer)
        self._composer.register(
            key,
            self.contribution,
            new_run=new_run,
            log_dir=self.log_dir,
            config=self.get_config(),
        )
        # From here on something is registered: it goes when the fit is over,
        # even if the fit raises before `on_train_end`.
        _keras_internals.run_at_fit_exit(model, id(self), self._end_of_fit)

    def _ensure_registered(self):
        model = self.model
        optimizer = model.optimizer
        if optimizer is None:
            raise ValueError(
                f"{type(self).__name__} needs a compiled model with an "
                "optimizer. Call `model.compile(optimizer=...)` first."
            )
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        if (
            self._composer is None
            or self._optimizer is not optimizer
            or (self._key not in self._composer.providers)
        ):
            self._register(model, optimizer)
        return model

    @property
    def _iterations(self) -> int:
        """The optimizer's step."""
        return step_count(unwrap_optimizer(self._optimizer).iterations)

    @property
    def _run_step(self) -> float:
        """The run's step (what the schedules are functions of)."""
        return float(self._composer.run_step(np.float32(self._iterations), numpy_ops))

    def current_phase(self) -> int:
        """The phase at the run's current step (of a base schedule: PhaseLR,
        OneCycle)."""
        return int(self.contribution.phase_at(np.float32(self._run_step), numpy_ops))

    def _end_of_fit(self) -> None:
        """What a fit leaves behind goes: the optimizer gets its own rate
        back, the state key may be taken over. Runs at `on_train_end`, or
        when a fit that raised is over (`run_at_fit_exit`)."""
        if self._optimizer is None:
            return
        if release(self._optimizer, self._key):
            # The traced step multiplied by contributions that are gone.
            _keras_internals.forget_train_function(
                _keras_internals.callback_model(self)
            )
        state_store(self._optimizer).release(self)
        self._composer = None

    # -- serialization -----------------------------------------------
    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict):
        """Builds the callback from `get_config()`'s output."""
        return cls(**config)

    # -- to implement --------------------------------------------------
    def _create_state(self, store) -> None:
        pass

    def _on_epoch_end(self, epoch: int, logs: dict) -> None:
        pass
