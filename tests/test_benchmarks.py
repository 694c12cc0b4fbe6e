"""The benchmark scripts are not run in CI (they take minutes to hours), but each must still import and parse."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if "def main(" in p.read_text())


def test_every_benchmark_script_is_found():
    assert {p.stem for p in SCRIPTS} >= {"performance", "throughput", "quality", "cluster", "study_greek", "cleaning"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_script_imports_and_prints_its_help(script):
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout
