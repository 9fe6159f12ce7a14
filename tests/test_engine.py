"""The engine: a table read in the step, formulas as the fallback."""

import collections
import inspect
import sys
import warnings

import keras
import numpy as np
import pytest
from helpers import (
    PHASES,
    SPE_VALUES,
    Script,
    WeightLog,
    applied_per_epoch,
    assert_applied,
    fit_probe,
    phase_ref,
    rate_probe,
    wcr_ref,
)

import keras_multiphase
from keras_multiphase import OneCycle, PhaseLR, PlateauLR, WarmupCosineRestarts
from keras_multiphase.callbacks.epoch_callback import EpochCallback
from keras_multiphase.engine import composer as composer_module
from keras_multiphase.engine import table as table_module
from keras_multiphase.schedules import numpy_ops
from keras_multiphase.schedules.warmup_cosine_restarts_schedule import (
    WarmupCosineRestartsSchedule,
    warmup_cosine_factor,
)

BACKEND = keras.backend.backend()


@pytest.fixture(params=["table", "formula"])
def mode(request, monkeypatch):
    if request.param == "formula":
        # No epoch fits in the table: the formulas run in the step.
        monkeypatch.setattr(table_module, "TABLE_LIMIT", 0)
    return request.param


class StepVariables(keras.callbacks.Callback):
    """The optimizer's variables while the fit runs (at each epoch end)."""

    def on_epoch_end(self, epoch, logs=None):
        self.seen = list(self.model.optimizer.variables)

    def package(self):
        return [v for v in self.seen if "keras_multiphase" in v.path]


def expected_rate(s):
    base = phase_ref(
        s, [0.01, 0.04, 0.002], [6, 8], ["step", "linear", "step"], [0, 2, 0]
    )
    factor = wcr_ref(s - 6, 2, mult=1.5, min_ratio=0.25) if 6 <= s < 14 else 1.0
    plateau = 0.5 if s >= 8 else 1.0  # a plateau after epoch 2
    return base * factor * plateau


JIT = [False] if BACKEND == "torch" else [False, True]


@pytest.mark.parametrize("jit", JIT)
@pytest.mark.parametrize("spe", SPE_VALUES)
def test_table_and_formulas_apply_the_same_rates(mode, spe, jit):
    callbacks = [
        Script("score", [1.0, 1.0, 0.5, 0.1]),
        PhaseLR(PHASES),
        WarmupCosineRestarts(
            first_cycle_steps=2, cycle_mult=1.5, min_ratio=0.25, phases=["middle"]
        ),
        PlateauLR(monitor="score", mode="min", patience=1, factor=0.5),
        StepVariables(),
    ]
    model, log, _ = fit_probe(
        callbacks, epochs=4, steps_per_epoch=4, steps_per_execution=spe, jit_compile=jit
    )
    assert_applied(log, applied_per_epoch(expected_rate, 4, 4))
    in_step = callbacks[-1].package()
    if mode == "table":
        # The step reads one variable of this package: the table.
        assert [v.shape for v in in_step] == [(64, 1)]
    else:
        # The formulas read the callbacks' state: tracked, so JAX sees it.
        assert len(in_step) > 1


def test_one_cycle_momentum_from_the_table_equals_the_formulas(monkeypatch):
    def run():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
        x = np.random.default_rng(0).normal(size=(24, 3)).astype("float32")
        model.fit(
            x,
            x[:, :1] * 2,
            batch_size=4,
            epochs=3,
            shuffle=False,
            verbose=0,
            callbacks=[OneCycle(max_lr=0.05)],
        )
        return model.get_weights()

    from_table = run()
    monkeypatch.setattr(table_module, "TABLE_LIMIT", 0)
    from_formulas = run()
    for a, b in zip(from_table, from_formulas, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_preset_step_carries_as_many_variables_as_a_plain_fit():
    # The table takes the slot of the optimizer's own rate variable, which
    # the step no longer reads; the slot is given back when the fit ends.
    model = rate_probe(keras.optimizers.Adam(1e-3))
    model.optimizer.build(model.trainable_variables)
    plain = list(model.optimizer.variables)
    rate = next(v for v in plain if v.path.endswith("learning_rate"))
    x, y = np.ones((32, 1), "float32"), np.zeros((32, 1), "float32")
    seen = StepVariables()
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=2,
        verbose=0,
        callbacks=[*keras_multiphase.preset("multiphase", peak_lr=1e-3), seen],
    )
    assert len(seen.seen) == len(plain)
    assert [v.shape for v in seen.package()] == [(64, 1)]
    slot = [i for i, v in enumerate(plain) if v is rate]
    assert [i for i, v in enumerate(seen.seen) if "rate_table" in v.path] == slot
    assert not any(v is rate for v in seen.seen)
    after = model.optimizer.variables
    assert len(after) == len(plain)
    assert all(a is b for a, b in zip(after, plain, strict=True))
    # A fit without the package afterwards trains with the optimizer's rate.
    before = model.get_weights()[0].copy()
    model.fit(x, y + 1.0, batch_size=32, epochs=1, verbose=0)
    assert not np.allclose(model.get_weights()[0], before)


