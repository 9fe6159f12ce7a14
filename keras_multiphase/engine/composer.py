"""The learning rate the optimizer sees while this package's callbacks run.

```
lr(step) = base(step) x product of factors(step)
```

`base` is PhaseLR's phase rate when a PhaseLR is attached, else the rate the
optimizer was built with (its float, or its own `LearningRateSchedule`
evaluated at the step).

`step` is the step of the run: the optimizer's `iterations` less the value
it had when the run began (`origin`, state like any other, so checkpoints
and `BackupAndRestore` keep it). A `fit` with `initial_epoch=0` begins a new
run; `initial_epoch=k` continues one. The table is indexed by the
optimizer's own step, and holds the rates of the run's steps.

Factors come from WarmupCosineRestarts and AdaptiveBatch; PlateauLR's
shrinking factor is applied last, with its `min_lr` floor.

The engine's lifecycle, one verb per Keras hook of the rate callbacks
(the callbacks call it; it calls only their contributions, the objects of
`schedules/` described in `plan.py`, never a callback):

1. `register` (`set_model`): each callback adds its contribution, whose
   state variables it has created in the optimizer's `StateStore`. A fit
   with `initial_epoch=0` starts a new run (`start_run`).
2. `size` (`set_params`, before the train function is built): sizes the
   rate table for the longest epoch, or, when epochs are too long
   (`table.TABLE_LIMIT`) or of unknown length, keeps the formulas in the
   step and has the optimizer track the state they read.
3. `begin_fit` (`on_train_begin`, the first callback's): makes the fit's
   `Plan` and has every contribution `resolve` its configuration into steps
   by it (epochs, fractions, cycles), once per fit, base first. The
   callbacks' own train-begin work follows (PhaseLR's range test).
4. `begin_epoch` (`on_epoch_begin`; AdaptiveBatch's with the epoch's steps
   once it has set the batch size): at the fit's first epoch the composed
   rate goes on the optimizer, and the train function is rebuilt if what
   the step reads changed. Then the table must hold the epoch's rates. Rows
   computed at an earlier epoch serve if they include this epoch's steps
   and every state value they were computed from is unchanged; else the
   composed rate of the table's steps from this one is computed in NumPy
   from the contributions' state and written to the table.
5. Each step: `__call__` reads the step's row (one gather); eager PyTorch
   reads the host copy on the CPU, and gathers the row on the device when
   the optimizer lives on an accelerator (reading the step back to Python
   there would wait for the queued steps).
6. `end_epoch` (`on_epoch_end`, the first callback's): the epoch's rate and
   phase for the logs, and the rows its steps read for the per-step logs
   (`step_log.py`), before any decision. Then callbacks decide (a plateau,
   a phase ended) and write their state; step 4 of the next epoch turns it
   into rates.
7. `release` (`on_train_end`, or when a fit that raised is over): with no
   contribution left, the optimizer gets its own rate back.

The formulas (`compose` with `xp=ops`) run in the step only in the
fallback of step 2; in NumPy they fill the table, log the rate and serve
`preview`. Either way every step gets its exact rate, whatever
`steps_per_execution` is, and no batch-level Python hook is needed.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import ops

from keras_multiphase import _keras_internals
from keras_multiphase._distribution import check_same_everywhere, process_count
from keras_multiphase._state import state_store, unwrap_optimizer
from keras_multiphase.engine.plan import BASE, FACTOR, FLOOR, Plan
from keras_multiphase.engine.step_log import StepLog, tensorboard_dir
from keras_multiphase.engine.table import (
    RateTable,
    capacity_for,
    step_count,
    tensor_of,
)
from keras_multiphase.schedules import numpy_ops

__all__ = ["BASE", "FACTOR", "FLOOR", "ComposedLearningRate"]

# The engine of each optimizer (the inner one of a wrapper), from the first
# registration until the last contribution is released.
_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _unchanged(reads) -> bool:
    return reads is not None and all(
        np.array_equal(numpy_ops.read(variable), value, equal_nan=True)
        for variable, value in reads
    )


def _traced(step) -> bool:
    """True inside a compiled train step (TensorFlow graph, JAX trace,
    `torch.compile`), where `step` has no value yet."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return not tf.executing_eagerly()
    if backend == "jax":
        import jax

        return isinstance(tensor_of(step), jax.core.Tracer)
    import torch

    return torch.compiler.is_compiling()


