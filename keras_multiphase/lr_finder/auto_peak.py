"""The peak of `peak_lr="auto"` (PhaseLR) and `max_lr="auto"` (OneCycle):
a range test on the running `fit`'s data, when training starts."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from keras_multiphase import _keras_internals
from keras_multiphase._validation import check_verbose
from keras_multiphase.lr_finder.data import kind
from keras_multiphase.lr_finder.range_test import LRFinderResult

AUTO = "auto"


def sweep_verbose(params: Mapping | None, own_verbose: int) -> int:
    """The sweep reports as `fit` does (a titled bar, or its one line, then
    the peak, rule and status); under `fit(verbose=0)`, only the result
    line when the callback's own `verbose` asks for it."""
    verbose = check_verbose("verbose", (params or {}).get("verbose", 0))
    return verbose or (2 if own_verbose else 0)


def find_peak(
    model, fallback: float, range_test: Mapping, verbose: int, owner: str
) -> tuple[float, LRFinderResult | None]:
    """`(peak, result)`: the range test's suggestion on the running fit's
    data, or `fallback` (the optimizer's own rate) with a warning that says
    why, when the data cannot be re-read or the test is inconclusive. The
    result also goes on the `History` that `fit` returns, as
    `history.range_test`."""
    arguments = _keras_internals.fit_arguments()
    why, result = None, None
    if arguments is None:
        why = "the training data of the running `fit` could not be found"
    elif kind(arguments["x"]) == "iterator":
        why = (
            "the training data is a one-shot iterator or generator, which "
            "a range test would consume"
        )
    if why is None:
        from keras_multiphase import lr_finder  # looked up at call time

        result = lr_finder.find_lr(
            model,
            arguments["x"],
            arguments["y"],
            sample_weight=arguments["sample_weight"],
            batch_size=arguments["batch_size"],
            verbose=verbose,
            **range_test,
        )
        history = _keras_internals.running_fit_history()
        if history is not None:  # `fit` returns it: history.range_test
            _keras_internals.attach(history, "range_test", result)
        if result.conclusive:
            return result.suggestion, result
        why = f"the range test was inconclusive ({result.status}, {result.reason})"
    warnings.warn(
        f"{owner}: {why}. Using the optimizer's own rate, {fallback:.3g}, as the peak.",
        stacklevel=3,
    )
    return fallback, result
