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
