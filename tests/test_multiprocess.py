"""Two JAX processes on this CPU train one model together
(tests/multiprocess_checks.py): the same peak, rates, loss weights, batch
sizes and losses on both, and the same final weights. A process given
another peak is refused on both, naming the difference."""

import json
import os
import socket
import subprocess
import sys

import keras
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
pytestmark = [
    pytest.mark.skipif(
        keras.backend.backend() != "jax",
        reason="jax.distributed: the JAX pass runs it",
    ),
    # Before it, Keras takes only a tf.data.Dataset under several processes
    # and shards it itself: the check gives each process its own arrays.
    pytest.mark.skipif(
        not hasattr(keras.distribution.DataParallel, "auto_shard_dataset"),
        reason="Keras without DataParallel.auto_shard_dataset (before 3.10)",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_pair(tmp_path, mode):
    """Runs the two processes; returns their exit codes, outputs and
    results."""
    port = str(free_port())
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                os.path.join(HERE, "multiprocess_checks.py"),
                str(i),
                port,
                str(tmp_path / f"{i}.json"),
                mode,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in (0, 1)
    ]
    try:
        outputs = [p.communicate(timeout=420)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    results = []
    for i in (0, 1):
        path = tmp_path / f"{i}.json"
        results.append(json.loads(path.read_text()) if path.exists() else None)
    return [p.returncode for p in procs], outputs, results


def test_two_processes_decide_and_end_alike(tmp_path):
    codes, outputs, (a, b) = run_pair(tmp_path, "auto")
    assert codes == [0, 0], "\n\n".join(o[-4000:] for o in outputs)
    logged = a["logged"]
    assert logged["peak_lr"][0] > 0  # the range test ran and found a peak
    assert len(set(logged["batch_size"])) > 1  # AdaptiveBatch changed it
    assert len(set(logged["value_loss_weight"])) > 1  # the balancer moved
    assert a["logged"] == b["logged"]  # exactly: peak, rates, weights, losses
    assert a["weights"] == b["weights"]


def test_a_process_with_another_peak_is_refused(tmp_path):
    codes, outputs, _ = run_pair(tmp_path, "skew")
    assert codes[0] != 0 and codes[1] != 0
    for output in outputs:
        assert "differs between processes" in output, output[-4000:]
        assert "peak_lr" in output
