"""Runs ruff, the whole suite on each Keras backend, then on the oldest
supported Keras (JAX), streaming each run's output as it goes and ending
with one table.

Usage: python tests/all_backends.py [--no-oldest] [--no-wheel] [pytest args...]

The oldest-Keras run uses a virtual environment, `.venv-oldest/`, created
on first use from `tests/requirements-oldest.txt` and this package, and
recreated whenever that file changes. It sees none of the packages of the
interpreter that created it, so a missing pin fails here as it would on a
user's machine. Last, `wheel_check.py` builds the sdist and wheel, checks
them, installs the wheel into a fresh Colab-like environment and runs every
notebook there, install cell included. Exits non-zero if ruff fails, any
test fails, a run collects no test, or the wheel check fails.
"""

import os
import re
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLDEST_REQUIREMENTS = os.path.join(ROOT, "tests", "requirements-oldest.txt")
OLDEST_ENV = os.path.join(ROOT, ".venv-oldest")
# Builds a wheel with the system's setuptools: run once, on the newest Keras.
OLDEST_DESELECT = ("tests/test_presets.py::test_wheel_contains_the_presets",)


def oldest_python() -> str:
    """The oldest-Keras environment's python, (re)created if needed."""
    python = os.path.join(OLDEST_ENV, "bin", "python")
    stamp = os.path.join(OLDEST_ENV, "keras-multiphase-oldest.txt")
    with open(OLDEST_REQUIREMENTS) as f:
        wanted = f.read()
    if os.path.exists(stamp) and open(stamp).read() == wanted:
        return python
    print(f"== creating {OLDEST_ENV} from {OLDEST_REQUIREMENTS}", flush=True)
    # --clear: nothing from an earlier environment survives; no
    # --system-site-packages: nothing leaks in from the creating interpreter.
    subprocess.run([sys.executable, "-m", "venv", "--clear", OLDEST_ENV], check=True)
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "-r", OLDEST_REQUIREMENTS, "-e", ROOT],
        check=True,
    )
    with open(stamp, "w") as f:
        f.write(wanted)
    return python


def oldest_label() -> str:
    with open(OLDEST_REQUIREMENTS) as f:
        pins = re.search(r"^keras==(\S+)", f.read(), re.M)
    return f"keras=={pins.group(1)} (jax)"


def counts(summary: str) -> dict:
    out = {}
    for key, word in (
        ("passed", "passed"),
        ("failed", "failed"),
        ("skipped", "skipped"),
        ("errors", "error"),
    ):
        found = re.search(rf"(\d+) {word}", summary)
        out[key] = int(found.group(1)) if found else 0
    return out


def run(label, python, backend, argv, extra_env=None):
    """Streams one pytest run; returns its row of the final table."""
    print(f"\n== {label}", flush=True)
    env = dict(os.environ, KERAS_BACKEND=backend, **(extra_env or {}))
    start = time.monotonic()
    proc = subprocess.Popen(
        [python, "-m", "pytest", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    last = ""
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.strip():
            last = line.strip()
    code = proc.wait()
    seconds = time.monotonic() - start
    row = {"run": label, "exit": code, "seconds": seconds, **counts(last)}
    print(f"-- {label}: exit {code} in {seconds:.0f}s", flush=True)
    return row


def wheel_row() -> dict:
    """Runs `wheel_check.py`; its row of the final table."""
    print("\n== wheel", flush=True)
    start = time.monotonic()
    code = subprocess.call(
        [sys.executable, os.path.join(ROOT, "tests", "wheel_check.py")]
    )
    seconds = time.monotonic() - start
    print(f"-- wheel: exit {code} in {seconds:.0f}s", flush=True)
    passed, failed = (1, 0) if code == 0 else (0, 1)
    return {
        "run": "wheel + notebooks (jax)",
        "exit": code,
        "seconds": seconds,
        "passed": passed,
        "failed": failed,
        "skipped": 0,
        "errors": 0,
    }


def main(argv):
    oldest = "--no-oldest" not in argv
    wheel = "--no-wheel" not in argv
    argv = [a for a in argv if a not in ("--no-oldest", "--no-wheel")]
    problems = []
    print("== ruff check", flush=True)
    if subprocess.call([sys.executable, "-m", "ruff", "check", ROOT]) != 0:
        problems.append("ruff")
    rows = [
        run(f"KERAS_BACKEND={backend}", sys.executable, backend, argv)
        for backend in BACKENDS
    ]
    if oldest:
        deselect = [f"--deselect={t}" for t in OLDEST_DESELECT]
        rows.append(
            run(
                oldest_label(),
                oldest_python(),
                "jax",
                [*argv, *deselect],
            )
        )
    if wheel:
        rows.append(wheel_row())
    for row in rows:
        if row["exit"] == 5 or row["passed"] == 0:
            problems.append(f"{row['run']}: no test ran")
        elif row["exit"] != 0:
            problems.append(f"{row['run']}: pytest exit {row['exit']}")
    print(f"\n{'run':<26}{'passed':>8}{'failed':>8}{'errors':>8}{'skipped':>9}{'s':>7}")
    for row in rows:
        print(
            f"{row['run']:<26}{row['passed']:>8}{row['failed']:>8}"
            f"{row['errors']:>8}{row['skipped']:>9}{row['seconds']:>7.0f}"
        )
    total = {k: sum(r[k] for r in rows) for k in ("passed", "failed", "skipped")}
    failed = total["failed"] + sum(r["errors"] for r in rows)
    if problems:
        print("\nFAILED: " + "; ".join(problems))
    print(
        f"\nall runs: {total['passed']} passed, {failed} failed, "
        f"{total['skipped']} skipped"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
