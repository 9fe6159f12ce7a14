"""Runs ruff, then the whole test suite once per Keras backend.

Usage: python tests/all_backends.py [pytest args...]
Exits non-zero if ruff fails, any test fails, or a backend collects no test.
"""

import os
import re
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    failures = []
    print("== ruff check", flush=True)
    if subprocess.call([sys.executable, "-m", "ruff", "check", ROOT]) != 0:
        failures.append("ruff")
    totals = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    for backend in BACKENDS:
        print(f"\n== KERAS_BACKEND={backend}", flush=True)
        env = dict(os.environ, KERAS_BACKEND=backend)
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        print(proc.stdout, end="")
        summary = proc.stdout.strip().splitlines()[-1] if proc.stdout else ""
        for key in totals:
            found = re.search(rf"(\d+) {key[:-1] if key == 'errors' else key}", summary)
            if found:
                totals[key] += int(found.group(1))
        print(
            f"-- {backend}: exit {proc.returncode} in {time.monotonic() - start:.0f}s",
            flush=True,
        )
        if proc.returncode == 5:
            failures.append(f"{backend}: no tests collected")
        elif proc.returncode != 0:
            failures.append(f"{backend}: pytest exit {proc.returncode}")
    if failures:
        print("\nFAILED: " + "; ".join(failures))
    failed = totals["failed"] + totals["errors"] + (1 if failures else 0) * 0
    print(
        f"\nall backends: {totals['passed']} passed, {failed} failed, "
        f"{totals['skipped']} skipped"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
