"""The suite's two tiers: a plain `python -m pytest` runs the fast tier, `-m slow` the slow one (CI runs both)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _collected(*args: str) -> set[str]:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {line for line in run.stdout.splitlines() if "::" in line}


@pytest.mark.slow
def test_a_plain_run_is_the_fast_tier_and_the_slow_tier_is_the_rest():
    default, slow, everything = _collected(), _collected("-m", "slow"), _collected("--slow")
    assert default and slow and not default & slow and default | slow == everything
    assert "tests/test_suite.py::test_a_plain_run_is_the_fast_tier_and_the_slow_tier_is_the_rest" in slow
    assert len(_collected("tests/test_suite.py")) == 1  # a file named runs whole, its slow tests included
