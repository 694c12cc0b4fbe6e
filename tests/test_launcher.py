"""The cluster launcher's whole path on this machine, as docs/cluster.md tells a user (benchmarks/launcher.py).

`ray up` of a `local`-provider cluster over SSH (an sshd of the test's own on 127.0.0.1, a throwaway key, all in
one temp folder), `ray exec` of a smoke study with `--address auto` (search and final stage), `ray rsync-down` of
its results, `python -m study.report` on the copy, `ray down`, and then no process of that cluster left. Every
process it starts is stopped by pid; other Ray clusters of the machine are never touched (the head's `ray stop`
stops only this cluster's processes, see benchmarks/launcher.py). Needs sshd and rsync (`.ci/run` installs them).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def launcher():
    """benchmarks/launcher.py as a module (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location("launcher", ROOT / "benchmarks" / "launcher.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["launcher"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("launcher", None)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ray_up_exec_rsync_down_report_and_down_leave_nothing_behind(launcher):
    missing = launcher.missing_tools()
    if missing:
        reason = f"the cluster launcher needs {', '.join(missing)} (Debian: apt-get install openssh-server rsync)"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set, so this is an error)")
        pytest.skip(reason)
    real_home = sorted(p.name for p in Path.home().glob("ray_bootstrap*"))
    with launcher.launcher_pass() as one:
        ws = one.ws
        one.up()
        assert (ws.home / "ray_bootstrap_config.yaml").is_file()  # in the head's HOME, not the real one
        assert (ws.ray_temp / "ray_current_cluster").read_text().strip().endswith(f":{ws.gcs_port}")
        assert len(one.head_processes()) >= 4  # GCS, raylet, monitor, log monitor...: found, so the check is real

        one.study()
        out = one.outputs["ray exec: study"]
        assert launcher.INFEASIBLE not in out, out[-5000:]  # no task asked for more than the nodes hold
        assert "joining the cluster at" in out
        study = json.loads((ws.remote_project / "results" / launcher.STUDY / "study.json").read_text())
        assert study["status"] == "completed" and study["settings"]["address"] == "auto"
        assert study["final"]["winner"] and study["trial_counts"]

        one.fetch()
        for name in ("study.json", "trials.parquet", "final.parquet", "model/weights.pt"):
            assert (ws.fetched / name).is_file(), name
        one.report()
        assert (ws.fetched / "report.html").is_file()

        one.down()
        assert "Stopped" in one.outputs["ray down"]  # the head's `ray stop`: this cluster's processes only
        left = one.wait_until_gone()
        assert not left, launcher.describe(left)
        print("launcher steps (s):", ", ".join(f"{k} {v:.1f}" for k, v in one.steps.items()))  # shown with -s
    assert not launcher.processes(f"{launcher.MARKER}={ws.token}")  # nothing that came in over its SSH server
    assert not launcher.processes(f"{launcher.LAUNCHER_MARKER}={ws.token}")  # nor the launcher's ssh connections
    assert not ws.root.exists() and not ws.control_dir().exists()
    assert sorted(p.name for p in Path.home().glob("ray_bootstrap*")) == real_home