def test_optimizer_without_a_rate_variable_gets_the_table_added():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)
    model = rate_probe(keras.optimizers.SGD(schedule))
    model.optimizer.build(model.trainable_variables)
    plain = len(model.optimizer.variables)
    seen = StepVariables()
    x, y = np.ones((8, 1), "float32"), np.zeros((8, 1), "float32")
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=1,
        verbose=0,
        callbacks=[WarmupCosineRestarts(warmup_epochs=1, first_cycle_epochs=1), seen],
    )
    assert len(seen.seen) == plain + 1
    assert [v.shape for v in seen.package()] == [(64, 1)]


def test_only_an_eager_step_on_an_accelerator_avoids_reading_the_step():
    iterations = keras.Variable(0, dtype="int64", trainable=False)
    assert not composer_module._host_read_waits(iterations)  # the CPU here
    assert not composer_module._host_read_waits(3)
    if BACKEND == "torch":
        import torch

        # A device that is not the host's ("meta": no data, no GPU needed).
        assert composer_module._host_read_waits(torch.zeros((), device="meta"))


def test_table_is_bounded():
    assert table_module.capacity_for(1) == table_module.MIN_CAPACITY
    assert table_module.capacity_for(1000) == 1024
    # One row more than an epoch: the step after its last one.
    assert table_module.capacity_for(1024) == 2048
    assert table_module.capacity_for(1024, epochs=4) == 8192
    limit = table_module.TABLE_LIMIT
    assert table_module.capacity_for(limit - 1) == limit
    assert table_module.capacity_for(limit) is None
    assert table_module.capacity_for(None) is None


def test_epochs_longer_than_the_table_use_the_formulas(monkeypatch):
    monkeypatch.setattr(table_module, "TABLE_LIMIT", 8)
    callback = WarmupCosineRestarts(first_cycle_steps=3, cycle_mult=1.5, min_ratio=0.1)
    seen = StepVariables()
    model, log, _ = fit_probe([callback, seen], epochs=2, steps_per_epoch=10)
    assert_applied(
        log,
        applied_per_epoch(
            lambda s: 0.1 * wcr_ref(s, 3, mult=1.5, min_ratio=0.1), 2, 10
        ),
    )
    paths = [v.path for v in seen.seen]
    assert not any("rate_table" in p for p in paths)  # no table
    # The formulas read the optimizer's own rate: it stays in the step.
    assert any(p.endswith("learning_rate") for p in paths)


