"""Calls go one way (docs/design.md, "Who calls whom"): through whole fits,
no module of the package calls back into a module that called it.

Every call into the package's code is observed (`sys.setprofile`) with the
chain of package frames above it, up to the first frame that is not the
package's (Keras calling a callback, the optimizer asking for its rate:
Keras is the caller there). The callbacks' modules count as one (a base
class and its subclasses: a template method is not a call back). The chain
must not visit a module, leave it, and come back.
"""

import os
import sys

import keras
import numpy as np

import keras_multiphase
from keras_multiphase import AdaptiveBatch, LayerRates, OneCycle, PlateauLR, preview

PACKAGE = os.path.dirname(keras_multiphase.__file__)
# `fit`'s wrapper runs what a fit left behind when it ends, as Keras runs
# the callbacks' `on_train_end`: the package's frames there act for Keras.
FOR_KERAS = {("_keras_internals.py", "fit"), ("_keras_internals.py", "_run_pending")}


def _module(frame):
    path = frame.f_code.co_filename
    if not path.startswith(PACKAGE + os.sep):
        return None
    module = os.path.relpath(path, PACKAGE)
    if (module, frame.f_code.co_name) in FOR_KERAS:
        return None
    return "callbacks" if module.startswith("callbacks" + os.sep) else module


def _chain(frame) -> list:
    """The package modules of the frames from `frame` up, until one that is
    not the package's; consecutive repeats merged. Caller first."""
    chain = []
    while frame is not None:
        module = _module(frame)
        if module is None:
            break
        if not chain or chain[-1] != module:
            chain.append(module)
        frame = frame.f_back
    return chain[::-1]


def calls_back(run) -> set:
    """Chains of modules in which one calls back into a caller, seen while
    `run()` runs."""
    found = set()

    def profile(frame, event, arg):
        if event == "call" and _module(frame) is not None:
            chain = _chain(frame)
            if len(set(chain)) < len(chain):
                found.add(" -> ".join(chain))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return found


def _two_heads():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = {
        "big": keras.layers.Dense(1, name="big")(hidden),
        "small": keras.layers.Dense(1, name="small")(hidden),
    }
    model = keras.Model(inputs, outputs)
    model.compile("adam", {"big": "mse", "small": "mse"})
    return model


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = {"big": 50 * x[:, :1], "small": x[:, 1:2]}
    return x, y


def test_the_check_finds_a_call_back():
    from keras_multiphase.engine.composer import ComposedLearningRate
    from keras_multiphase.engine.plan import BASE

    class Callback:  # a contribution that calls the engine back
        role = BASE

        def base_rate(self, step, xp):
            return engine.original_rate(step, xp)

    Callback.base_rate.__code__ = Callback.base_rate.__code__.replace(
        co_filename=os.path.join(PACKAGE, "callbacks", "made_up.py")
    )
    engine = ComposedLearningRate(original=0.1)
    engine.providers["x"] = Callback()
    found = calls_back(lambda: engine.evaluate(np.arange(3)))
    back = "engine/composer.py -> callbacks -> engine/composer.py"
    assert found and all(chain.startswith(back) for chain in found), found


def test_no_module_calls_back_into_its_caller(tmp_path):
    x, y = _data()

    def fits():
        model = _two_heads()
        callbacks = keras_multiphase.preset(
            "multiphase", balance="magnitude", log_dir=str(tmp_path / "a")
        )
        callbacks[0].range_test.update(num_steps=20)
        callbacks.append(LayerRates({"big": 0.5}))
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=callbacks)
        # Again on the same model (a new run), with a given peak.
        callbacks = keras_multiphase.preset("multiphase", peak_lr=1e-3)
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
        model = _two_heads()
        adaptive = AdaptiveBatch(lambda b: (x, y), {0: 16, 1: 8})
        callbacks = [
            OneCycle(max_lr=1e-2, log_dir=str(tmp_path / "b")),
            adaptive,
            PlateauLR(monitor="loss", patience=0, verbose=1),
        ]
        model.fit(adaptive.data, epochs=3, verbose=0, callbacks=callbacks)
        model = _two_heads()  # per-phase layer rates, AdamW's decay
        model.compile(keras.optimizers.AdamW(1e-3), {"big": "mse", "small": "mse"})
        callbacks = keras_multiphase.preset("fine_tune", peak_lr=1e-3)
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=callbacks)
        preview("fine_tune", epochs=4, steps_per_epoch=5)

    assert calls_back(fits) == set()
