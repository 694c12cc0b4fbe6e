"""Shared pytest fixtures: the real (never committed) data, two tiny real studies, headless Chromium."""

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


@pytest.fixture(scope="session")
def small_studies(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny real studies (3 trials, 2 epochs, 300 demo tweets), seeds 0 and 1: one validation set.

    Built once per session with the project's own `run_study` on a 2-CPU Ray started here (or the one
    already running), for the report and comparison tests.
    """
    import ray

    from study.config import StudyConfig
    from study.orchestrate import run_study

    root = tmp_path_factory.mktemp("small_studies")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        outcomes = [
            run_study(
                StudyConfig(
                    smoke=True,
                    space="smoke",
                    num_samples=3,
                    max_epochs=2,
                    demo_rows=300,
                    vector_size=16,
                    seed=seed,
                    name=f"seed{seed}",
                    results_dir=str(root),
                )
            )
            for seed in (0, 1)
        ]
    finally:
        if started:
            ray.shutdown()
    return outcomes[0].folder, outcomes[1].folder


@pytest.fixture(scope="session")
def small_study(small_studies) -> Path:
    """The folder of one tiny real study (see `small_studies`)."""
    return small_studies[0]


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="session")
def render_html():
    """A function that opens an HTML file in headless Chromium and says what loaded.

    It returns {"images_total", "images_loaded", "errors", "overflow"} (what the page's own script writes on
    <body>), "console" (console lines Chromium logged) and "screenshot" (a PNG written beside the page's
    temporary profile). Skips where Chromium is absent; fails instead when CI is set.
    """
    import re
    import shutil
    import subprocess

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        reason = "headless Chromium not found (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set, so this is an error)")
        pytest.skip(reason)

    def render(page: Path, tmp: Path, height: int = 4000) -> dict:
        profile = tmp / "chromium-profile"
        common = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        url = Path(page).resolve().as_uri()
        dom = subprocess.run(
            [*common, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        body = re.search(r"<body([^>]*)>", dom.stdout)
        attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1))) if body else {}
        screenshot = tmp / f"{Path(page).stem}.png"
        subprocess.run(
            [*common, f"--screenshot={screenshot}", f"--window-size=1280,{height}", url],
            capture_output=True,
            timeout=120,
        )
        return {
            "images_total": int(attrs.get("images-total", -1)),
            "images_loaded": int(attrs.get("images-loaded", -1)),
            "errors": int(attrs.get("errors", -1)),
            "overflow": attrs.get("overflow"),  # "false" when nothing runs off the window's right edge
            "console": [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln],
            "screenshot": screenshot,
        }

    return render