def graph_size(schedule):
    """Number of ops the backend traces for `schedule(step)`."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda s: schedule(s))
        graph = fn.get_concrete_function(tf.TensorSpec([], tf.int64)).graph
        return len(graph.get_operations())
    if BACKEND == "jax":
        import jax

        return len(jax.make_jaxpr(schedule)(np.int32(3)).eqns)
    pytest.skip("the PyTorch backend does not trace a graph here")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow runs each op")
def test_the_rate_adds_one_gather_to_a_tensorflow_step():
    # TensorFlow's executor runs every op of the step (a few us each on a
    # CPU): reading the rate is the step's counter mod the table's size,
    # one gather of the variable and its first column, whatever the
    # callbacks (`keras.ops.take` added 6 ops that read the whole table).
    import tensorflow as tf

    from keras_multiphase import _keras_internals

    counted = {}

    class Trace(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            optimizer = self.model.optimizer
            rate = _keras_internals.learning_rate_object(optimizer)
            fn = tf.function(lambda: rate(optimizer.iterations))
            graph = fn.get_concrete_function().graph
            counted.update(
                collections.Counter(
                    op.type
                    for op in graph.get_operations()
                    if op.type not in ("Const", "Placeholder", "NoOp", "Identity")
                )
            )

    fit_probe(
        [PhaseLR(PHASES), WarmupCosineRestarts(warmup_steps=2), PlateauLR(), Trace()],
        epochs=1,
        steps_per_epoch=4,
    )
    assert counted == {
        "ReadVariableOp": 1,  # the counter
        "FloorMod": 1,
        "ResourceGather": 1,
        "StridedSlice": 1,
    }


def test_cycle_mult_near_one_traces_as_few_ops_as_any_other():
    # 1.0001: 74,262 cycles before float32 stops counting steps; the cycle
    # is found in closed form, not by one comparison per cycle.
    def schedule(mult):
        return WarmupCosineRestartsSchedule(1.0, first_cycle_steps=10, cycle_mult=mult)

    assert graph_size(schedule(1.0001)) == graph_size(schedule(2.0))


@pytest.mark.parametrize("mult", [1.0001, 1.5, 2.0, 3.0])
def test_closed_form_cycles_equal_the_reference_far_out(mult):
    steps = np.array([0, 1, 9, 10, 11, 99, 1_000, 12_345, 100_000, 1_000_000])
    got = warmup_cosine_factor(steps, 10, cycle_mult=mult, min_ratio=0.1, xp=numpy_ops)
    want = [wcr_ref(int(s), 10, mult=mult, min_ratio=0.1) for s in steps]
    # float32 phase within a cycle of up to 1e6 steps
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_cycle_mult_near_one_trains_in_the_step(monkeypatch):
    monkeypatch.setattr(table_module, "TABLE_LIMIT", 0)  # formulas in the step
    callback = WarmupCosineRestarts(
        first_cycle_steps=2, cycle_mult=1.0001, min_ratio=0.1
    )
    _, log, _ = fit_probe([callback], epochs=2, steps_per_epoch=5)
    want = applied_per_epoch(
        lambda s: 0.1 * wcr_ref(s, 2, mult=1.0001, min_ratio=0.1), 2, 5
    )
    assert_applied(log, want)


def test_preview_needs_no_model(monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("preview built a Keras model or optimizer")

    monkeypatch.setattr(keras.Model, "__init__", no_model)
    monkeypatch.setattr(keras.optimizers.Optimizer, "__init__", no_model)
    schedule = keras_multiphase.preview("multiphase", epochs=6, steps_per_epoch=4)
    assert schedule["learning_rate"].shape == (24,)
    assert schedule["phase_names"] == ["controlled", "aggressive", "fine-tune"]


@pytest.mark.parametrize("scaling", ["linear", "sqrt"])
def test_preview_applies_adaptive_batch_rate_scaling_as_training_does(scaling):
    x, y = np.ones((32, 1), "float32"), np.zeros((32, 1), "float32")
    schedule = {0: 16, 1: 8, 2: 4}  # 2, 4 and 8 steps in training

    def callbacks():
        return [
            keras_multiphase.AdaptiveBatch(
                lambda b: (x, y), schedule, lr_scaling=scaling
            ),
            PhaseLR([{"lr": 0.1, "epochs": 2}, {"lr": 0.05}]),
        ]

    adaptive, phase = callbacks()
    log = WeightLog()
    rate_probe().fit(
        adaptive.data, epochs=3, verbose=0, callbacks=[adaptive, phase, log]
    )
    shown = keras_multiphase.preview(callbacks(), epochs=3, steps_per_epoch=2)
    np.testing.assert_array_equal(shown["batch_size"][::2], [16, 8, 4])
    # The rate is constant within each epoch here: what training applied in
    # epoch e is its number of steps times the rate preview shows for it.
    assert_applied(log, shown["learning_rate"][::2] * np.array([2, 4, 8]))
    assert shown["learning_rate"][2] < 0.1  # the factor is in the preview


class OneStepAtATime(keras.optimizers.schedules.LearningRateSchedule):
    """A user's schedule with Python control flow on the step."""

    def __call__(self, step):
        return 0.1 if float(step) < 6 else 0.05


