"""The README's demo runs, and its two lines do what the README says."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

import demo  # noqa: E402


def test_the_demo_runs_and_the_small_head_learns(capsys):
    finals = demo.main(["--epochs", "3"])
    two_lines, baseline = finals.values()
    # threshold loss, cls loss, cls accuracy
    assert two_lines[0] < baseline[0]
    assert two_lines[2] > 0.9 > baseline[2], finals
    out = capsys.readouterr().out
    assert "peak_lr found by the range test" in out
    assert "final unweighted validation losses" in out
