"""Base of this package's callbacks: they act between epochs, never inside one."""

from __future__ import annotations

import keras

from keras_multiphase._messages import say_once

_Callback = keras.callbacks.Callback

# The `fit` hooks whose base versions call Keras's legacy hooks.
LEGACY_HOOKS = {
    "on_train_batch_begin": "on_batch_begin",
    "on_train_batch_end": "on_batch_end",
}
BATCH_END_HOOKS = ("on_train_batch_end", "on_test_batch_end", "on_predict_batch_end")


def _nothing(self, batch, logs=None):
    """Does nothing: the callback has no work during an epoch."""


class EpochCallback(_Callback):
    """A Keras `Callback` whose batch hooks cost Keras's loop one call each.

    Keras calls every attached callback's batch hooks at every step, whatever
    they do, and `keras.callbacks.Callback`'s versions of the `fit` hooks
    call `on_batch_begin` / `on_batch_end` in turn: two Python calls per
    hook. This package's callbacks decide at epoch boundaries only, so their
    batch hooks return at once: one call each, half of what a plain
    callback costs per step (`benchmarks/instructions.py` counts it).

    Keras hands batch-end hooks to a thread (on JAX and PyTorch) only while
    no attached callback overrides one, unless the callback says it is
    `async_safe`; these no-ops are, so attaching this package's callbacks
    keeps that dispatch. A subclass that overrides a batch-end hook is not
    declared safe, and one that overrides Keras's legacy `on_batch_begin` /
    `on_batch_end` gets Keras's forwarding to it back.

    Example:

    >>> import keras_multiphase as km
    >>> callback = km.PhaseLR([{"name": "all", "lr": 1e-3}])
    >>> callback.async_safe
    True
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for hook, legacy in LEGACY_HOOKS.items():
            if legacy in cls.__dict__ and hook not in cls.__dict__:
                # Keras's version of the hook calls the subclass's legacy one.
                setattr(cls, hook, getattr(_Callback, hook))

    @property
    def async_safe(self) -> bool:
        """True while every batch-end hook is this class's no-op."""
        return all(getattr(type(self), hook) is _nothing for hook in BATCH_END_HOOKS)

    # Notes from `preset()` (a skipped entry), said at train begin, once per
    # process (a notebook that builds the preset for every fit sees it once).
    train_begin_notes: tuple = ()

    def on_train_begin(self, logs=None):
        """Says `train_begin_notes` once, when `fit`'s verbose is not 0."""
        if self.train_begin_notes and (self.params or {}).get("verbose"):
            for note in self.train_begin_notes:
                say_once(note)
            self.train_begin_notes = ()

    on_train_batch_begin = _nothing
    on_train_batch_end = _nothing
    on_test_batch_begin = _nothing
    on_test_batch_end = _nothing
    on_predict_batch_begin = _nothing
    on_predict_batch_end = _nothing
