"""Private Keras API and Keras version differences, in one place.

Each function says why no public API serves (or which versions differ) and
the Keras versions it was checked on (3.8.0 and 3.15.1 unless said). No
other module of the package reads a private Keras attribute or imports
`keras.src` (`tests/test_internals_seam.py` checks it); where a public API
exists it is used (`optimizer.add_variable`, `model.distribute_strategy`,
`keras.config.is_interactive_logging_enabled`).
"""

from __future__ import annotations

import functools
import inspect

import keras

_VARIABLE_ARGUMENTS = inspect.signature(keras.Variable.__init__).parameters


def variable(**kwargs) -> keras.Variable:
    """`keras.Variable(**kwargs)` on every supported Keras.

    `synchronization` arrived in Keras 3.10; before it, a TensorFlow
    variable is created with TensorFlow's default (`AUTO`, on-write for a
    mirrored variable), which is what this package asks for, so the argument
    is dropped there.
    """
    if "synchronization" not in _VARIABLE_ARGUMENTS:
        kwargs.pop("synchronization", None)
    return keras.Variable(**kwargs)


def saveable_base():
    """The base class Keras's saver walks for `save_own_variables`.

    The state store must be written into `.keras` files and checkpoints as
    a child of the optimizer; the saver only visits `KerasSaveable`
    attributes, and Keras does not export the class.
    """
    try:
        from keras.src.saving.keras_saveable import KerasSaveable
    except ImportError:  # pragma: no cover
        return object
    return KerasSaveable


def optimizer_strategy(optimizer):
    """The `tf.distribute` strategy an optimizer was built under (or None).

    A model has public `model.distribute_strategy`; an optimizer keeps its
    strategy only as `_distribution_strategy` (TensorFlow backend), and
    this package's state is created from the optimizer's side.
    """
    return getattr(optimizer, "_distribution_strategy", None)


def compiled_loss(model):
    """The `CompileLoss` built by `model.compile` (or None).

    `LossWeightBalancer` multiplies each output's loss by a variable and
    `diagnose` reads compile's weights; Keras keeps the object only as
    `model._compile_loss` (the public `compiled_loss` is deprecated and
    calls it).
    """
    return getattr(model, "_compile_loss", None)


def loss_entries(compile_loss) -> list:
    """Per-output `(path, loss, loss_weights, name)` entries of a built
    `CompileLoss` (its `_flat_losses`; no public accessor)."""
    return list(getattr(compile_loss, "_flat_losses", None) or [])


def replace_loss_weights(compile_loss, metric, weights) -> None:
    """Makes each output's loss weight the matching variable of `weights`,
    tracked through `metric` by the compiled loss (so JAX carries it in the
    step's state, and it is saved with the model's metrics).

    Keras has no public way to change `loss_weights` after `compile`: the
    entries are rebuilt with the variables as weights, and the metric is
    added to the compiled loss's tracker (unlocked for it).
    """
    tracker = compile_loss._tracker
    locked = tracker.locked
    tracker.unlock()
    tracker.add_to_store("metrics", metric)
    if locked:
        tracker.lock()
    compile_loss._flat_losses = [
        type(entry)(entry.path, entry.loss, var, entry.name)
        for entry, var in zip(compile_loss._flat_losses, weights, strict=True)
    ]


def metric_direction(metric):
    """`"up"`, `"down"` or None: the direction Keras's own callbacks read
    from a metric (`_direction`, set by Keras metrics; not public)."""
    return getattr(metric, "_direction", None)


def set_epoch_steps(epoch_iterator, steps: int) -> None:
    """Sets the number of batches `fit`'s epoch iterator serves this epoch.

    `fit` fixes the count once per call (docs/design.md, fact 6); AdaptiveBatch
    changes it per epoch, and the iterator keeps it only as `_num_batches`.
    """
    epoch_iterator._num_batches = steps


