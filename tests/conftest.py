"""Shared fixtures: seeds, and the backend this run uses."""

import os

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()


def pytest_report_header(config):
    return f"KERAS_BACKEND={BACKEND} keras={keras.__version__}"


@pytest.fixture(autouse=True)
def _seed_and_clear():
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def tmp_dir(tmp_path):
    return os.fspath(tmp_path)


@pytest.fixture
def accelerator_reads(monkeypatch):
    """Eager PyTorch as on an accelerator: the composed rate takes the path
    that never reads the step back to Python (on a GPU such a read waits
    for every queued step). Yields what waited all the same: the steps the
    rate was computed for in Python, and any PyTorch op, run while the
    rate is asked for, that reads a value back to the host or makes a
    tensor from host data (on a GPU, a copy that waits for the queue)."""
    if BACKEND != "torch":
        pytest.skip("the eager step that reads the rate is PyTorch's")
    from torch.utils._python_dispatch import TorchDispatchMode

    from keras_multiphase.engine import composer

    waited = []
    host_ops = {"_local_scalar_dense", "lift_fresh", "lift_fresh_copy", "item"}

    class HostOps(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.__name__.split(".")[0] in host_ops:
                waited.append(str(func))
            return func(*args, **(kwargs or {}))

    monkeypatch.setattr(composer, "_host_read_waits", lambda step: True)
    call = composer.ComposedLearningRate.__call__
    host_rate = composer.ComposedLearningRate._host_rate

    def logged(self, step):
        with HostOps():
            return call(self, step)

    def counted(self, step):
        waited.append(step)
        return host_rate(self, step)

    monkeypatch.setattr(composer.ComposedLearningRate, "__call__", logged)
    monkeypatch.setattr(composer.ComposedLearningRate, "_host_rate", counted)
    return waited
