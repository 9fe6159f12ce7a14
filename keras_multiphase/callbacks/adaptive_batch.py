"""AdaptiveBatch: change the batch size during one `fit`, losing no sample."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import keras
import numpy as np

from keras_multiphase import _keras_internals
from keras_multiphase._distribution import replicas
from keras_multiphase._messages import say
from keras_multiphase._validation import (
    check_choice,
    check_int,
    check_mapping_keys,
)
from keras_multiphase.batching import EpochMap, Source
from keras_multiphase.callbacks.lr_callback import LRCallback
from keras_multiphase.plateau import PlateauDetector
from keras_multiphase.schedules.scaling import BatchScale

LR_SCALING = ("none", "linear", "sqrt")
GROW_KEYS = (
    "monitor",
    "patience",
    "mode",
    "min_delta",
    "min_delta_mode",
    "cooldown",
    "factor",
    "max_batch_size",
)


class AdaptiveData(keras.utils.PyDataset):
    """What to pass to `fit` with AdaptiveBatch: `model.fit(adaptive.data)`.

    The callback's face to `fit`: each epoch, the batches of the source the
    callback set for it."""

    def __init__(self, owner):
        super().__init__()
        self._owner = owner

    @property
    def num_batches(self):
        return self._owner._source().length

    def __getitem__(self, index):
        if not self._owner._shardable_checked:
            # JAX `fit` takes a first batch (to build the model) before any
            # callback hook runs: check here that devices can split them.
            self._owner._check_shardable(replicas(None))
        return self._owner._source()[index]


@keras.saving.register_keras_serializable(package="keras_multiphase")
class AdaptiveBatch(LRCallback):
    """Changes the batch size during one `fit`, training every sample once
    per epoch.

    `rebuild(batch_size)` returns the user's data at that batch size (a
    `tf.data.Dataset` of known cardinality, a `keras.utils.PyDataset`, or
    arrays / an `(x, y[, sample_weight])` tuple, which AdaptiveBatch batches
    itself, shuffled each epoch if `shuffle`). Train with
    `model.fit(adaptive.data, callbacks=[adaptive, ...])`: each epoch has as
    many steps as its batch size needs, and the progress bar shows them.
    Passing other data to `fit` raises `ValueError` at the start.

    `schedule` maps epochs to batch sizes (`{0: 64, 10: 32, 20: 16}`),
    fractions of the run (`{0.0: 64, 0.5: 32}`) or PhaseLR phase names
    (`{"controlled": 64, "fine-tune": 16}`). `lr_scaling` multiplies the
    learning rate by `b / b0` (`"linear"`, Goyal et al. 2017) or
    `sqrt(b / b0)` (`"sqrt"`, AdaptDL's square-root rule), where `b0` is the
    first batch size; it composes with the other callbacks of this package.
    `grow_on_plateau` (Smith et al. 2018, "Don't decay the learning rate,
    increase the batch size") multiplies the batch size by `factor` when a
    monitored metric plateaus, up to `max_batch_size`.

    Logs `batch_size` for each epoch. The validation data and its batch
    size are the user's and are not changed.

    Example:

    >>> import numpy as np
    >>> x, y = np.ones((64, 4)), np.ones((64, 1))
    >>> adaptive = AdaptiveBatch(lambda b: (x, y), {0: 32, 1: 8})
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> history = model.fit(adaptive.data, epochs=2, verbose=0,
    ...                     callbacks=[adaptive])
    >>> history.history["batch_size"]
    [32, 8]

    Args:
        rebuild: Callable `batch_size -> data`.
        schedule: Mapping epoch (int) / fraction (float) / phase (str) ->
            batch size (int >= 1).
        lr_scaling: Str. `"none"`, `"linear"` or `"sqrt"`.
        grow_on_plateau: Optional mapping with `monitor`, `patience`,
            `factor` (default 2), `max_batch_size`, and `mode`,
            `min_delta`, `min_delta_mode`, `cooldown`.
        shuffle: Bool. Shuffle array data each epoch.
        seed: Int. Seed of that shuffle.
        verbose: Int. 1 prints a line when the batch size changes.
    """

    def __init__(
        self,
        rebuild: Callable[[int], object],
        schedule: Mapping,
        lr_scaling: str = "none",
        grow_on_plateau: Mapping | None = None,
        shuffle: bool = True,
        seed: int = 0,
        verbose: int = 0,
    ):
        super().__init__()
        if not callable(rebuild):
            raise ValueError(
                "Argument `rebuild` must be a callable batch_size -> data. "
                f"Received: rebuild={rebuild!r}"
            )
        self.rebuild = rebuild
        self.schedule = self._check_schedule(schedule)
        self.lr_scaling = check_choice("lr_scaling", lr_scaling, LR_SCALING)
        self.grow_on_plateau = None
        self._detector = None
        self._grow_factor, self._max_batch_size = 1, None
        self._shardable_checked = False
        if grow_on_plateau is not None:
            grow = check_mapping_keys(
                "grow_on_plateau",
                grow_on_plateau,
                GROW_KEYS,
                "{'monitor': 'val_loss', 'patience': 2, 'factor': 2}",
            )
            factor = grow.pop("factor", 2)
            if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
                raise ValueError(
                    "Argument `grow_on_plateau.factor` must be an integer >= 2. "
                    f"Received: factor={factor!r}"
                )
            max_bs = grow.pop("max_batch_size", None)
            if max_bs is not None:
                check_int("grow_on_plateau.max_batch_size", max_bs, minimum=1)
            self._grow_factor, self._max_batch_size = factor, max_bs
            self._detector = PlateauDetector(
                owner="AdaptiveBatch", prefix="grow_on_plateau.", **grow
            )
            self.grow_on_plateau = dict(grow_on_plateau)
        self.shuffle = bool(shuffle)
        self.seed = check_int("seed", seed)
        self.verbose = check_int("verbose", verbose)
        self.data = AdaptiveData(self)
        self.contribution = BatchScale()
        self._current = None  # (batch_size, Source)
        self._sample_range = None  # (low, high, batch size): samples seen
        self._epoch_iterator = None
        self._progbars = []

    @staticmethod
    def _check_schedule(schedule):
        if not isinstance(schedule, Mapping) or not schedule:
            raise ValueError(
                "Argument `schedule` must be a non-empty mapping such as "
                "{0: 64, 10: 32} (epochs), {0.0: 64, 0.5: 32} (fractions of "
                "the run) or {'controlled': 64, 'fine-tune': 16} (phases). "
                f"Received: schedule={schedule!r}"
            )
        kinds = {
            "epoch"
            if isinstance(k, int) and not isinstance(k, bool)
            else "fraction"
            if isinstance(k, float)
            else "phase"
            if isinstance(k, str)
            else "bad"
            for k in schedule
        }
        if "bad" in kinds or len(kinds) != 1:
            raise ValueError(
                "Keys of `schedule` must be all epochs (int), all fractions "
                "(float in [0, 1)) or all PhaseLR phase names (str). "
                f"Received keys {list(schedule)}"
            )
        kind = kinds.pop()
        for key, size in schedule.items():
            check_int(f"schedule[{key!r}]", size, minimum=1)
            if kind == "fraction" and not 0.0 <= key < 1.0:
                raise ValueError(
                    f"Fraction keys of `schedule` must be in [0, 1). Received "
                    f"key {key!r}"
                )
            if kind == "epoch" and key < 0:
                raise ValueError(
                    f"Epoch keys of `schedule` must be >= 0. Received key {key!r}"
                )
        if kind != "phase" and min(schedule) != 0:
            raise ValueError(
                "An epoch or fraction `schedule` must start at 0. Received "
                f"keys {sorted(schedule)}"
            )
        return {k: int(v) for k, v in schedule.items()}

    # -- batch sizes -------------------------------------------------------
    @property
    def first_batch_size(self) -> int:
        if all(isinstance(k, str) for k in self.schedule):
            return next(iter(self.schedule.values()))
        return self.schedule[min(self.schedule)]

    def scheduled_batch_size(self, epoch: int, epochs: int | None = None) -> int:
        keys = list(self.schedule)
        if isinstance(keys[0], str):
            return self._phase_batch_size()
        if isinstance(keys[0], float):
            position = epoch / float(epochs or 1)
            past = [k for k in keys if k <= position + 1e-9]
        else:
            past = [k for k in keys if k <= epoch]
        return self.schedule[max(past)]

    def preview_batch_size(self, epoch: int, epochs: int, phase: int) -> int:
        """The batch size of `epoch` in `preview` (no plateau grows it):
        `phase` is the PhaseLR phase at the epoch's first step."""
        if not isinstance(next(iter(self.schedule)), str):
            return self.scheduled_batch_size(epoch, epochs)
        names = self._plan.phases.phase_names
        sizes = [self.schedule.get(n) for n in names[: phase + 1]]
        known = [s for s in sizes if s is not None]
        return known[-1] if known else self.first_batch_size

    def preview_scale(self, batch_size: int) -> None:
        """Sets the rate factor of `batch_size`, as `on_epoch_begin` does."""
        self.contribution.scale.assign(self._lr_scale(batch_size))

    def _phase_batch_size(self) -> int:
        provider = self._plan.phases if self._plan is not None else None
        if provider is None:
            raise ValueError(
                "AdaptiveBatch's `schedule` names PhaseLR phases, but no "
                "PhaseLR is in the callbacks."
            )
        from keras_multiphase.schedules import numpy_ops

        step = np.float32(self._run_step)
        name = provider.phase_names[int(provider.phase_at(step, numpy_ops))]
        size = self.schedule.get(name)
        if size is None:
            return self._batch_size if self._current else self.first_batch_size
        return size

    def _source(self):
        if self._current is None:
            self._set_batch_size(self.first_batch_size)
        return self._current[1]

    def _set_batch_size(self, batch_size: int) -> None:
        if self._current is not None and self._current[0] == batch_size:
            return
        self._current = (batch_size, self._checked_source(batch_size, self.shuffle))

    def _checked_source(self, batch_size: int, shuffle: bool) -> Source:
        """`rebuild(batch_size)`, checked: batches of `batch_size`, and the
        same samples as every other batch size (else an epoch would train on
        another data set, and `batch_size` would be logged wrongly)."""
        source = Source(self.rebuild(batch_size), batch_size, shuffle, self.seed)
        first = source.first_batch_size()
        if first != batch_size and not (source.length == 1 and first < batch_size):
            raise ValueError(
                f"AdaptiveBatch: `rebuild({batch_size})` returned data whose "
                f"first batch has {first} samples. `rebuild(batch_size)` must "
                "batch the data at the batch size it is given."
            )
        if source.kind == "arrays":
            low = high = source.samples
        else:  # n samples in `length` batches of `batch_size`
            low, high = (source.length - 1) * batch_size + 1, source.length * batch_size
        seen = self._sample_range
        if seen is not None and (low > seen[1] or high < seen[0]):

            def count(lo, hi):
                return f"{lo}" if lo == hi else f"{lo} to {hi}"

            raise ValueError(
                f"AdaptiveBatch: `rebuild({batch_size})` returned {count(low, high)} "
                f"samples, but `rebuild({seen[2]})` returned "
                f"{count(seen[0], seen[1])}. Every batch size must cover the "
                "same samples."
            )
        if seen is None:
            self._sample_range = (low, high, batch_size)
        else:
            self._sample_range = (max(low, seen[0]), min(high, seen[1]), seen[2])
        return source

    @property
    def _batch_size(self) -> int:
        return self._current[0]

    # -- LR contribution ------------------------------------------------------
    def _create_state(self, store) -> None:
        self.contribution.scale = store.variable(f"{self._key}.lr_scale", 1.0)
        # The table is sized for the longest epoch (the smallest scheduled
        # batch size), when the first callback gets `set_params`.
        self.contribution.longest = self._longest_epoch()
        self._grown = store.variable(f"{self._key}.grown", 0.0)
        if self._detector is not None:
            self._detector.attach(
                store.variable(f"{self._key}.plateau", self._detector.initial_state())
            )

    def set_params(self, params):
        # The plan's epoch map, known once `fit` gives the epochs; the engine
        # makes the plan at train begin.
        self.contribution.epoch_map = self._epoch_map((params or {}).get("epochs"))
        super().set_params(params)

    def _epoch_map(self, epochs):
        """Epoch -> step map from the scheduled batch sizes (None when the
        schedule follows PhaseLR phases, which themselves need the map)."""
        if isinstance(next(iter(self.schedule)), str) or not epochs:
            return None
        lengths = {}
        per_epoch = []
        for epoch in range(int(epochs)):
            size = self.scheduled_batch_size(epoch, epochs)
            if size not in lengths:
                if self._current is not None and self._current[0] == size:
                    lengths[size] = self._current[1].length
                else:
                    lengths[size] = self._checked_source(size, False).length
            per_epoch.append(lengths[size])
        return EpochMap(per_epoch)

    def _longest_epoch(self) -> int:
        """An upper bound of the steps of any epoch (those at the smallest
        scheduled batch size)."""
        source = self._source()
        size = min(self.schedule.values())
        return math.ceil(source.length * self._current[0] / size)

    def _lr_scale(self, batch_size: int) -> float:
        ratio = batch_size / self.first_batch_size
        return {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[self.lr_scaling]

    # -- Keras hooks ------------------------------------------------------------
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        found = _keras_internals.running_fit_locals("epoch_iterator", "callbacks")
        if found is None or found["epoch_iterator"] is None:
            raise ValueError(
                "AdaptiveBatch must be used from `model.fit`; this Keras "
                f"version ({keras.__version__}) does not expose fit's epoch "
                "iterator as expected."
            )
        epoch_iterator, callbacks = found["epoch_iterator"], found["callbacks"]
        adapter = getattr(epoch_iterator, "data_adapter", None)
        if getattr(adapter, "py_dataset", None) is not self.data:
            raise ValueError(
                "AdaptiveBatch is in the callbacks, but `fit` was given other "
                "data. Pass `adaptive.data` as `x` (and no `y`): "
                "model.fit(adaptive.data, epochs=..., callbacks=[adaptive])."
            )
        if epoch_iterator.steps_per_epoch:
            raise ValueError(
                "AdaptiveBatch sets the number of steps of each epoch itself; "
                "do not pass `steps_per_epoch` to `fit`. Received: "
                f"steps_per_epoch={epoch_iterator.steps_per_epoch}"
            )
        self._check_shardable(replicas(self.model))
        self._epoch_iterator = epoch_iterator
        self._progbars = [
            c
            for c in getattr(callbacks, "callbacks", [])
            if isinstance(c, keras.callbacks.ProgbarLogger)
        ]

    def _check_shardable(self, count: int) -> None:
        """JAX `DataParallel` splits every batch evenly over its devices:
        refuse batch sizes (and, for arrays, last partial batches) that do
        not divide, here rather than as a sharding error inside the step.
        tf.distribute splits uneven batches itself."""
        self._shardable_checked = True
        if count <= 1 or keras.backend.backend() != "jax":
            return
        sizes = sorted(set(self.schedule.values()))
        samples = None
        source = self._source()
        if source.kind == "arrays":
            samples = source.samples
        for size in sizes:
            if size % count:
                raise ValueError(
                    f"AdaptiveBatch: batch size {size} in `schedule` is the "
                    f"global batch and must be divisible by the {count} "
                    "data-parallel devices of keras.distribution. Received: "
                    f"schedule={self.schedule!r}"
                )
            if samples is not None and (samples % size) % count:
                raise ValueError(
                    f"AdaptiveBatch: {samples} samples at batch size {size} "
                    f"leave a last batch of {samples % size}, which the "
                    f"{count} data-parallel devices cannot split evenly. Use "
                    f"a number of samples divisible by {count}."
                )
        if self._max_batch_size and self._max_batch_size % count:
            raise ValueError(
                "AdaptiveBatch: `grow_on_plateau.max_batch_size` must be "
                f"divisible by the {count} data-parallel devices. Received: "
                f"max_batch_size={self._max_batch_size}"
            )

    def on_epoch_begin(self, epoch, logs=None):
        # On JAX, reading `model` syncs the training state. The engine
        # writes the epoch's rates at `begin_epoch` below, with this epoch's
        # factor and steps (the base class's hook would tell it first).
        _ = self.model
        epochs = (self.params or {}).get("epochs")
        size = self.scheduled_batch_size(epoch, epochs)
        grown = int(float(self._grown.numpy()))
        if grown:
            size = size * self._grow_factor**grown
            if self._max_batch_size:
                size = min(size, self._max_batch_size)
        previous = self._current[0] if self._current else None
        self._set_batch_size(size)
        self._current[1].new_epoch(epoch)
        self.contribution.scale.assign(self._lr_scale(size))
        self.contribution.batch_size = size
        steps = self._current[1].length
        # The engine writes the epoch's rates now, for this many steps.
        self._composer.begin_epoch(epoch, steps)
        _keras_internals.set_epoch_steps(self._epoch_iterator, steps)
        for progbar in self._progbars:
            _keras_internals.set_progbar_target(progbar, steps)
        if self.verbose and previous is not None and previous != size:
            say(
                f"\nEpoch {epoch + 1}: AdaptiveBatch: batch size {previous} -> "
                f"{size} ({steps} steps)."
            )

    def _on_epoch_end(self, epoch: int, logs: dict) -> None:
        logs["batch_size"] = self._batch_size
        if self._detector is not None and self._detector.update(logs):
            grown = float(self._grown.numpy()) + 1
            self._grown.assign(grown)

    @classmethod
    def from_config(cls, config: dict):
        """Builds the callback from `get_config()`'s output; a `rebuild`
        serialized by Keras (a function, by name) is deserialized first."""
        config = dict(config)
        if isinstance(config.get("rebuild"), dict):
            config["rebuild"] = keras.saving.deserialize_keras_object(config["rebuild"])
        return cls(**config)

    def get_config(self) -> dict:
        return {
            "rebuild": self.rebuild,
            "schedule": self.schedule,
            "lr_scaling": self.lr_scaling,
            "grow_on_plateau": self.grow_on_plateau,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "verbose": self.verbose,
        }