def callback_model(callback):
    """The model a callback was set to, without syncing training state.

    Public `Callback.model` makes JAX write the step's state back into the
    variables (docs/design.md, fact 8); code that only needs the model object
    (cleanups after a fit, possibly an interrupted one) reads `_model`.
    """
    return callback._model


def track_metric_variable(metric, variable) -> None:
    """Makes `metric` track a variable created with an aggregation
    `Metric.add_variable` does not allow (on-write, no aggregation: see
    `balancing/loss_weights.py`'s `LossWeights`); metrics track through their
    private `_tracker`."""
    metric._tracker.add_to_store("variables", variable)


def track_optimizer_variable(optimizer, variable) -> None:
    """Makes `optimizer` track a variable created earlier, untracked.

    Public `optimizer.add_variable` creates a new variable; this package
    keeps epoch-level state untracked (a JAX step would carry it in and out
    at every step) and tracks it only when the step has to read it (the
    rate evaluated from formulas, see `engine/composer.py`): the variables already
    hold values and are referenced by the callbacks.
    """
    optimizer._track_variable(variable)


def replace_optimizer_variable(optimizer, old, new) -> None:
    """Puts `new` where `old` is in the optimizer's variables (`old` is
    then untracked; `new`, if tracked elsewhere in the list, moves; if
    `old` is not there, `new` is added at the end).

    While a composed rate is installed, the optimizer's own `learning_rate`
    variable is no longer read by the step, yet a JAX step would carry it
    in and out (and `fit` walks every state leaf at every step); the rate
    table takes its slot instead, so the step's state has the length of a
    plain fit's. Keras offers `add_variable` but no way to replace or drop
    a tracked variable: the list and the tracker's id set are edited
    together (`_variables`, `_tracker.stored_ids`).
    """
    variables = optimizer._variables
    ids = optimizer._tracker.stored_ids["variables"]
    for i in reversed(range(len(variables))):
        if variables[i] is new:
            del variables[i]
    ids.discard(id(new))
    for i, var in enumerate(variables):
        if var is old:
            variables[i] = new
            ids.discard(id(old))
            ids.add(id(new))
            return
    # `old` is gone (the list was changed by someone else): `new` is added.
    variables.append(new)
    ids.add(id(new))


def learning_rate_object(optimizer):
    """The optimizer's rate as stored: a float `Variable` or a schedule.

    Public `optimizer.learning_rate` evaluates a schedule at the current
    step and so cannot tell which of the two the optimizer holds.
    """
    return optimizer._learning_rate


def set_learning_rate_object(optimizer, value) -> None:
    """Puts back a rate object read with `learning_rate_object`.

    The public setter accepts a schedule, but assigning a float `Variable`
    back over a schedule makes it call `.assign` on the schedule.
    """
    object.__setattr__(optimizer, "_learning_rate", value)


def running_fit_locals(*names: str) -> dict | None:
    """Named local variables of the running `model.fit` (None when no
    running `fit` is found: the callback was called by hand).

    Callbacks are given neither the training data nor the other callbacks
    nor `fit`'s epoch iterator; `fit`'s own frame is the only place they
    are. Its arguments (`x`, `y`, `sample_weight`, `batch_size`: public
    names, read after its `validation_split`) and its locals
    `epoch_iterator` and `callbacks` exist under these names in every
    backend's trainer. Checked on Keras 3.8.0 and 3.15.1.
    """
    frame = inspect.currentframe()
    try:
        while frame is not None:
            found = frame.f_locals
            if frame.f_code.co_name == "fit" and "epoch_iterator" in found:
                return {name: found.get(name) for name in names}
            frame = frame.f_back
        return None
    finally:
        del frame


def fit_arguments() -> dict | None:
    """The data arguments of the running `model.fit` (or None)."""
    return running_fit_locals("x", "y", "sample_weight", "batch_size")


