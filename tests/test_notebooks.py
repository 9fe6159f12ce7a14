"""The Colab notebooks in examples/notebooks run, headless, at small sizes.

Each notebook's code cells are executed in order in one namespace (what a
kernel does, `notebook_runner.py`), with KERAS_MULTIPHASE_SMALL=1 and the
`%pip install` cell skipped (the package under test is already installed;
`wheel_check.py` runs that cell too, against the built wheel). A notebook that
raises fails the suite; so does one that no longer matches its `.py` twin.
"""

import configparser
import importlib.util
import json
import os
import pathlib

import pytest
from notebook_runner import run_notebook

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "examples" / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
# What a notebook needs beyond the test extra's core (skipped without it).
NEEDS = {
    "03_custom_preset": ("matplotlib",),
    "04_adaptive_batch_tfdata": ("tensorflow",),
}


def _builder():
    spec = importlib.util.spec_from_file_location("build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_six_notebooks_each_with_its_twin():
    assert len(PATHS) == 6
    for path in PATHS:
        assert path.with_suffix(".py").exists(), path.name


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_matches_its_twin_and_opens_in_colab(path):
    builder = _builder()
    assert path.read_text() == builder.render(path.with_suffix(".py")), (
        f"{path.name} is stale: run python examples/notebooks/build.py"
    )
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    url = config["metadata"]["url"]
    cells = json.loads(path.read_text())["cells"]
    colab = url.replace("github.com", "colab.research.google.com/github")
    assert f"{colab}/blob/main/examples/notebooks/{path.name}" in "".join(
        cells[0]["source"]
    )
    assert "".join(cells[1]["source"]).startswith("%pip install")
    assert url in "".join(cells[1]["source"])


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
    for module in NEEDS.get(path.stem, ()):
        pytest.importorskip(module)
    monkeypatch.setenv("KERAS_MULTIPHASE_SMALL", "1")
    namespace, printed = run_notebook(path)
    assert os.environ["KERAS_BACKEND"] == namespace["keras"].backend.backend()
    assert printed.strip(), "the notebook printed nothing"


def test_readme_opens_each_notebook_in_colab():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    colab = config["metadata"]["url"].replace(
        "github.com", "colab.research.google.com/github"
    )
    readme = (ROOT / "README.md").read_text()
    for path in PATHS:
        assert f"({colab}/blob/main/examples/notebooks/{path.name})" in readme
