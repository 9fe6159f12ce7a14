"""Where this package's variables are created under multi-device training.

TensorFlow: a model compiled under `strategy.scope()` keeps its variables as
`MirroredVariable`s, one copy per replica. The package's own variables
(schedule state, loss weights) are created from callbacks, outside that
scope; created there they would be plain variables on one device, read by
every replica across devices. `creation_scope(obj)` re-enters the strategy
the model or optimizer was built under, so they are mirrored like the
model's and a callback's `assign` (cross-replica context) updates every
copy. JAX's `keras.distribution` gives each new variable the layout of the
global distribution (replicated under `DataParallel`) with no scope.

Several JAX processes (`jax.distributed`, one per host): each process runs
the callbacks on its own host. The losses they decide from are computed on
the global batch, so they agree; `agree` makes it so by construction, giving
every process process 0's values of the state that sets the rates, loss
weights and batch sizes, at train begin and when each epoch begins.

PyTorch: Keras has no multi-device API on that backend; a torch.distributed
process group of more than one process is refused (`check_supported`).
"""

from __future__ import annotations

import contextlib
import json
import zlib

import keras
import numpy as np

from keras_multiphase import _keras_internals


def _tf_strategy(obj):
    if isinstance(obj, keras.Model):
        return obj.distribute_strategy
    return _keras_internals.optimizer_strategy(obj)


def creation_scope(obj):
    """A context in which to create a variable that `obj` (a model or an
    optimizer) uses in its train step."""
    if keras.backend.backend() != "tensorflow":
        return contextlib.nullcontext()
    import tensorflow as tf

    strategy = _tf_strategy(obj)
    if strategy is None or tf.distribute.has_strategy():
        return contextlib.nullcontext()
    return strategy.scope()


def replicas(model) -> int:
    """Number of data-parallel replicas `model` trains on (1 if none)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        strategy = _tf_strategy(model)
        return int(strategy.num_replicas_in_sync) if strategy is not None else 1
    if backend == "jax":
        distribution = keras.distribution.distribution()
        if distribution is None:
            return 1
        mesh = distribution.device_mesh
        batch_dim = getattr(distribution, "batch_dim_name", None)
        if batch_dim is None or batch_dim not in mesh.axis_names:
            return 1
        return int(mesh.shape[mesh.axis_names.index(batch_dim)])
    return 1


def check_supported(owner: str) -> None:
    """Raises a ValueError for a setup this package does not support."""
    if keras.backend.backend() != "torch":
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        raise ValueError(
            f"{owner}: multi-process PyTorch training (torch.distributed "
            f"world size {dist.get_world_size()}) is not supported: Keras 3 "
            "has no distribution API on the torch backend, and this "
            "package's state would diverge between processes. Supported on "
            "torch: one process (CPU or one GPU). For multi-device training "
            "use the TensorFlow backend with tf.distribute or the JAX "
            "backend with keras.distribution."
        )


def process_count() -> int:
    """Processes training together (JAX's `jax.distributed`; 1 otherwise)."""
    if keras.backend.backend() != "jax":
        return 1
    import jax

    return int(jax.process_count())


def agree(values: dict) -> dict:
    """Process 0's `values` (`{name: array}`) on every process; `values`
    themselves in a single process. Every process must call it (a
    collective), which holds as they run the same callbacks."""
    if process_count() == 1:
        return values
    from jax.experimental import multihost_utils

    agreed = multihost_utils.broadcast_one_to_all(
        {k: np.asarray(v) for k, v in values.items()}
    )
    return {k: np.asarray(v) for k, v in agreed.items()}


# Settings a process may have of its own (where it writes, what it says).
LOCAL_SETTINGS = ("log_dir", "verbose")


def check_same_everywhere(what: str, config: dict) -> None:
    """Raises a ValueError when `config` differs between processes: each
    process would train at its own rates, and the replicas of the weights
    would silently part (a collective; a no-op in a single process)."""
    if process_count() == 1:
        return
    import jax
    from jax.experimental import multihost_utils

    config = {k: v for k, v in config.items() if k not in LOCAL_SETTINGS}
    text = json.dumps(
        config, sort_keys=True, default=lambda o: getattr(o, "__qualname__", repr(o))
    )
    mine = np.array([zlib.crc32(text.encode())], np.uint32).view(np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine)).ravel()
    others = [i for i, v in enumerate(every.tolist()) if v != every[0]]
    if others:
        raise ValueError(
            f"{what}: the configuration differs between processes (processes "
            f"{others} do not match process 0). Process {jax.process_index()} "
            f"has {text}. Give every process the same callbacks and arguments."
        )