def fit_starts_a_run() -> bool | None:
    """True when the running `model.fit` starts a new run (its
    `initial_epoch` is 0), False when it continues one (`initial_epoch=k`),
    None when no running `fit` is found (callbacks called by hand).

    Callbacks are not given `initial_epoch`; `fit`'s frame holds it as an
    argument of that name on every backend. `BackupAndRestore` replaces it
    later, in its own `on_train_begin`, and restores this package's state
    with the model's, so a resumed run needs no special case here.
    """
    found = running_fit_locals("initial_epoch")
    if found is None:
        return None
    return not found["initial_epoch"]


def plateau_compares_in_float32() -> bool:
    """How the installed Keras's `ReduceLROnPlateau` compares values.

    Keras 3.11+ (a `MonitorCallback` with `_is_improvement`) tests
    `ops.less(current + min_delta, best)`: the sum in Python floats, the
    comparison in float32 tensors. Older Keras tests
    `np.less(current, best - min_delta)` in float64. `PlateauLR` decides as
    the installed Keras does.
    """
    return hasattr(keras.callbacks.ReduceLROnPlateau, "_is_improvement")


_FIT_EXIT = "_keras_multiphase_fit_exit"


def run_at_fit_exit(model, key, cleanup) -> None:
    """Runs `cleanup()` once the running `model.fit` is over, however it
    ends.

    Keras calls `on_train_end` only when `fit` returns; an exception or a
    Ctrl-C leaves whatever callbacks installed at train begin. No public
    hook runs then, so `model.fit` is wrapped on this model instance (once):
    pending cleanups run when a wrapped `fit` exits, normally or not, and at
    the start of the next `fit` (for the `fit` that was running when the
    wrapper was installed). Checked on Keras 3.8.0 and 3.15.1.
    """
    hooks = model.__dict__.get(_FIT_EXIT)
    if hooks is None:
        hooks = {}
        original = model.fit

        @functools.wraps(original)
        def fit(*args, **kwargs):
            _run_pending(hooks)  # left by an interrupted fit
            try:
                return original(*args, **kwargs)
            finally:
                _run_pending(hooks)

        object.__setattr__(model, _FIT_EXIT, hooks)
        object.__setattr__(model, "fit", fit)
    hooks[key] = cleanup


def cancel_at_fit_exit(model, key) -> None:
    """The cleanup registered under `key` is no longer needed."""
    hooks = model.__dict__.get(_FIT_EXIT)
    if hooks is not None:
        hooks.pop(key, None)


def _run_pending(hooks) -> None:
    while hooks:
        _, cleanup = hooks.popitem()
        cleanup()


def running_fit_callbacks() -> list | None:
    """The callbacks of the running `model.fit`, in order (or None)."""
    found = running_fit_locals("callbacks")
    if found is None:
        return None
    callbacks = found["callbacks"]
    return list(getattr(callbacks, "callbacks", callbacks) or [])


def running_fit_history():
    """The `keras.callbacks.History` that the running `model.fit` returns
    (or None). Keras adds it to the fit's callback list itself and sets
    `model.history` only at the first epoch's end, so the list is where it
    is found at train begin. Checked on Keras 3.8.0 and 3.15.1."""
    for callback in running_fit_callbacks() or []:
        if isinstance(callback, keras.callbacks.History):
            return callback
    return None


_NONZERO_CLASSES: dict = {}


def as_nonzero_momentum(variable) -> None:
    """Lets `variable` stand for SGD's or RMSprop's `momentum` float.

    Their update tests `self.momentum != 0` (SGD) or `> 0` (RMSprop) in
    Python inside the traced step, where a variable's comparison is a
    tensor (JAX raises on its truth value). The variable's class becomes a
    subclass that answers those two tests against 0 as the float it
    replaces would (a cycled momentum is never 0) and compares as usual
    otherwise. Checked on Keras 3.8.0 and 3.15.1.
    """
    base = type(variable)
    cls = _NONZERO_CLASSES.get(base)
    if cls is None:

        def not_equal(self, other):
            if isinstance(other, (int, float)) and other == 0:
                return True
            return base.__ne__(self, other)

        def greater(self, other):
            if isinstance(other, (int, float)) and other == 0:
                return True
            return base.__gt__(self, other)

        cls = type(
            f"NonzeroMomentum{base.__name__}",
            (base,),
            {"__ne__": not_equal, "__gt__": greater, "__hash__": base.__hash__},
        )
        _NONZERO_CLASSES[base] = cls
    variable.__class__ = cls


