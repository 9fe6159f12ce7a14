"""Private Keras API and Keras version differences, in one place.

Each function says why no public API serves (or which versions differ) and
the Keras versions it was checked on (3.8.0 and 3.15.1 unless said). Older
modules still touch some internals directly (`_composer.py`, `_state.py`,
`adaptive_batch.py`, `loss_weight_balancer.py`); moving them here is
issue 12's seam.
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


def track_optimizer_variable(optimizer, variable) -> None:
    """Makes `optimizer` track a variable created earlier, untracked.

    Public `optimizer.add_variable` creates a new variable; this package
    keeps epoch-level state untracked (a JAX step would carry it in and out
    at every step) and tracks it only when the step has to read it (the
    rate evaluated from formulas, see `_composer.py`): the variables already
    hold values and are referenced by the callbacks.
    """
    optimizer._track_variable(variable)


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
