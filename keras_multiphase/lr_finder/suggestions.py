"""Suggestion rules for a learning-rate range test: small, pure functions.

Each takes the swept `rates` and the (smoothed) `losses` of one sweep, both
1-D NumPy arrays of the same length, and returns an index into them. The
rules follow fastai's `lr_find` suggestions (`valley`, `steep`, `minimum`)
and Lightning's `suggestion()`; `blend` combines two of them. `smooth` and
`descent` are what makes them robust to batch noise: the curve is smoothed
without lag, and `steep` only looks inside the part of the curve where the
loss really falls.
"""

from __future__ import annotations

import numpy as np


def smooth(losses: np.ndarray, window: int = 9) -> np.ndarray:
    """Lag-free smoothing of a loss curve, in log space.

    A running median over `window` points (removes single noisy batches)
    followed by a centred running mean of the same width; windows shrink at
    both ends. Working on `log(loss)` makes a collapse from 5e5 to 60 and a
    wobble around 60 equally visible. A causal EMA (as fastai and Lightning
    use) lags by about `1 / (1 - beta)` points, which on an exponential sweep
    shifts the curve by a constant factor in rate; a centred window does not.
    """
    values = np.log(np.maximum(np.asarray(losses, "float64"), 1e-30))
    n = len(values)
    half = max(window // 2, 0)
    median = np.array(
        [np.median(values[max(0, i - half) : i + half + 1]) for i in range(n)]
    )
    mean = np.array([median[max(0, i - half) : i + half + 1].mean() for i in range(n)])
    return np.exp(mean)


def descent(losses: np.ndarray, start_fraction: float = 0.1) -> tuple[int, int]:
    """`(first, last)`: the part of the curve where the loss falls.

    `last` is the minimum; `first` is the first point, before it, at which
    the loss (in log space) has covered `start_fraction` of its total fall
    from the first point to the minimum. Noise in the flat start of a sweep
    lies before `first`.
    """
    logs = np.log(np.maximum(np.asarray(losses, "float64"), 1e-30))
    last = int(np.argmin(logs))
    fall = logs[0] - logs[last]
    if fall <= 0:
        return 0, last
    below = np.nonzero(logs[: last + 1] <= logs[0] - start_fraction * fall)[0]
    first = int(below[0]) if len(below) else 0
    # Start one point earlier: the slope at `first` involves its left side.
    return max(first - 1, 0), last


def steep(rates: np.ndarray, losses: np.ndarray) -> int:
    """Steepest fall of log(loss) per log(rate), inside `descent`.

    Lightning's default suggestion (steepest gradient), restricted to where
    the loss falls, so a noisy dip in the flat start is never chosen.
    """
    first, last = descent(losses)
    if last - first < 2:
        return last
    log_rates = np.log(np.asarray(rates, "float64"))
    log_losses = np.log(np.maximum(np.asarray(losses, "float64"), 1e-30))
    slopes = np.gradient(log_losses[first : last + 1], log_rates[first : last + 1])
    return first + int(np.argmin(slopes))


def minimum(rates: np.ndarray, losses: np.ndarray) -> int:
    """The point whose rate is closest to a tenth of the rate at the
    minimum loss (fastai's `minimum` suggestion: `lr_min / 10`)."""
    target = np.asarray(rates, "float64")[int(np.argmin(losses))] / 10.0
    return int(np.argmin(np.abs(np.log(np.asarray(rates, "float64") / target))))


def valley(rates: np.ndarray, losses: np.ndarray) -> int:
    """fastai's `valley`: the longest valley of the curve, two thirds down.

    Finds the longest decreasing subsequence of `losses` and returns the
    point a third plus a sixth of the way from its start to its end.
    """
    n = len(losses)
    lds = [1] * n
    max_start, max_end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def _closest(rates: np.ndarray, target: float) -> int:
    return int(np.argmin(np.abs(np.log(np.asarray(rates, "float64") / target))))


def blend(rates: np.ndarray, losses: np.ndarray) -> int:
    """The geometric mean of `steep` and `minimum`: two estimates of a good
    rate with independent noise (the onset of the fall, a tenth of the
    edge), so their mean varies less from sweep to sweep than either."""
    rates = np.asarray(rates, "float64")
    target = np.sqrt(rates[steep(rates, losses)] * rates[minimum(rates, losses)])
    return _closest(rates, target)


SUGGESTIONS = {"blend": blend, "steep": steep, "minimum": minimum, "valley": valley}
