"""The learning-rate range test (Smith 2015; fastai `lr_find`, Lightning
`LearningRateFinder`).

Trains for at most `num_steps` steps while the rate grows exponentially from
`start_lr` to `end_lr`, records the loss of every batch, stops when the loss
diverges, then puts every variable back: weights, optimizer slots,
`iterations`, metric states. The suggested rate comes from a rule of
`suggestions.py`, applied to a lag-free smoothed curve, and only when the
sweep is conclusive.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import keras
import numpy as np
from keras import ops

from keras_multiphase import _keras_internals
from keras_multiphase._messages import say
from keras_multiphase._state import unwrap_optimizer
from keras_multiphase._validation import (
    check_choice,
    check_int,
    check_positive,
    check_verbose,
)
from keras_multiphase.lr_finder import suggestions
from keras_multiphase.lr_finder.data import batches

OK = "ok"
NAN_AT_ONCE = "nan_at_once"
NEVER_FELL = "never_fell"
NEVER_DIVERGED = "never_diverged"
DATA_ENDED = "data_ended"
NEGATIVE_LOSS = "negative_loss"

# A sweep whose smoothed loss falls by less than this share never fell.
MIN_FALL = 0.05
# Points at the start of a sweep that cannot trigger the divergence stop.
MIN_POINTS = 8


@dataclasses.dataclass
class LRFinderResult:
    """What a range test measured and what it suggests.

    Attributes:
        rates: NumPy array. The rate used at each step of the sweep.
        losses: NumPy array. Each step's training loss (the batch's total
            loss, as `train_on_batch` returns it).
        smoothed: NumPy array. `losses` smoothed without lag
            (`suggestions.smooth`); the suggestion is read from it.
        suggestion: Float or None. The suggested rate; None when the sweep
            is inconclusive.
        index: Int or None. The step of the suggestion.
        status: Str. `"ok"`, or why the sweep is inconclusive:
            `"nan_at_once"`, `"never_fell"`, `"never_diverged"`,
            `"data_ended"`, `"negative_loss"`.
        reason: Str. One sentence with the numbers behind `status`.
        rule: Str. The suggestion rule used.
        diverged_at: Float or None. The rate at which the sweep stopped on
            divergence.
    """

    rates: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float | None
    index: int | None
    status: str
    reason: str
    rule: str
    diverged_at: float | None

    @property
    def conclusive(self) -> bool:
        return self.status == OK

    def suggest(self, rule: str = "blend") -> float | None:
        """The suggestion of another `rule` on the same sweep (None when the
        sweep is inconclusive)."""
        check_choice("rule", rule, suggestions.SUGGESTIONS)
        if not self.conclusive:
            return None
        index = suggestions.SUGGESTIONS[rule](self.rates, self.smoothed)
        return float(self.rates[index])

    def plot(self, ax=None, path: str | None = None):
        """Plots raw and smoothed loss against the rate (log-log), with the
        suggestion marked. Needs matplotlib (`pip install
        keras-multiphase[plot]`). Returns the figure, as `plot_schedule`
        does (laid out so that a plain `savefig` clips no label); saves it
        to `path` if given. With `ax`, draws there."""
        from keras_multiphase._optional import require

        require("matplotlib", "LRFinderResult.plot")
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4), layout="constrained")
        self._draw(ax)
        if path:
            ax.figure.savefig(path, dpi=100)
        return ax.figure

    def _draw(self, ax) -> None:
        ax.plot(self.rates, self.losses, alpha=0.3, label="loss")
        ax.plot(self.rates, self.smoothed, label="smoothed")
        if self.suggestion is not None:
            ax.axvline(self.suggestion, color="k", ls="--", lw=1)
            ax.plot(
                [self.suggestion],
                [self.smoothed[self.index]],
                "o",
                color="k",
                label=f"{self.rule}: {self.suggestion:.2e}",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_title(f"learning-rate range test ({self.status})")
        ax.legend()

    def summary(self) -> str:
        """One line: the peak, the rule and the status."""
        if self.conclusive:
            return (
                f"range test: peak {self.suggestion:.3g} (rule {self.rule}, "
                f"status {self.status}, {len(self.rates)} steps)"
            )
        return (
            f"range test: no peak (rule {self.rule}, status {self.status}): "
            f"{self.reason}"
        )

    def __str__(self) -> str:
        return f"LRFinderResult: {self.summary()}"


class _Sweep(keras.optimizers.schedules.LearningRateSchedule):
    """`start * (end / start) ** ((step - offset) / (num_steps - 1))`."""

    def __init__(self, start, end, num_steps, offset):
        self.start = float(start)
        self.log_ratio = math.log(end / start)
        self.num_steps = int(num_steps)
        self.offset = float(offset)

    def __call__(self, step):
        i = ops.cast(step, "float32") - self.offset
        return self.start * ops.exp(self.log_ratio * i / (self.num_steps - 1))

    def rates(self, n):
        i = np.arange(n, dtype="float32")
        return (self.start * np.exp(self.log_ratio * i / (self.num_steps - 1))).astype(
            "float32"
        )

    def get_config(self):
        return {}


def _unique(variables):
    seen, out = set(), []
    for var in variables:
        if id(var) not in seen:
            seen.add(id(var))
            out.append(var)
    return out


class _Restorer:
    """Saves every variable of a model and its optimizer, puts them back."""

    def __init__(self, model):
        optimizer = model.optimizer
        self.variables = _unique(
            list(model.variables)
            + list(optimizer.variables)
            + list(getattr(model, "metrics_variables", []))
        )
        self.values = [np.array(v.numpy(), copy=True) for v in self.variables]

    def restore(self):
        for var, value in zip(self.variables, self.values, strict=True):
            var.assign(value)


def _check_model(model) -> None:
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            "find_lr needs a compiled model with an optimizer. Call "
            "`model.compile(optimizer=..., loss=...)` first."
        )


def _build(model, first_batch) -> None:
    """Creates variables the sweep would otherwise create mid-way."""
    x, _, _ = first_batch
    if not model.built:
        model(x)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def _evaluate(rates, losses, diverged_at, rule, end_reached, threshold):
    """Status, reason, smoothed curve and suggestion of a finished sweep."""
    rates = np.asarray(rates, "float64")
    losses = np.asarray(losses, "float64")
    finite = np.isfinite(losses)
    if not len(losses) or not finite[0]:
        return (
            NAN_AT_ONCE,
            f"the loss was not finite at the first step (rate {rates[0]:.2e}): "
            "check the data, the loss and the model's initial outputs",
            np.full(len(losses), np.nan),
            None,
        )
    # Drop the non-finite tail (divergence) before smoothing.
    n = int(np.argmin(finite)) if not finite.all() else len(losses)
    if np.min(losses[:n]) < 0:
        return (
            NEGATIVE_LOSS,
            f"the loss went negative ({np.min(losses[:n]):.3g}); a range test "
            "reads the loss on a log scale and needs a loss >= 0",
            np.full(len(losses), np.nan),
            None,
        )
    smoothed = np.full(len(losses), np.nan)
    smoothed[:n] = suggestions.smooth(losses[:n], window=min(9, max(1, n // 5)))
    curve = smoothed[:n]
    low = int(np.argmin(curve))
    fall = 1.0 - curve[low] / curve[0]
    if n < MIN_POINTS:
        return (
            NAN_AT_ONCE,
            f"the loss diverged after {n} steps (rate {rates[n - 1]:.2e}): "
            "start the sweep lower (`start_lr`)",
            smoothed,
            None,
        )
    if fall < MIN_FALL:
        return (
            NEVER_FELL,
            f"the smoothed loss never fell by {MIN_FALL:.0%} between rates "
            f"{rates[0]:.2e} and {rates[n - 1]:.2e} (best fall {max(fall, 0):.1%})",
            smoothed,
            None,
        )
    if diverged_at is None and low >= n - max(2, n // 10) and end_reached:
        return (
            NEVER_DIVERGED,
            f"the loss was still falling at the last rate {rates[n - 1]:.2e} "
            f"and never rose {threshold:g}x above its best: the good rate may "
            "be above the sweep; raise `end_lr`",
            smoothed,
            None,
        )
    index = suggestions.SUGGESTIONS[rule](rates[:n], curve)
    return OK, f"{rule} rule on {n} steps", smoothed, int(index)


def find_lr(
    model: keras.Model,
    x=None,
    y=None,
    *,
    batch_size: int | None = None,
    sample_weight=None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    suggestion: str = "blend",
    diverge_threshold: float = 4.0,
    seed: int = 0,
    verbose: int | str = 1,
) -> LRFinderResult:
    """Learning-rate range test: which rate makes the loss fall fastest.

    Trains `model` for up to `num_steps` batches with a rate that grows
    exponentially from `start_lr` to `end_lr`, recording each batch's loss
    (the total, weighted loss of a multi-output model), and stops early once
    the loss diverges (non-finite, or its smoothed value `diverge_threshold`
    times its best). Afterwards every variable of the model and its
    optimizer (weights, slots, `iterations`, metric states) is put back
    bitwise, and the optimizer gets its own rate back: the model is as it
    was (an optimizer that was not built yet is left built, with its
    initial state).

    The suggestion is read from the loss smoothed without lag
    (`suggestions.smooth`). `"steep"` takes the steepest fall of log-loss
    per log-rate, looking only where the loss really falls (so a noisy dip
    before the fall is never chosen); `"minimum"` is a tenth of the rate at
    the lowest loss; the default, `"blend"`, is their geometric mean, which
    varies less from sweep to sweep than either (measured on the benchmark
    problems: see benchmarks/README.md). `"valley"` is fastai's rule. A
    sweep that proves nothing says so:
    `result.status` is `"nan_at_once"`, `"never_fell"`, `"never_diverged"`
    `"data_ended"` or `"negative_loss"`, `result.reason` gives the
    numbers, and
    `result.suggestion` is None.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x = np.ones((64, 1)); y = 3 * np.ones((64, 1))
    >>> result = find_lr(model, x, y, batch_size=8, verbose=0)
    >>> result.status
    'ok'
    >>> 1e-3 < result.suggestion < 1.0
    True

    Args:
        model: A compiled `keras.Model`.
        x: Training data as `model.fit` takes it: arrays (or dicts/lists of
            arrays), a `keras.utils.PyDataset` (AdaptiveBatch's `data`
            included), a `tf.data.Dataset`, a `torch.utils.data.DataLoader`,
            or an iterator of batches (consumed).
        y: Targets, with arrays only.
        batch_size: Int. Batch size for arrays (default 32).
        sample_weight: Sample weights, with arrays only.
        start_lr: Float > 0. First rate of the sweep.
        end_lr: Float > start_lr. Last rate of the sweep.
        num_steps: Int >= 10. Steps of the whole sweep.
        suggestion: Str. `"blend"`, `"steep"`, `"minimum"` or `"valley"`.
        diverge_threshold: Float > 1. Stop when the smoothed loss exceeds
            its best by this factor.
        seed: Int. Shuffling of array data.
        verbose: 0, 1, 2 or `"auto"`, as in `fit`: 1 (and `"auto"`) shows
            a title line and Keras's progress bar, 2 the title and one bar
            line when the sweep ends (for logs that are not a terminal); both
            then print the result (`LRFinderResult.summary()`). 0 prints
            nothing.

    Returns:
        An `LRFinderResult`.
    """
    _check_model(model)
    start_lr, end_lr, num_steps, diverge_threshold, batch_size, verbose = (
        _checked_arguments(
            start_lr,
            end_lr,
            num_steps,
            suggestion,
            diverge_threshold,
            batch_size,
            verbose,
        )
    )
    stream = batches(x, y, sample_weight, batch_size, seed)
    first = next(stream, None)
    if first is None:
        raise ValueError("find_lr: the data yields no batch.")
    _build(model, first)
    optimizer = unwrap_optimizer(model.optimizer)
    offset = int(np.asarray(optimizer.iterations.numpy()))
    sweep = _Sweep(start_lr, end_lr, num_steps, offset)
    planned = sweep.rates(num_steps)
    progbar = None
    if verbose:
        say(
            f"Learning-rate range test: rate {start_lr:.1e} to {end_lr:.1e} over "
            f"up to {num_steps} steps (the model is restored afterwards)"
        )
        progbar = keras.utils.Progbar(num_steps, verbose=verbose)
    with _sweeping(model, sweep):
        losses, diverged_at = _run_sweep(
            model, first, stream, planned, progbar, diverge_threshold
        )
    if progbar is not None and len(losses) < num_steps:
        progbar.update(num_steps, finalize=True)
    result = _result(
        planned, losses, diverged_at, suggestion, num_steps, diverge_threshold
    )
    if verbose:
        say(result.summary())
    return result


def _checked_arguments(
    start_lr, end_lr, num_steps, suggestion, diverge_threshold, batch_size, verbose
):
    """`find_lr`'s arguments, checked (a ValueError naming a bad one)."""
    start_lr = check_positive("start_lr", start_lr)
    end_lr = check_positive("end_lr", end_lr)
    if end_lr <= start_lr:
        raise ValueError(
            "Argument `end_lr` must be greater than `start_lr`. Received: "
            f"start_lr={start_lr!r}, end_lr={end_lr!r}"
        )
    num_steps = check_int("num_steps", num_steps, minimum=10)
    check_choice("suggestion", suggestion, suggestions.SUGGESTIONS)
    diverge_threshold = check_positive("diverge_threshold", diverge_threshold)
    if diverge_threshold <= 1:
        raise ValueError(
            "Argument `diverge_threshold` must be > 1. Received: "
            f"diverge_threshold={diverge_threshold!r}"
        )
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    verbose = check_verbose("verbose", verbose)
    return start_lr, end_lr, num_steps, diverge_threshold, batch_size, verbose