# -- Replacing what Keras objects hold ----------------------------------------
# Each function below changes an object Keras owns; no other module does
# (`tests/test_internals_seam.py` checks it). `object.__setattr__` skips the
# attribute tracking of Keras's `__setattr__`, which would list a function
# or a stashed object among the object's tracked state.


def attach(obj, name: str, value) -> None:
    """Stashes one of this package's objects on a Keras object (the state
    store on an optimizer, the loss-weight variables on a compiled loss), so
    it lives and dies with it. Keras objects have no slot for user data."""
    object.__setattr__(obj, name, value)


def attached(obj, name: str):
    """What `attach` stashed on `obj` itself (None if nothing): read from the
    instance's own attributes, so a wrapper optimizer does not answer with
    the stash of the optimizer it wraps (`__getattr__` forwarding)."""
    return vars(obj).get(name)


def replace_saving_hooks(optimizer, save, load, get_config) -> None:
    """Replaces, for this optimizer instance only, the hooks Keras's saver
    calls (`save_own_variables`, `load_own_variables`) and `get_config`:
    checkpoints then hold exactly a plain optimizer's variables in its own
    entry (loadable without this package) and the package's state beside
    them, and a `.keras` file stores the rate in effect as a float (see
    `_state.py`). Keras has no per-instance saving extension point."""
    object.__setattr__(optimizer, "save_own_variables", save)
    object.__setattr__(optimizer, "load_own_variables", load)
    object.__setattr__(optimizer, "get_config", get_config)


def replace_loss_build(compile_loss, build) -> None:
    """Replaces a compiled loss's `build` for this instance: on TensorFlow a
    subclassed model's compiled loss is built inside the first traced step,
    and LossWeightBalancer installs its weights right after (Keras has no
    hook for "the loss was built")."""
    object.__setattr__(compile_loss, "build", build)


def set_optimizer_hyperparameter(optimizer, name: str, value) -> None:
    """Sets `beta_1` (Adam family) or `momentum` (SGD, RMSprop), which Keras
    keeps as plain floats read by the traced update: OneCycle puts a variable
    there so the step reads the cycled value, and the float back when the
    fit ends. Keras's `__setattr__` would track the variable as optimizer
    state (saved, and carried through every JAX step)."""
    object.__setattr__(optimizer, name, value)


def forget_train_function(model) -> None:
    """Drops the model's traced train step, so the next `fit` traces it
    again: after the package removed what the step read (the composed rate,
    loss-weight variables) or swapped them in. `make_train_function(force=
    True)` would trace at once, where nothing may be trained next."""
    model.train_function = None


def producing_layer(tensor):
    """The layer whose call made the symbolic `tensor` (an output of a
    functional model).

    `model.get_layer(name)` for each of `model.output_names` would be the
    public route, but an output given as a dict key (`outputs={"label":
    x}`) is named by the key, not by its layer. Keras keeps the producing
    operation in `tensor._keras_history`.
    """
    return tensor._keras_history[0]


def set_activation(layer, activation) -> None:
    """Gives a built layer another activation.

    Keras has no API for it; `Dense`, the `Conv` layers and `Activation`
    read `self.activation` at each call and write it in `get_config`, so a
    step traced after the change uses it and a saved model records it.
    """
    layer.activation = activation


def set_progbar_target(progbar, steps: int) -> None:
    """Sets the number of steps Keras's progress bar shows for this epoch,
    which `fit` fixes once per call (AdaptiveBatch changes it per epoch);
    `ProgbarLogger` has no public setter."""
    progbar.target = steps


