"""Every callback on 2 devices of this CPU: tf.distribute and keras.distribution.

The checks run in a fresh process (tests/distributed_checks.py, which
documents what each one measures): the CPU must be split into devices
before TensorFlow starts its runtime or before JAX is imported. The
TensorFlow check runs in the tensorflow pass of the suite, the JAX check in
the jax pass; the torch pass checks the error for multi-process training.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BACKEND = keras.backend.backend()
# MultiWorkerMirroredStrategy runs here as one worker (no TF_CONFIG): one
# replica. Two workers on localhost fail inside Keras 3.15 itself (plain
# `fit`, no callback: `strategy.reduce` of a PerReplica batch in
# `_maybe_symbolic_build`), so that setup is documented, not tested.
MODES = {
    "tensorflow": [("tf-mirrored", 2), ("tf-multiworker", 1)],
    "jax": [("jax-dataparallel", 2)],
    "torch": [],
}


@pytest.fixture(
    scope="module", params=MODES[BACKEND] or [None], ids=lambda p: p and p[0]
)
def result(request):
    if request.param is None:
        pytest.skip("Keras has no multi-device API on the torch backend")
    mode, replicas = request.param
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "distributed_checks.py"), mode],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    out["expected_replicas"] = replicas
    return out


def test_replicas_and_every_variable_on_each(result):
    replicas = result["expected_replicas"]
    assert result["replicas"] == replicas
    for check in ("lr", "weights"):
        placement = result[check]["placement"]
        assert placement and set(placement.values()) == {replicas}, placement
    ours = [k for k in result["weights"]["placement"] if "keras_multiphase" in k]
    assert any("loss_weight" in k for k in result["weights"]["placement"])
    assert ours
    if BACKEND == "tensorflow":
        # Each replica traced the step on its share of the global batch of 4.
        assert result["lr"]["traced_batch"] == [4 // replicas]


def test_learning_rate_through_the_step(result):
    lr = result["lr"]
    np.testing.assert_allclose(lr["schedule_moves"], lr["schedule_expected"], rtol=1e-5)
    np.testing.assert_allclose(lr["plateau_moves"], lr["plateau_expected"], rtol=1e-5)


def test_loss_weights_through_the_step(result):
    weights = result["weights"]
    np.testing.assert_allclose(weights["moves"], weights["expected"], rtol=1e-5)
    np.testing.assert_allclose(weights["loss"], weights["weighted_sum"], rtol=1e-5)


@pytest.mark.parametrize("source", ["batch_arrays", "batch_tf_data"])
def test_adaptive_batch_every_sample_once_per_epoch(result, source):
    if source not in result:
        pytest.skip("tf.data needs tensorflow, which is not installed")
    batch = result[source]
    # After epoch e every row is at exactly -(e + 1): each sample trained on
    # once per epoch, on one replica, whatever the global batch size.
    assert batch["row_values"] == [[-1.0], [-2.0], [-3.0]]
    assert batch["steps"] == [3, 6, 12]
    assert batch["batch_size"] == [32, 16, 8]


def test_uneven_batches_are_refused_on_jax(result):
    if BACKEND != "jax":
        pytest.skip("tf.distribute splits uneven batches itself")
    assert result["indivisible"] == (
        "AdaptiveBatch: 95 samples at batch size 32 leave a last batch of 31, "
        "which the 2 data-parallel devices cannot split evenly. Use a number "
        "of samples divisible by 2."
    )


@pytest.mark.skipif(BACKEND != "torch", reason="torch-only guard")
def test_torch_multi_process_training_is_refused(monkeypatch):
    import torch.distributed as dist

    import keras_multiphase as km

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    callbacks = (
        km.PhaseLR([{"name": "a", "lr": 0.1}]),
        km.PlateauLR(monitor="loss"),
        km.LossWeightBalancer(),
    )
    for callback in callbacks:
        callback.set_model(model)
    # A process group of 2 (as torchrun would start): every callback refuses
    # at train begin. The hooks are called directly: torch itself cannot run
    # with a faked process group.
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    for callback in callbacks:
        with pytest.raises(ValueError, match="world size 2.*not supported"):
            callback.on_train_begin()
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 1)
    callbacks[0].on_train_begin()  # one process: accepted


def test_example_script_runs_on_this_backend():
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(os.path.dirname(HERE), "examples", "distributed.py"),
            "--epochs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, KERAS_BACKEND=BACKEND),
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    replicas = 1 if BACKEND == "torch" else 2
    assert f"backend {BACKEND}: {replicas} replica(s)" in proc.stdout
    assert "epoch  1  batch  32" in proc.stdout  # 2 epochs: 64, then 32