@contextlib.contextmanager
def _sweeping(model, sweep):
    """The sweep's rate on the optimizer while the block runs; then the
    model, the optimizer and the train function exactly as they were."""
    optimizer = unwrap_optimizer(model.optimizer)
    restorer = _Restorer(model)
    original_rate = _keras_internals.learning_rate_object(optimizer)
    had_function = getattr(model, "train_function", None) is not None
    _keras_internals.set_learning_rate_object(optimizer, sweep)
    try:
        model.make_train_function(force=True)
        yield
    finally:
        _keras_internals.set_learning_rate_object(optimizer, original_rate)
        restorer.restore()
        model.reset_metrics()
        if had_function:
            model.make_train_function(force=True)
        else:
            _keras_internals.forget_train_function(model)


def _train_on(model, batch) -> float:
    """One step of the sweep; its loss."""
    # Keras < 3.10 keeps the loss tracker across train_on_batch calls (it
    # returns a running mean): reset it for each batch.
    model.reset_metrics()
    x_batch, y_batch, weights = batch
    if weights is None and keras.distribution.distribution() is not None:
        # Keras < 3.10 lays out every element of (x, y, sample_weight)
        # under a JAX distribution and fails on None: ones weigh the loss
        # exactly as no weights do.
        first_leaf = keras.tree.flatten(x_batch)[0]
        weights = np.ones((len(first_leaf),), "float32")
    extra = {} if weights is None else {"sample_weight": weights}
    logs = model.train_on_batch(x_batch, y_batch, return_dict=True, **extra)
    return float(np.asarray(logs["loss"]))


