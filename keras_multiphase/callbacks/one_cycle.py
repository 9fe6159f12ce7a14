"""OneCycle: the 1cycle policy, step for step as PyTorch's `OneCycleLR`."""

from __future__ import annotations

import keras

from keras_multiphase import _keras_internals
from keras_multiphase._validation import (
    check_bool,
    check_choice,
    check_log_dir,
    check_number,
    check_positive,
    check_ratio,
)
from keras_multiphase.callbacks.lr_callback import LRCallback
from keras_multiphase.lr_finder.auto_peak import AUTO, find_peak, sweep_verbose
from keras_multiphase.schedules import numpy_ops
from keras_multiphase.schedules.one_cycle_schedule import ANNEAL, OneCycleShape

# Optimizer attributes that hold a momentum, as PyTorch cycles `betas[0]` or
# `momentum`.
MOMENTUM_ATTRIBUTES = ("beta_1", "momentum")


@keras.saving.register_keras_serializable(package="keras_multiphase")
class OneCycle(LRCallback):
    """The 1cycle policy (Smith & Topin 2018), as PyTorch's `OneCycleLR`.

    The rate rises from `max_lr / div_factor` to `max_lr` over the first
    `pct_start` of the run, then anneals to `max_lr / div_factor /
    final_div_factor`; with `three_phase=True` it first comes back to the
    initial rate, then anneals. The momentum (`beta_1` of Adam-like
    optimizers, `momentum` of SGD or RMSprop when it is not 0) moves the
    other way, between `max_momentum` and `base_momentum`, as PyTorch and
    fastai do. Phase boundaries are PyTorch's: the first phase ends at step
    `pct_start * total_steps - 1`, the last at `total_steps - 1`; every
    step's rate and momentum equal `OneCycleLR`'s (tested against it). The
    rate is the base of this package's composition (like `PhaseLR`, with
    which it cannot be combined); the momentum is set inside the compiled
    step, and the optimizer gets its own back when the fit ends.

    ```
    pct = (step - phase start) / (phase end - phase start)
    cos:    end + (start - end) / 2 * (1 + cos(pi * pct))
    linear: start + (end - start) * pct
    ```

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> history = model.fit(np.ones((40, 4)), np.ones((40, 1)), epochs=10,
    ...                     batch_size=8, verbose=0,
    ...                     callbacks=[OneCycle(max_lr=1e-2)])
    >>> rates = history.history["learning_rate"]
    >>> round(rates[0], 6), max(rates) <= 1e-2
    (0.0004, True)

    Args:
        max_lr: Optional float > 0 or `"auto"`. The peak rate; defaults to
            the optimizer's own rate. `"auto"` finds it with a learning-rate
            range test when training starts, as `PhaseLR(peak_lr="auto")`
            does (reported as `fit`'s `verbose` allows, logged as `peak_lr`,
            kept for a resumed run; the optimizer's rate, with a warning,
            when the test is inconclusive).
        pct_start: Float in (0, 1). Share of the run spent rising.
        div_factor: Float > 0. `initial rate = max_lr / div_factor`.
        final_div_factor: Float > 0. `final rate = initial / final_div_factor`.
        anneal_strategy: Str. `"cos"` or `"linear"`.
        three_phase: Bool. PyTorch's `three_phase`.
        cycle_momentum: Bool. Cycle the optimizer's momentum.
        base_momentum: Float in [0, 1]. The momentum at the peak rate.
        max_momentum: Float in [0, 1]. The momentum at the ends.
        total_steps: Optional int. Steps of the cycle; defaults to the
            run's (`epochs` x steps per epoch).
        log_dir: Optional folder for every step's rate, momentum and
            phase, as PhaseLR's `log_dir`.
    """

    def __init__(
        self,
        max_lr: float | str | None = None,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal_strategy: str = "cos",
        three_phase: bool = False,
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        total_steps: int | None = None,
        log_dir: str | None = None,
    ):
        super().__init__()
        self.log_dir = check_log_dir(log_dir)
        if max_lr is not None and max_lr != AUTO:
            max_lr = check_number("max_lr", max_lr, "a number > 0, 'auto' or None")
            max_lr = check_positive("max_lr", max_lr)
        self.max_lr = max_lr
        self.pct_start = check_ratio("pct_start", pct_start, upper_open=True)
        if self.pct_start <= 0:
            raise ValueError(
                "Argument `pct_start` must be in (0, 1). "
                f"Received: pct_start={pct_start!r}"
            )
        self.div_factor = check_positive("div_factor", div_factor)
        self.final_div_factor = check_positive("final_div_factor", final_div_factor)
        self.anneal_strategy = check_choice("anneal_strategy", anneal_strategy, ANNEAL)
        self.three_phase = check_bool("three_phase", three_phase)
        self.cycle_momentum = check_bool("cycle_momentum", cycle_momentum)
        self.base_momentum = check_ratio("base_momentum", base_momentum)
        self.max_momentum = check_ratio("max_momentum", max_momentum)
        if total_steps is not None:
            total_steps = int(check_number("total_steps", total_steps, "an int >= 2"))
            if total_steps < 2:
                raise ValueError(
                    "Argument `total_steps` must be >= 2. "
                    f"Received: total_steps={total_steps}"
                )
        self.total_steps = total_steps
        config = self.get_config()
        config.pop("log_dir")
        self.contribution = OneCycleShape(config)
        self._momentum = None  # (optimizer, attribute, original value, variable)
        self._peak = None  # the found peak of max_lr="auto" (state)
        self.range_test_result = None

    # -- phases ----------------------------------------------------------
    @property
    def phase_names(self) -> list[str]:
        return self.contribution.phase_names

    def phase_indices(self, names_or_indices) -> list[int]:
        return self.contribution.phase_indices(names_or_indices)

    # -- momentum --------------------------------------------------------
    def _momentum_attribute(self):
        """`(optimizer, name, value)` of the momentum to cycle, or None."""
        from keras_multiphase._state import unwrap_optimizer

        optimizer = unwrap_optimizer(self._optimizer)
        for name in MOMENTUM_ATTRIBUTES:
            value = getattr(optimizer, name, None)
            if isinstance(value, keras.Variable) and self._momentum is not None:
                return self._momentum[:3]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if name == "momentum" and value == 0:
                    continue  # no momentum buffer to cycle (Keras SGD, RMSprop)
                return optimizer, name, value
        return None

    def _create_state(self, store) -> None:
        # Created with the other state, when the model is set: Keras < 3.10
        # on JAX records the training state's layout before `on_train_begin`.
        if self.max_lr == AUTO:
            # 0 = not found yet; a resumed run finds the value it used.
            self._peak = store.variable(f"{self._key}.peak_lr", 0.0)
        self.contribution.momentum_state = None
        if self.cycle_momentum and self._momentum_attribute() is not None:
            self.contribution.momentum_state = store.variable(
                f"{self._key}.momentum", self.max_momentum, in_step=True
            )

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._peak is not None:
            if not float(self._peak.numpy()) > 0:
                # Before the momentum is cycled and the composed rate
                # installed: the sweep trains through its own step.
                peak, self.range_test_result = find_peak(
                    self.model,
                    self._plan.own_rate,
                    {},
                    sweep_verbose(self.params, 0),
                    "OneCycle(max_lr='auto')",
                )
                self._peak.assign(peak)
            self.assume_peak(float(self._peak.numpy()))
            self.contribution.resolve(self._plan)
        if self.contribution.momentum_state is not None and self._momentum is None:
            optimizer, name, value = self._momentum_attribute()
            variable = self.contribution.momentum_state
            variable.assign(self.contribution.value(0, 2, numpy_ops))
            if name == "momentum":
                _keras_internals.as_nonzero_momentum(variable)
            _keras_internals.set_optimizer_hyperparameter(optimizer, name, variable)
            self._momentum = (optimizer, name, value, variable)
            # The engine traces the step with it at the first epoch's start.
            self.contribution.momentum = variable

    def assume_peak(self, value: float) -> None:
        """The peak of `max_lr="auto"`: the range test's (or, in `preview`,
        which has no data, the optimizer's rate)."""
        if self.max_lr == AUTO:
            self.contribution.found_peak = float(value)

    def _on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self._peak is not None:
            logs["peak_lr"] = float(self._peak.numpy())

    def _end_of_fit(self) -> None:
        if self._momentum is not None:
            optimizer, name, value, _ = self._momentum
            _keras_internals.set_optimizer_hyperparameter(optimizer, name, value)
            self._momentum = None
            self.contribution.momentum = None
        super()._end_of_fit()

    def get_config(self) -> dict:
        return {
            "max_lr": self.max_lr,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "anneal_strategy": self.anneal_strategy,
            "three_phase": self.three_phase,
            "cycle_momentum": self.cycle_momentum,
            "base_momentum": self.base_momentum,
            "max_momentum": self.max_momentum,
            "total_steps": self.total_steps,
            "log_dir": self.log_dir,
        }
