"""The benchmark scripts are not run in CI (they take minutes to hours), but each must still import and parse."""

import contextlib
import io
import runpy
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if "def main(" in p.read_text())


def test_every_benchmark_script_is_found():
    assert {p.stem for p in SCRIPTS} >= {"performance", "throughput", "quality", "cluster", "study_greek", "cleaning"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_script_imports_and_prints_its_help(script, monkeypatch):
    """Run as `python SCRIPT --help` would, in this process (the scripts share their imports: seconds, not a
    fresh interpreter each)."""
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as Python puts a script's folder first
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code in (0, None)
    assert "usage:" in out.getvalue()