_UPDATES = ("_backend_update_step", "_apply_weight_decay")
_SCALERS = "_keras_multiphase_update_scalers"
_GROUPS = "_keras_multiphase_update_groups"


def scale_variable_updates(optimizer, key: str, group_of: dict, multipliers) -> None:
    """Makes this optimizer instance update each variable at the rate in
    effect times its multipliers: for every scaler registered under a `key`,
    `multipliers[group_of[id(variable)]]` (a variable the step reads;
    variables not in `group_of` keep 1).

    Keras's `apply` (3.8.0 and 3.15.1, every backend) decays the weights with
    `_apply_weight_decay(variables)`, which reads `weight_decay` and the
    rate itself, then updates them with `_backend_update_step(grads,
    variables, learning_rate)` (TensorFlow's distributes it, PyTorch's runs
    its fused `_parallel_update_step`). Calling each once per group, with
    the rate and the decay scaled, gives every group its own rate for every
    optimizer, where a gradient scale would be divided out by Adam. Keras
    has no per-variable rate (keras#5920, tensorflow#47906).
    """
    scalers = attached(optimizer, _SCALERS)
    if scalers is None:
        scalers = {}
        attach(optimizer, _SCALERS, scalers)
        _wrap_updates(optimizer, scalers)
    scalers[key] = (group_of, multipliers)
    attached(optimizer, _GROUPS).clear()


def _wrap_updates(optimizer, scalers: dict) -> None:
    update = type(optimizer)._backend_update_step.__get__(optimizer)
    decay = type(optimizer)._apply_weight_decay.__get__(optimizer)
    cache: dict = {}  # emptied whenever `scalers` changes
    attach(optimizer, _GROUPS, cache)

    def grouped(variables):
        """(multiplier, indices) per group of variables alike (the groups
        are found once per list of variables: an eager step asks at every
        step)."""
        signature = tuple(map(id, variables))
        if signature not in cache:
            groups: dict[tuple, list[int]] = {}
            for i, variable in enumerate(variables):
                key = tuple(g.get(id(variable), -1) for g, _ in scalers.values())
                groups.setdefault(key, []).append(i)
            cache.clear()
            cache[signature] = list(groups.items())
        for key, idx in cache[signature]:
            pairs = zip(key, scalers.values(), strict=True)
            factors = [m[g] for g, (_, m) in pairs if g >= 0]
            product = factors[0] if factors else 1.0
            for factor in factors[1:]:
                product = product * factor
            yield product, idx

    def backend_update_step(grads, variables, learning_rate):
        for multiplier, idx in grouped(variables):
            chosen = [variables[i] for i in idx]
            update([grads[i] for i in idx], chosen, learning_rate * multiplier)

    def apply_weight_decay(variables):
        rate = optimizer.weight_decay
        if rate is None:
            return decay(variables)
        # The rate first: reading it sets this step's multipliers (the
        # rate table's row), which the decay then reads.
        _ = optimizer.learning_rate
        try:
            for multiplier, idx in grouped(variables):
                object.__setattr__(optimizer, "weight_decay", rate * multiplier)
                decay([variables[i] for i in idx])
        finally:
            object.__setattr__(optimizer, "weight_decay", rate)

    object.__setattr__(optimizer, "_backend_update_step", backend_update_step)
    object.__setattr__(optimizer, "_apply_weight_decay", apply_weight_decay)


def unscale_variable_updates(optimizer, key: str) -> None:
    """Removes the scaler registered under `key` (`scale_variable_updates`);
    with none left, the optimizer gets its class's updates back."""
    scalers = attached(optimizer, _SCALERS)
    if scalers is None:
        return
    scalers.pop(key, None)
    attached(optimizer, _GROUPS).clear()
    if not scalers:
        for name in (*_UPDATES, _SCALERS, _GROUPS):
            vars(optimizer).pop(name, None)
