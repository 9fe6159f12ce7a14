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
    km.for_inference,
    km.normalize_heads,
    km.stable_heads,
    km.stable_sigmoid,
    km.stable_softmax,
    km.LayerRates,
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


def test_readme_says_each_thing_once():
    # Twice an edit of one section appended stale copies of the sections
    # after it: no heading, and no paragraph, may appear twice.
    import pathlib
    import re

    text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    headings = [line for line in prose.splitlines() if line.startswith("#")]
    assert len(headings) == len(set(headings)), sorted(
        h for h in set(headings) if headings.count(h) > 1
    )
    paragraphs = [p.strip() for p in prose.split("\n\n") if len(p.strip()) > 80]
    repeated = {p[:60] for p in paragraphs if paragraphs.count(p) > 1}
    assert not repeated, repeated
