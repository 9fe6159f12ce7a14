"""Runs a Colab notebook's code cells in order in one namespace, as a kernel
does: the way the suite and the wheel check run the notebooks.

A `%pip install` line runs pip in this interpreter, with the package's
repository address replaced by `install` (the locally built wheel) when
given, and is skipped when `install` is None (the package under test is
already installed). Other `%` and `!` lines are skipped.

    python tests/notebook_runner.py NOTEBOOK [WHEEL]
"""

import contextlib
import io
import json
import shlex
import subprocess
import sys

PACKAGE = "keras-multiphase @ git+"


def _pip_install(line: str, install: str) -> None:
    args = shlex.split(line.lstrip()[len("%pip install") :])
    args = [install if a.startswith(PACKAGE) else a for a in args]
    if install not in args:
        raise ValueError(f"install cell does not install the package: {line!r}")
    subprocess.run([sys.executable, "-m", "pip", "install", *args], check=True)


def run_notebook(path, install: str | None = None) -> tuple[dict, str]:
    """Runs notebook `path`; returns its namespace and what it printed."""
    with open(path) as f:
        cells = json.load(f)["cells"]
    namespace = {"__name__": "__main__"}
    out = io.StringIO()
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        lines = []
        for line in "".join(cell["source"]).splitlines():
            stripped = line.lstrip()
            if stripped.startswith("%pip install") and install is not None:
                _pip_install(line, install)
            elif not stripped.startswith(("%", "!")):
                lines.append(line)
        code = compile("\n".join(lines), f"{path}[cell {index}]", "exec")
        with contextlib.redirect_stdout(out):
            exec(code, namespace)  # noqa: S102 - running the notebook is the point
    return namespace, out.getvalue()


if __name__ == "__main__":
    namespace, printed = run_notebook(sys.argv[1], *sys.argv[2:3])
    print(printed)
    if not printed.strip():
        sys.exit(f"{sys.argv[1]} printed nothing")