def _host_read_waits(step) -> bool:
    """True where reading `step` back to Python waits for the device:
    eager PyTorch with the optimizer's variables on an accelerator, where
    the read would wait for every step queued before it (benchmarks/README.md
    has the measured cost)."""
    if keras.backend.backend() != "torch":
        return False
    device = getattr(tensor_of(step), "device", None)
    return device is not None and device.type != "cpu"


def _schedule_values(schedule, steps) -> np.ndarray:
    """A user's `LearningRateSchedule` at `steps`, as float32 NumPy.

    Keras's own schedules are written with `keras.ops` and take a vector of
    steps in one call; a schedule that does not (Python control flow on the
    step) is called once per step.
    """
    steps = np.asarray(steps, "float32")
    try:
        values = ops.convert_to_numpy(schedule(ops.convert_to_tensor(steps)))
        values = np.asarray(values, "float32")
        if values.shape == steps.shape:
            return values
    except Exception:  # noqa: BLE001 - any failure: fall back to one by one
        pass
    values = [float(np.asarray(schedule(s))) for s in steps.ravel()]
    return np.asarray(values, "float32").reshape(steps.shape)


@keras.saving.register_keras_serializable(package="keras_multiphase")
class ComposedLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """Product of the rate contributions of attached callbacks.

    Installed on the optimizer while a fit with this package's callbacks
    runs, and removed when it ends. If a model is saved in the `.keras`
    format during training, the rate in effect at that moment is stored as
    a plain float (`from_config` returns it), so the file loads as an
    ordinary optimizer.
    """

    def __init__(self, original=None, optimizer=None):
        self.original = original
        self.optimizer = optimizer
        self.providers: dict[str, object] = {}
        self.traced_signature = None
        self._epoch_cache: tuple | None = None
        self._epoch_steps: dict[int, int] = {}
        self._step_hooks = None
        # The table the step reads (None: the formulas run in the step).
        self.table: RateTable | None = None
        # What the table's rows were computed from: (variable, value) pairs.
        self._rows_read: list | None = None
        self.configured = False
        # Every provider has turned its configuration into steps.
        self.resolved = False
        # The fit's plan (made at train begin) and, set by AdaptiveBatch,
        # the number of steps of the current epoch.
        self.plan: Plan | None = None
        self.epoch_steps_hint = None
        # Eager PyTorch on an accelerator, inside an epoch whose rows (and
        # the next epoch's first) are in the table: reads gather from it.
        self._device_rows = False
        # The optimizer's step at which the run began (state in the store;
        # None without an optimizer: `preview` counts from 0).
        self.origin = None
        # Where each epoch's per-step values go (None: not logged).
        self.step_log: StepLog | None = None
        # What each registration brought: log folders and configurations.
        self._log_dirs: dict[str, object] = {}
        self._configs: dict[str, dict] = {}
        self.params: dict = {}
        # This fit continues a run (`initial_epoch=k`).
        self.continues_run = False
        # The model of the running fit, and whether the composed rate is on
        # its optimizer (from the first epoch's start to the fit's end).
        self._model = None
        self.installed = False

    # -- registration ----------------------------------------------------
    def register(
        self, key: str, contribution, new_run=None, log_dir=None, config=None
    ) -> None:
        """Adds a callback's contribution (at `set_model`). `new_run`: the fit
        starts a new run (True), continues one (False) or is unknown (None,
        callbacks driven by hand)."""
        if contribution.role == BASE:
            for other_key, other in self.providers.items():
                if other.role == BASE and other_key != key:
                    raise ValueError(
                        "Only one base schedule (PhaseLR or OneCycle) can drive "
                        f"an optimizer. Received {key!r} while {other_key!r} "
                        "is attached."
                    )
        self.providers[key] = contribution
        self._log_dirs[key] = log_dir
        self._configs[key] = config or {}
        if new_run:
            self.start_run()
        self.continues_run = new_run is False
        self.resolved = False
        self._epoch_cache = None
        self._step_hooks = None
        self.configured = False

    def remove(self, key: str) -> None:
        self.providers.pop(key, None)
        self._log_dirs.pop(key, None)
        self._configs.pop(key, None)
        if not self.providers and self.step_log is not None:
            self.step_log.close()
            self.step_log = None
        self._device_rows = False
        self._epoch_cache = None
        self._step_hooks = None

    def _sorted(self):
        return sorted(self.providers.items(), key=lambda kv: (kv[1].role, kv[0]))

    @property
    def phase_provider(self):
        for _, provider in self._sorted():
            if provider.role == BASE:
                return provider
        return None

    def signature(self):
        return tuple((key, provider.signature()) for key, provider in self._sorted())

    # -- evaluation ----------------------------------------------------
    def original_rate(self, step, xp=ops):
        original = self.original
        if isinstance(original, keras.optimizers.schedules.LearningRateSchedule):
            if xp is ops:
                return ops.cast(original(step), "float32")
            return _schedule_values(original, step)
        if isinstance(original, keras.Variable):
            return xp.cast(numpy_ops.value_of(original, xp), "float32")
        if callable(original):
            value = original()
            return xp.cast(value if xp is ops else np.asarray(value), "float32")
        return xp.convert_to_tensor(original, "float32")

    def base_rate(self, step, xp=ops):
        provider = self.phase_provider
        if provider is not None:
            return provider.base_rate(step, xp)
        return xp.zeros_like(step) + self.original_rate(step, xp)

    def run_step(self, step, xp=ops):
        """The run's step at the optimizer's step `step` (float32)."""
        step = xp.cast(step, "float32")
        if self.origin is None:
            return step
        return step - xp.cast(numpy_ops.value_of(self.origin, xp), "float32")

    def start_run(self) -> None:
        """The fit begins a new run at the optimizer's current step."""
        self.origin.assign(float(step_count(self.optimizer.iterations)))

    def compose(self, step, xp=ops):
        """The composed rate at the run's step `step` (a float32 tensor or
        array)."""
        step = xp.cast(step, "float32")
        base = self.base_rate(step, xp)
        rate = base
        for _, provider in self._sorted():
            if provider.role == FACTOR:
                rate = rate * provider.factor(step, base, xp)
        for _, provider in self._sorted():
            if provider.role == FLOOR:
                rate = provider.floor(step, rate, xp)
        return rate

    def __call__(self, step):
        table = self.table
        if self._device_rows:
            # Eager PyTorch on an accelerator, inside an epoch: the row is
            # gathered where the step lives, as in a compiled step.
            return self._row(table.device_row(step))
        if not _traced(step):
            # Python: an eager PyTorch step on the CPU, or a callback
            # reading `optimizer.learning_rate` (after this epoch's
            # decisions too).
            rate = self._host_rate(step_count(step))
            if keras.backend.backend() == "torch":
                return rate  # a float: no tensor op per eager step
            return ops.convert_to_tensor(rate, "float32")
        if table is None:
            step = self.run_step(step, ops)
            self._in_step(step, ops)
            return self.compose(step, ops)
        return self._row(table.row(step))

    def _host_rate(self, step: int) -> float:
        """The rate of `step` computed in Python, and its per-step values
        applied."""
        table = self.table
        if table is not None and table.covers(step):
            row = table.host_row(step)
            self._row(row)
            return float(row[0])
        # Not written for this epoch: from the current state.
        self._in_step(self.run_step(np.float32(step), numpy_ops), numpy_ops)
        return float(self.evaluate(step))

    def _row(self, row):
        """The rate of a table row; its per-step values are applied (one
        column: a scalar; several: a vector)."""
        for provider, start, count in self._hooks():
            provider.apply_step_value(
                row[start] if count == 1 else row[start : start + count]
            )
        return row[0]

    def _hooks(self):
        """Contributions with per-step values the step applies (OneCycle's
        momentum, PhaseLR's layer multipliers): `(contribution, first
        column, columns)`."""
        if self._step_hooks is None:
            self._step_hooks, start = [], 1
            for _, provider in self._sorted():
                count = getattr(provider, "step_columns", 0)
                if count:
                    self._step_hooks.append((provider, start, count))
                    start += count
        return self._step_hooks

    def _columns(self) -> int:
        return sum(count for _, _, count in self._hooks())

    def _in_step(self, step, xp) -> None:
        """Per-step side effects from the formulas, run where the optimizer
        asks for the rate: inside the compiled step, before its update
        reads them."""
        for provider, _, _ in self._hooks():
            provider.apply_step_value(provider.step_values(step, xp))

    def rows(self, steps, xp=numpy_ops):
        """Table rows for the optimizer's `steps`: the rate, then each
        hook's values (`xp`: NumPy, or a `numpy_ops.Recording` of it)."""
        steps = self.run_step(np.asarray(steps, "float32"), xp)
        columns = [np.broadcast_to(self.compose(steps, xp), steps.shape)[..., None]]
        for provider, _, count in self._hooks():
            values = np.asarray(provider.step_values(steps, xp))
            if values.ndim == steps.ndim:  # one value per step, not a vector
                values = values[..., None]
            columns.append(np.broadcast_to(values, (*steps.shape, count)))
        return np.concatenate(columns, -1)

    def evaluate(self, steps):
        """The composed rate at the optimizer's `steps`, computed in NumPy
        (no graph)."""
        steps = self.run_step(np.asarray(steps, "float32"), numpy_ops)
        return self.compose(steps, numpy_ops)

    def phase_at(self, step, xp=ops):
        """The phase at the optimizer's step `step`."""
        step = self.run_step(step, xp)
        provider = self.phase_provider
        if provider is None:
            return xp.zeros_like(step)
        return xp.cast(provider.phase_at(step, xp), "float32")

    # -- lifecycle: one verb per Keras hook -------------------------------
    def size(self, params) -> None:
        """Sizes the table for this fit (at `set_params`, before the train
        function is built: Keras < 3.10 on JAX fixes the layout of the
        training state there). Epochs longer than the table allows, or of
        unknown length, keep the formulas in the step, which read the
        contributions' state: the optimizer tracks it then. Once per fit."""
        if self.configured:
            return
        self.params = dict(params or {})
        steps = self.params.get("steps")
        for provider in self.providers.values():
            longest = getattr(provider, "longest", None)
            if longest is not None:
                steps = longest
        capacity = capacity_for(steps, self.params.get("epochs"))
        self.configured = True
        self._rows_read = None
        store = state_store(self.optimizer)
        if capacity is None:
            self.table = None
            store.restore_displaced()  # the formulas read the optimizer's rate
            store.track_all()
            return
        columns = self._columns()
        table = self.table
        if table is None or table.capacity != capacity or table.columns != columns:
            shape = (capacity, 1 + columns)
            # The step reads the table, not the optimizer's own rate
            # variable (the base rate comes from it through the table): the
            # table takes that variable's slot in the step's state.
            original = self.original
            if not isinstance(original, keras.Variable):
                original = None
            variable = store.scratch("rate_table", shape, in_place_of=original)
            self.table = RateTable(variable, capacity, columns)

    def make_plan(self, map_epochs: bool = True) -> Plan:
        """Makes the fit's plan, then has each contribution turn its
        configuration into steps by it (base first), then each check it.

        The plan's epoch map is the contribution's that maps epochs
        (AdaptiveBatch's; `map_epochs=False`: none, as in `preview`, where
        epochs keep their length).
        """
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        mappers = [p for _, p in self._sorted() if getattr(p, "maps_epochs", False)]
        original = self.original
        step = np.float32(self._step())
        self.plan = Plan(
            steps,
            epochs,
            epoch_map=mappers[0].epoch_map if mappers and map_epochs else None,
            phases=self.phase_provider,
            run_step=float(self.run_step(step, numpy_ops)),
            continues_run=self.continues_run,
            own_rate=float(self.original_rate(step, numpy_ops)),
            own_schedule=type(original).__name__
            if isinstance(original, keras.optimizers.schedules.LearningRateSchedule)
            else None,
        )
        for _, provider in self._sorted():
            provider.resolve(self.plan)
        for _, provider in self._sorted():
            provider.check(self.plan)
        return self.plan

    def _step(self) -> int:
        """The optimizer's step (0 without an optimizer: `preview`)."""
        if self.optimizer is None:
            return 0
        return step_count(unwrap_optimizer(self.optimizer).iterations)

    def begin_fit(self, model) -> Plan:
        """Makes the plan and resolves every contribution by it, once per fit
        (the first callback's `on_train_begin`; the later ones get the same
        plan). Nothing is installed yet: the callbacks' own train-begin work
        (the range test of `peak_lr="auto"`, OneCycle's momentum variable)
        runs before the composed rate goes on the optimizer, at the first
        epoch's start."""
        state_store(self.optimizer).agree()  # several processes: process 0's
        self._model = model
        if not self.resolved:
            if process_count() > 1:
                for key, config in sorted(self._configs.items()):
                    check_same_everywhere(key, config)
            if not self.configured:  # callbacks called by hand, without fit
                self.size({"steps": self._steps_per_epoch()})
            self.make_plan()
            self.resolved = True
            self._open_step_log()  # once per fit: the fit's callbacks are known
            # The table is written when the epoch starts.
            self._device_rows = False
            self._epoch_steps = {}
            self._epoch_cache = None
            self._rows_read = None
            self.installed = False
        return self.plan

    def _install(self) -> None:
        """The composed rate goes on the optimizer (once per fit, when the
        first epoch starts, after every callback's `on_train_begin`), and the
        train function is rebuilt if what the step reads changed: one build
        at fit start."""
        inner = unwrap_optimizer(self.optimizer)
        _keras_internals.set_learning_rate_object(inner, self)
        self.installed = True
        signature = (self.signature(), self._layout())
        if signature != self.traced_signature and self._model is not None:
            self._model.make_train_function(force=True)
            self.traced_signature = signature

    def _open_step_log(self) -> None:
        """Per-step logs go to a `keras.callbacks.TensorBoard`'s folder, or
        to the `log_dir` of a rate callback (the base schedule's first)."""
        callbacks = _keras_internals.running_fit_callbacks() or []
        given = [self._log_dirs[k] for k, _ in self._sorted() if self._log_dirs.get(k)]
        directory = tensorboard_dir(callbacks) or (given[0] if given else None)
        if directory is not None and self.step_log is None:
            self.step_log = StepLog(
                str(directory), callbacks, sources=list(self.providers.values())
            )

    def _layout(self):
        if self.table is None:
            return None
        return (id(self.table.variable), self.table.capacity, self.table.columns)

    def begin_epoch(self, epoch: int, steps: int | None = None) -> None:
        """Records the first step of `epoch` and has the table hold the
        rates of its steps: the rows computed at an earlier epoch when they
        include this one and every state value they were computed from is
        unchanged (no decision since), else rows computed now. `steps`:
        AdaptiveBatch set the epoch's batch size (and rate factor), so that
        many steps (the rows are computed again). The first epoch of a fit
        installs the composed rate first."""
        if self.optimizer is not None and not self.installed:
            self._install()
        if steps is not None:
            self.epoch_steps_hint = int(steps)
            self._epoch_steps = {}
            self._rows_read = None
        if epoch in self._epoch_steps:
            return
        state_store(self.optimizer).agree()  # the decisions of the last epoch
        step = self._step()
        self._epoch_steps = {epoch: step}
        self._epoch_cache = None
        table = self.table
        if table is None:
            return
        steps = self._steps_per_epoch()
        if self._volatile() or not (
            _unchanged(self._rows_read) and table.reuse(step, steps)
        ):
            recording = numpy_ops.Recording()
            rows = self.rows(table.steps_from(step), recording)
            table.fill(step, steps, rows)
            self._rows_read = recording.reads
        # A read at the end of the epoch's last batch asks for the next
        # epoch's first step: gathered only where its row was computed.
        self._device_rows = table.holds_next() and _host_read_waits(
            unwrap_optimizer(self.optimizer).iterations
        )

    def _volatile(self) -> bool:
        """The base rate is a function the rows cannot check (a callable
        returning the rate): computed every epoch."""
        original = self.original
        return (
            self.phase_provider is None
            and callable(original)
            and not isinstance(
                original,
                (keras.Variable, keras.optimizers.schedules.LearningRateSchedule),
            )
        )

    def _steps_per_epoch(self):
        if self.epoch_steps_hint:
            return int(self.epoch_steps_hint)
        steps = self.params.get("steps")
        return int(steps) if steps else None

    def end_epoch(self, epoch: int) -> tuple[float, int]:
        """Rate and phase in effect for `epoch`: those at its first step; the
        epoch's steps go to the per-step logs.

        Computed once per epoch, by the first callback whose
        `on_epoch_end` runs, before any callback changes its state.
        """
        # The epoch-end decisions may change the rows from here on.
        self._device_rows = False
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            step = self._epoch_steps.get(epoch)
            if step is None:
                step = self._step()
            table = self.table
            if table is not None and table.covers(step):
                rate = float(table.host_row(step)[0])  # the rate applied
            else:
                rate = float(self.evaluate(step))
            phase = int(self.phase_at(np.float32(step), numpy_ops))
            self._epoch_cache = (epoch, rate, phase)
            if self.step_log is not None:
                self._log_steps(step)
        return self._epoch_cache[1], self._epoch_cache[2]

    def _log_steps(self, first: int) -> None:
        """Logs the epoch's steps, from `first` to the optimizer's current
        one: their table rows (what the step read), or, without a table,
        their rates from the state the epoch ran with (this runs before
        any epoch-end decision)."""
        now = step_count(unwrap_optimizer(self.optimizer).iterations)
        steps = np.arange(first, now)
        table = self.table
        held = table is not None and table.covers(first) and table.covers(now - 1)
        if held and len(steps):
            rows = table.host[steps % table.capacity]
        else:
            rows = self.rows(steps)
        series = {"learning_rate": rows[:, 0]}
        for provider, start, count in self._hooks():
            names = getattr(provider, "step_column_names", None)
            scale = rows[:, 0] if getattr(provider, "scales_rate", False) else 1.0
            for i in range(count):
                name = names[i] if names else provider.step_column_name
                series[name] = rows[:, start + i] * scale
        if self.phase_provider is not None:
            series["phase"] = self.phase_at(steps.astype("float32"), numpy_ops)
        self.step_log.write(steps, series)

    def current_rate(self) -> float:
        """The rate the next step will use (the optimizer's own before the
        contributions are resolved: a save between `set_model` and
        `on_train_begin`)."""
        step = np.float32(self._step())
        if not self.resolved:
            return float(self.original_rate(step, numpy_ops))
        return float(self.evaluate(step))

    # -- serialization -------------------------------------------------
    def get_config(self) -> dict:
        return {"learning_rate": self.current_rate()}

    @classmethod
    def from_config(cls, config):
        return float(config["learning_rate"])