@pytest.mark.parametrize(
    "schedule",
    [
        OneStepAtATime(),
        keras.optimizers.schedules.PiecewiseConstantDecay([5], [0.1, 0.05]),
    ],
    ids=["python", "keras"],
)
def test_user_schedules_fill_the_table_vectorised_or_one_by_one(schedule):
    callbacks = [PlateauLR(monitor="loss", patience=100)]
    model = rate_probe(keras.optimizers.SGD(schedule))
    _, log, _ = fit_probe(callbacks, epochs=3, steps_per_epoch=4, model=model)
    # PiecewiseConstantDecay([5], ...) keeps 0.1 up to step 5 included.
    assert_applied(log, applied_per_epoch(lambda s: 0.1 if s < 6 else 0.05, 3, 4))


class CountFills:
    """Counts the table's fills (rows computed) during a fit."""

    def __init__(self, monkeypatch):
        self.starts = []
        fill = table_module.RateTable.fill

        def counted(table, start, count, rows):
            self.starts.append(int(start))
            return fill(table, start, count, rows)

        monkeypatch.setattr(table_module.RateTable, "fill", counted)


def test_rows_are_computed_again_only_after_a_decision(monkeypatch):
    fills = CountFills(monkeypatch)
    scores = [1.0, 1.0, 1.0, 0.5, 0.4, 0.3]
    phases = [{"lr": 0.01, "steps": 10}, {"lr": 0.02}]
    _, log, _ = fit_probe(
        [
            Script("score", scores),
            PhaseLR(phases),
            PlateauLR(monitor="score", mode="min", patience=2, factor=0.5),
        ],
        epochs=6,
        steps_per_epoch=4,
    )
    # Epoch 3 (1-based) ends a plateau: epochs 4-6 run at half the rate.

    def ref(s):
        return phase_ref(s, [0.01, 0.02], [10]) * (0.5 if s >= 12 else 1.0)

    assert_applied(log, applied_per_epoch(ref, 6, 4))
    # Computed when training starts, and again after the reduction only:
    # the plateau counters changing every epoch do not affect the rate.
    assert fills.starts == [0, 12]


