"""The package as users get it, checked from its built files.

1. Builds the sdist and the wheel (`python -m build`) and checks their
   metadata (`twine check --strict`) and contents (LICENSE, `py.typed`, the
   presets).
2. Makes a Colab-like environment, `.venv-wheel/`: a fresh virtual
   environment with what a Colab runtime already has (`COLAB`), none of
   the creating interpreter's packages, and not this package.
3. Runs each notebook there top to bottom, from a folder outside the
   source tree: its `%pip install` cell installs the wheel just built
   (the repository address replaced by the wheel's path), then a smoke fit
   checks that what trains is the installed wheel, at this version.

Usage: python tests/wheel_check.py (exit 0 when every check passed).
`tests/all_backends.py` runs it after the suites.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = os.path.join(ROOT, ".venv-wheel")
# What a Colab runtime has before the install cell (TensorBoard included).
COLAB = ("jax[cpu]", "tensorflow-cpu", "matplotlib", "tensorboard")
SMOKE = """
import os, sys
import numpy as np, keras
import keras_multiphase as km
assert "site-packages" in km.__file__, km.__file__  # the wheel, not the tree
assert km.__version__ == sys.argv[1], km.__version__
x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
y = x @ np.arange(1, 5, dtype="float32")[:, None]
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
history = model.fit(x, y, epochs=4, batch_size=32, verbose=0,
                    callbacks=km.preset("multiphase"))
loss = history.history["loss"]
assert loss[-1] < loss[0], loss
print("smoke fit from", km.__file__, "loss", loss[0], "->", loss[-1])
"""


def sh(*args, **kwargs):
    print("$", " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], check=True, **kwargs)


def version() -> str:
    about = {}
    with open(os.path.join(ROOT, "keras_multiphase", "__init__.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                exec(line, about)  # noqa: S102 - one assignment
    return about["__version__"]


def build(dist: str) -> str:
    """Builds and checks the sdist and wheel; returns the wheel's path.
    Builds from a copy of the sources: setuptools writes `build/` and the
    egg-info beside them, where the test runs next to this one import from."""
    source = os.path.join(dist, "src")
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info"),
    )
    sh(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", dist, source)
    shutil.rmtree(source)
    files = sorted(glob.glob(os.path.join(dist, "*")))
    sh(sys.executable, "-m", "twine", "check", "--strict", *files)
    wheel = next(f for f in files if f.endswith(".whl"))
    names = zipfile.ZipFile(wheel).namelist()
    wanted = ["keras_multiphase/py.typed", "keras_multiphase/presets/multiphase.yaml"]
    missing = [n for n in wanted if n not in names]
    if not any(n.endswith("LICENSE") for n in names):
        missing.append("LICENSE")
    if missing:
        raise SystemExit(f"the wheel lacks {missing}")
    return wheel


def colab_python() -> str:
    """`.venv-wheel`'s python: Colab's packages, without this package."""
    python = os.path.join(ENV, "bin", "python")
    stamp = os.path.join(ENV, "colab.txt")
    wanted = "\n".join(COLAB)
    if not (os.path.exists(stamp) and open(stamp).read() == wanted):
        sh(sys.executable, "-m", "venv", "--clear", ENV)
        sh(python, "-m", "pip", "install", "-q", *COLAB)
        with open(stamp, "w") as f:
            f.write(wanted)
    sh(python, "-m", "pip", "uninstall", "-q", "-y", "keras-multiphase")
    return python


def main() -> int:
    with tempfile.TemporaryDirectory() as dist, tempfile.TemporaryDirectory() as cwd:
        wheel = build(dist)
        python = colab_python()
        env = dict(os.environ, KERAS_MULTIPHASE_SMALL="1", KERAS_BACKEND="jax")
        env.pop("PYTHONPATH", None)
        runner = os.path.join(ROOT, "tests", "notebook_runner.py")
        notebooks = sorted(glob.glob(os.path.join(ROOT, "examples/notebooks/*.ipynb")))
        for notebook in notebooks:
            sh(python, runner, notebook, wheel, cwd=cwd, env=env)
        sh(python, "-c", SMOKE, version(), cwd=cwd, env=env)
    print(f"wheel check: built, checked, installed; {len(notebooks)} notebooks ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
