"""Shared pytest fixtures: where the real (never committed) data lives."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The project's shared real data at ../shared/data; skips where absent, fails instead when CI is set."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        reason = f"shared real data not found at {path}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set, so this is an error)")
        pytest.skip(reason)
    return path