def engine_for(optimizer) -> ComposedLearningRate:
    """Returns the optimizer's engine, creating it if needed. Nothing goes on
    the optimizer until the first epoch starts (`begin_epoch`)."""
    inner = unwrap_optimizer(optimizer)
    engine = _ENGINES.get(inner)
    if engine is None:
        current = _keras_internals.learning_rate_object(inner)
        if isinstance(current, ComposedLearningRate):  # left by a crashed fit
            current = current.original
        engine = ComposedLearningRate(original=current, optimizer=inner)
        store = state_store(optimizer)
        engine.origin = store.variable("engine.origin", 0.0)
        if isinstance(current, keras.Variable):
            # Checkpoints hold the rate in effect in the variable's slot and
            # its own value beside it (`_state.py`), from registration on:
            # BackupAndRestore loads before the composed rate goes on.
            store.effective_rate = (current, engine.current_rate)
        _ENGINES[inner] = engine
    return engine


def release(optimizer, key: str) -> bool:
    """Removes `key`'s contribution; with none left, the optimizer gets its
    own rate back and the engine goes.

    Returns True when the last contribution went.
    """
    inner = unwrap_optimizer(optimizer)
    engine = _ENGINES.get(inner)
    if engine is None:
        return False
    engine.remove(key)
    if engine.providers:
        return False
    if engine.installed:
        _keras_internals.set_learning_rate_object(inner, engine.original)
    del _ENGINES[inner]
    store = state_store(optimizer)
    store.restore_displaced()
    store.effective_rate = None
    return True