def test_a_change_of_the_optimizers_rate_is_picked_up_next_epoch(monkeypatch):
    # No PhaseLR: the optimizer's own rate variable is the base. A callback
    # holding that variable sets it when epoch 3 starts (before this
    # package's callbacks in the list, so it applies from that epoch).
    rates = {0: 0.01, 1: 0.01, 2: 0.04, 3: 0.04}

    class SetRate(keras.callbacks.Callback):
        def __init__(self, variable):
            super().__init__()
            self.variable = variable

        def on_epoch_begin(self, epoch, logs=None):
            self.variable.assign(rates[epoch])

    def run():
        model = rate_probe(keras.optimizers.SGD(0.01))
        model.optimizer.build(model.trainable_variables)
        variable = next(
            v for v in model.optimizer.variables if v.path.endswith("learning_rate")
        )
        _, log, _ = fit_probe(
            [SetRate(variable), WarmupCosineRestarts(first_cycle_epochs=2)],
            epochs=4,
            steps_per_epoch=3,
            model=model,
        )
        return log

    fills = CountFills(monkeypatch)
    log = run()
    assert fills.starts == [0, 6]  # again when the rate changed
    # The formulas evaluated in the step (no table) apply the same rates.
    monkeypatch.setattr(table_module, "TABLE_LIMIT", 0)

    def ref(s):
        return rates[s // 3] * wcr_ref(s, 6)

    assert_applied(log, applied_per_epoch(ref, 4, 3))
    assert_applied(run(), applied_per_epoch(ref, 4, 3))


def test_epoch_level_state_stays_on_the_host():
    from keras_multiphase._state import HostState, state_store

    model = rate_probe(keras.optimizers.SGD(0.01))
    plateau = PlateauLR(monitor="score", mode="min", patience=1, factor=0.5)
    phases = PhaseLR([{"lr": 0.01, "steps": 4}, {"lr": 0.02}])
    fit_probe(
        [Script("score", [1.0, 1.0, 1.0]), phases, plateau],
        epochs=3,
        steps_per_epoch=2,
        model=model,
    )
    store = state_store(model.optimizer)
    assert store._vars and all(isinstance(v, HostState) for v in store._vars.values())
    assert plateau.reduction == pytest.approx(0.25)  # written on the host
    # Only the step evaluating the formulas reads the state: then each value
    # gets a tracked variable holding it, and writes go to that variable.
    plain = len(model.optimizer.variables)
    store.track_all()
    assert len(model.optimizer.variables) == plain + len(store._vars)
    reduction = next(v for k, v in store._vars.items() if k.endswith(".reduction"))
    assert float(reduction.variable.numpy()) == pytest.approx(0.25)
    reduction.assign(0.125)
    assert float(reduction.variable.numpy()) == pytest.approx(0.125)


def test_replace_optimizer_variable_keeps_the_slot_or_adds():
    from keras_multiphase._keras_internals import replace_optimizer_variable

    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build([keras.Variable(np.zeros((2,), "float32"))])
    before = optimizer.variables
    rate = next(v for v in before if v.path.endswith("learning_rate"))
    table = keras.Variable(np.zeros((4, 1), "float32"))
    replace_optimizer_variable(optimizer, rate, table)
    after = optimizer.variables
    assert len(after) == len(before)
    assert [v is table for v in after] == [v is rate for v in before]
    # Back, then a variable that is not (or no longer) there: added at the end.
    replace_optimizer_variable(optimizer, table, rate)
    assert all(a is b for a, b in zip(optimizer.variables, before, strict=True))
    replace_optimizer_variable(optimizer, table, keras.Variable(1.0))
    assert len(optimizer.variables) == len(before) + 1


class CountPythonCalls(keras.callbacks.Callback):
    """Counts the Python calls `fit` makes on its thread during one epoch,
    by function (a count of work, where wall-clock time is noise)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.calls = epoch, collections.Counter()

    def _count(self, frame, event, arg):
        if event == "call":
            code = frame.f_code
            self.calls[(code.co_filename, code.co_name)] += 1
        elif event == "c_call":
            self.calls[("<C>", getattr(arg, "__qualname__", repr(arg)))] += 1

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            sys.setprofile(self._count)

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            sys.setprofile(None)


def test_preset_adds_no_warning_to_a_step():
    # A warning costs even where it is filtered out. An eager PyTorch step
    # asks for the rate from Python: reading the step through
    # `ops.convert_to_numpy` made NumPy 2 warn twice per step (a variable's
    # `__array__` takes no `copy`), what Keras itself does once per step.
    steps, epochs = 64, 2
    x = np.random.default_rng(0).normal(size=(steps * 2, 4)).astype("float32")

    def warnings_in_fit(callbacks):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(
                x, x[:, :1], batch_size=2, epochs=epochs, verbose=0, callbacks=callbacks
            )
        return len(caught)

    bare = warnings_in_fit([])
    added = warnings_in_fit(keras_multiphase.preset("multiphase", peak_lr=1e-3)) - bare
    assert added < steps // 2, f"{added} warnings more than a bare fit's {bare}"


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="an eager PyTorch step asks for the rate from Python by design",
)
@pytest.mark.parametrize("heads", [1, 2])
def test_preset_adds_no_python_work_to_a_step(heads):
    # Per step, the preset may only cost Keras's calls of its callbacks'
    # batch hooks, one no-op call each: no work of ours, no evaluation of
    # the rate in Python, and no more state for the loop to
    # walk (JAX: ~22 calls per step for each variable the step carries).
    # Two heads: the preset's `fixed` loss weights stay compile's constants.
    steps = 512
    x = np.random.default_rng(0).normal(size=(steps * 2, 4)).astype("float32")
    y = x[:, :1] if heads == 1 else {"a": x[:, :1], "b": x[:, 1:2]}

    def calls_per_step(callbacks):
        keras.utils.set_random_seed(0)
        if heads == 1:
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
            loss, weights = "mse", None
        else:
            inputs = keras.Input((4,))
            outputs = {
                name: keras.layers.Dense(1, name=name)(inputs) for name in ("a", "b")
            }
            model = keras.Model(inputs, outputs)
            loss, weights = {"a": "mse", "b": "mse"}, {"a": 1.0, "b": 0.5}
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3), loss=loss, loss_weights=weights
        )
        # Epoch 2: Keras 3.8 on JAX still compiles during epoch 1.
        counter = CountPythonCalls(epoch=2)
        model.fit(
            x, y, batch_size=2, epochs=3, verbose=0, callbacks=[*callbacks, counter]
        )
        return counter.calls

    bare = calls_per_step([])
    callbacks = keras_multiphase.preset("multiphase", peak_lr=1e-3)
    extra = calls_per_step(callbacks)
    extra.subtract(bare)
    # Keras's asynchronous batch-end dispatch polls its futures a number of
    # times that depends on thread timing: those calls are not counted.
    timing = ("thread", "futures", "Lock", "Condition", "Event", "_acquire")
    per_step = {
        k: v / steps
        for k, v in extra.items()
        if abs(v) >= steps // 2 and not any(t in f"{k}" for t in timing)
    }
    # Keras calls each callback's on_train_batch_begin, and its
    # on_train_batch_end on this thread where it does not hand batch ends
    # to a thread (TensorFlow). Each is one call of a no-op; without
    # EpochCallback, Keras's base hooks would call on_batch_begin/_end too.
    hooks_here = 2 if keras.backend.backend() == "tensorflow" else 1
    no_op = (inspect.getsourcefile(EpochCallback), "_nothing")
    assert per_step == {no_op: hooks_here * len(callbacks)}, per_step


@pytest.mark.parametrize("peak", [0.01, "auto"])
def test_resolved_once_per_fit_and_one_step_function(monkeypatch, peak):
    """Every contribution is resolved once per fit, however many callbacks
    there are; the step that trains is built once at fit start (with an
    auto peak, the range test's own step is the one more)."""
    resolved = collections.Counter()
    original = composer_module.ComposedLearningRate.make_plan

    def counting(self, *args, **kwargs):
        resolved["pass"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(composer_module.ComposedLearningRate, "make_plan", counting)
    x = np.random.default_rng(0).normal(size=(80, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    step = model.train_step
    functions = []  # the train function in effect each time a step runs

    def train_step(*args):
        functions.append(model.train_function)  # traced: once per build
        return step(*args)

    model.train_step = train_step
    for fit in (1, 2):  # a second fit is a new run: resolved again
        callbacks = keras_multiphase.preset("multiphase", peak_lr=peak)
        if peak == "auto":
            callbacks[0].range_test.update(num_steps=20)
        functions.clear()
        model.fit(
            x,
            x.sum(1, keepdims=True),
            batch_size=8,
            epochs=2,
            callbacks=callbacks,
            verbose=0,
        )
        assert resolved["pass"] == fit
        used = list(dict.fromkeys(id(f) for f in functions))  # in order
        built = 1 if peak == 0.01 else 2  # with auto: the sweep's, then training's
        # JAX may reuse a trace of the first fit in the second (its cache).
        assert len(used) == built if fit == 1 else len(used) <= built
        if keras.backend.backend() != "torch":  # compiled: traced once each
            assert len(functions) == len(used)


def test_the_range_test_runs_before_the_composed_rate_goes_on(monkeypatch):
    """With `peak_lr="auto"` the sweep trains on the optimizer's own rate
    object, swapped for the sweep and back; the composed rate goes on once,
    after it (when the first epoch starts), and comes off once at the end:
    nothing of the engine is swapped out in between."""
    from keras_multiphase import _keras_internals

    installed = []
    original = _keras_internals.set_learning_rate_object

    def recording(optimizer, value):
        installed.append(type(value).__name__)
        return original(optimizer, value)

    monkeypatch.setattr(_keras_internals, "set_learning_rate_object", recording)
    x = np.random.default_rng(0).normal(size=(80, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    callbacks = keras_multiphase.preset("multiphase")
    callbacks[0].range_test.update(num_steps=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an inconclusive sweep falls back
        model.fit(
            x,
            x.sum(1, keepdims=True),
            batch_size=8,
            epochs=2,
            verbose=0,
            callbacks=callbacks,
        )
    own = type(model.optimizer._learning_rate).__name__
    assert installed == ["_Sweep", own, "ComposedLearningRate", own]
