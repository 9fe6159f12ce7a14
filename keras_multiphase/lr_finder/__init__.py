"""Learning-rate range test: `find_lr(model, data)` -> `LRFinderResult`."""

from keras_multiphase.lr_finder.range_test import LRFinderResult, find_lr

__all__ = ["LRFinderResult", "find_lr"]
