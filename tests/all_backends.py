"""Runs ruff, the whole suite on each Keras backend and on the oldest
supported Keras (JAX), and the wheel check, two runs at a time, ending with
one table.

Usage: python tests/all_backends.py [--no-oldest] [--no-wheel] [--jobs N]
    [pytest args...]

With `--jobs 1` each run's output streams as it goes. With more (default
2: the runs are separate processes, mostly one busy thread each), each run
writes `build/ci-logs/<run>.log`, and a run's summary is printed when it
ends, its whole log too when it fails.

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
from concurrent.futures import ThreadPoolExecutor

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


LOGS = os.path.join(ROOT, "build", "ci-logs")


def stream(label, command, env=None, to_log=False):
    """Runs `command`; its output goes to stdout as it comes, or with
    `to_log` to `build/ci-logs/<label>.log`, printed when the run fails.
    Returns (exit code, seconds, last non-empty line)."""
    start = time.monotonic()
    path = os.path.join(LOGS, re.sub(r"[^\w.=-]+", "_", label) + ".log")
    if to_log:
        os.makedirs(LOGS, exist_ok=True)
        print(f"== {label} (log: {os.path.relpath(path, ROOT)})", flush=True)
    else:
        print(f"\n== {label}", flush=True)
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    last = ""
    with open(path if to_log else os.devnull, "w") as log:
        for line in proc.stdout:
            (log if to_log else sys.stdout).write(line)
            if line.strip():
                last = line.strip()
    code = proc.wait()
    seconds = time.monotonic() - start
    if to_log and code != 0:
        with open(path) as log:
            print(f"\n== {label} failed; its log:\n{log.read()}", flush=True)
    print(f"-- {label}: exit {code} in {seconds:.0f}s  {last}", flush=True)
    return code, seconds, last


def run(label, python, backend, argv, to_log=False):
    """One pytest run; returns its row of the final table."""
    env = dict(os.environ, KERAS_BACKEND=backend)
    # --durations: each log ends with its slowest tests, where time goes.
    command = [python, "-m", "pytest", "--durations=15", *argv]
    code, seconds, last = stream(label, command, env, to_log)
    return {"run": label, "exit": code, "seconds": seconds, **counts(last)}


def wheel_row(to_log=False) -> dict:
    """Runs `wheel_check.py`; its row of the final table."""
    code, seconds, _ = stream(
        "wheel",
        [sys.executable, os.path.join(ROOT, "tests", "wheel_check.py")],
        to_log=to_log,
    )
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


def _jobs(argv) -> tuple[int, list]:
    """(--jobs N, the other arguments)."""
    if "--jobs" not in argv:
        return 2, argv
    i = argv.index("--jobs")
    return max(1, int(argv[i + 1])), argv[:i] + argv[i + 2 :]


def tasks(argv, oldest, wheel, to_log) -> list:
    """The runs, longest first (so that two at a time end together)."""

    def backend(name):
        return lambda: run(f"KERAS_BACKEND={name}", sys.executable, name, argv, to_log)

    def oldest_run():
        deselect = [f"--deselect={t}" for t in OLDEST_DESELECT]
        args = [*argv, *deselect]
        return run(oldest_label(), oldest_python(), "jax", args, to_log)

    todo = [backend("tensorflow"), *([oldest_run] if oldest else [])]
    todo += [backend("jax"), backend("torch")]
    return todo + ([lambda: wheel_row(to_log)] if wheel else [])


def main(argv):
    oldest = "--no-oldest" not in argv
    wheel = "--no-wheel" not in argv
    jobs, argv = _jobs([a for a in argv if a not in ("--no-oldest", "--no-wheel")])
    problems = []
    print("== ruff check", flush=True)
    if subprocess.call([sys.executable, "-m", "ruff", "check", ROOT]) != 0:
        problems.append("ruff")
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(t) for t in tasks(argv, oldest, wheel, jobs > 1)]
        rows = [f.result() for f in futures]
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
