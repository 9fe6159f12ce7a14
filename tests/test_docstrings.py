"""The examples in the public docstrings run and print what they claim."""

import doctest

import keras
import pytest

import keras_multiphase as km

PUBLIC = [
    km.PhaseLR,
    km.PlateauLR,
    km.WarmupCosineRestarts,
    km.LossWeightBalancer,
    km.AdaptiveBatch,
    km.preset,
    km.preview,
    km.diagnose,
    km.TrainingDynamicsMonitor,
    km.PhaseSchedule,
    km.WarmupCosineRestartsSchedule,
    km.find_lr,
    km.OneCycle,
    km.scale_outputs,
]


@pytest.mark.parametrize("obj", PUBLIC, ids=lambda o: o.__name__)
def test_docstring_example_runs(obj):
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs = {"keras": keras, **{name: getattr(km, name) for name in km.__all__}}
    tests = finder.find(obj, obj.__name__, globs=globs)
    assert tests and tests[0].examples, f"{obj.__name__} has no example"
    for test in tests:
        runner.run(test)
    assert runner.failures == 0