def _run_sweep(model, batch, stream, planned, progbar, diverge_threshold):
    """Trains a batch per planned rate until the data ends or the loss
    diverges; returns the losses and the rate it diverged at (or None)."""
    losses, avg, best = [], None, math.inf
    for step, rate in enumerate(planned):
        if batch is None:
            break
        loss = _train_on(model, batch)
        losses.append(loss)
        if progbar is not None:
            progbar.update(step + 1, [("lr", float(rate)), ("loss", loss)])
        if not math.isfinite(loss):
            return losses, float(rate)
        # Causal smoothing for the stop only (log space, short memory).
        value = math.log(max(loss, 1e-30))
        avg = value if avg is None else 0.8 * avg + 0.2 * value
        best = min(best, avg)
        if step >= MIN_POINTS and avg > best + math.log(diverge_threshold):
            return losses, float(rate)
        batch = next(stream, None) if step + 1 < len(planned) else None
    return losses, None


def _result(planned, losses, diverged_at, rule, num_steps, threshold):
    """The finished sweep as an `LRFinderResult`."""
    rates = planned[: len(losses)].astype("float64")
    end_reached = len(losses) == num_steps
    status, reason, smoothed, index = _evaluate(
        rates, losses, diverged_at, rule, end_reached, threshold
    )
    if status == OK and diverged_at is None and not end_reached:
        status = DATA_ENDED
        reason = (
            f"the data ended after {len(losses)} of {num_steps} steps, before "
            "the loss diverged: give more data or fewer `num_steps`"
        )
        index = None
    return LRFinderResult(
        rates=rates,
        losses=np.asarray(losses, "float64"),
        smoothed=smoothed,
        suggestion=float(rates[index]) if index is not None else None,
        index=index,
        status=status,
        reason=reason,
        rule=rule,
        diverged_at=diverged_at,
    )
