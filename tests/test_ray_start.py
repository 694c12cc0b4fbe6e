"""How every command starts Ray (study/resources.py `init_ray`): local means local, and a dead address is an error.

Without `--address` a command starts a Ray of its own, whatever clusters the machine ran before: Ray's plain
`ray.init()` would join the last one started here (its address file, `ray_current_cluster` in Ray's temp folder),
dead or alive. With `--address` (or $RAY_ADDRESS) a cluster that does not answer within CONNECT_TIMEOUT_S is exit 2
with a message naming the address and the fix. A "stale" Ray temp folder here is one whose address file names a
port nothing listens on (a head that is gone), given to the command as RAY_TMPDIR.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import study.resources
from study.config import StudyConfig
from study.resources import CONNECT_TIMEOUT_S, init_ray
from trainables.data_settings import flat_settings
from trainables.settings import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--smoke", "--num-samples", "1", "--max-epochs", "1", "--final-top", "0", "--demo-rows", "300"]
TINY += ["--vector-size", "16"]


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def _host_port(address: str) -> str:
    """As Ray writes a local address: 127.0.0.1 becomes this machine's node IP."""
    from ray._private.services import canonicalize_bootstrap_address

    return canonicalize_bootstrap_address(address)


@pytest.fixture
def stale():
    """(RAY_TMPDIR, the dead address): Ray's temp folder whose address file names a head that is gone."""
    root = Path(tempfile.mkdtemp(prefix="rs_", dir="/tmp"))  # short: a local Ray puts its sockets under it
    address = f"127.0.0.1:{_dead_port()}"
    (root / "ray").mkdir()
    (root / "ray" / "ray_current_cluster").write_text(address)
    yield root, address
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fake_ray(monkeypatch, stale):
    """Ray not started in this process, `ray.init` recorded instead of run, and the stale temp folder."""
    import ray

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(study.resources, "CONNECT_TIMEOUT_S", 1.0)
    monkeypatch.setenv("RAY_TMPDIR", str(stale[0]))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


def _env(ray_tmpdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "RAY_TMPDIR": str(ray_tmpdir), "COLUMNS": "1000", **extra}


# ----------------------------------------------------------------------------------------------- in-process
def test_without_an_address_a_new_local_ray_starts_whatever_the_address_file_says(fake_ray, caplog):
    with caplog.at_level(logging.INFO, logger="study.resources"):
        assert init_ray(StudyConfig()) is True
    assert [c["address"] for c in fake_ray] == ["local"]  # never None: Ray would read the address file
    assert "new local instance" in caplog.text


def test_address_auto_with_a_dead_heads_file_is_refused_within_the_stated_time(fake_ray, stale):
    root, address = stale
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        init_ray(StudyConfig.from_settings(address="auto"))
    assert time.monotonic() - started < 1.0 + 3  # the monkeypatched CONNECT_TIMEOUT_S, and the probe's last try
    message = str(refused.value)
    assert f"no Ray cluster answered at {_host_port(address)}" in message and "within 1 s" in message
    assert str(root / "ray" / "ray_current_cluster") in message and "leave out `--address`" in message
    assert fake_ray == []  # Ray was never asked to connect


def test_a_dead_ray_address_variable_is_refused_too(fake_ray, monkeypatch):
    address = f"127.0.0.1:{_dead_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(ConfigError, match=rf"at {_host_port(address)} \(\$RAY_ADDRESS={address}, from \$RAY_ADDRESS\)"):
        init_ray(StudyConfig())
    assert fake_ray == []


def test_an_address_that_answers_is_joined_as_given(fake_ray):
    host = _host_port("127.0.0.1:1").rsplit(":", 1)[0]  # where Ray (and the probe) would connect for 127.0.0.1
    with socket.socket() as server:
        server.bind((host, 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        assert init_ray(StudyConfig.from_settings(address=address)) is True
    assert [c["address"] for c in fake_ray] == [address]


def test_an_address_that_is_no_address_is_refused(fake_ray):
    with pytest.raises(ConfigError, match="`--address` 'no-such-thing' is not an address"):
        init_ray(StudyConfig.from_settings(address="no-such-thing"))


def test_ablate_with_a_dead_address_is_exit_2_and_writes_nothing(fake_ray, tmp_path, monkeypatch, capsys):
    from search_spaces import get_space
    from study.ablate import main
    from study.cli import EXIT_BAD_INPUT
    from study.results import SCHEMA_VERSION, write_json

    monkeypatch.setenv("RNN_STUDY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "1000")
    folder = tmp_path / "s"
    folder.mkdir()
    cfg = StudyConfig.from_settings(space="smoke", demo_rows=300, vector_size=16, max_epochs=1)
    winner = {"trial_id": "t1", "rank": 1, "params": {"cell": "gru", "hidden_size": 8, "lr": 0.005, "dropout": 0.1}}
    space = {"name": "smoke", "fixed": get_space("smoke").fixed}
    study = {"schema_version": SCHEMA_VERSION, "name": "s", "settings": flat_settings(cfg), "space": space}
    write_json({**study, "final": {"winner": winner}}, folder / "study.json")
    address = f"127.0.0.1:{_dead_port()}"
    code = main([str(folder), "--address", address, "--vary", "attention=false", "--folds", "2"])
    assert code == EXIT_BAD_INPUT
    assert f"no Ray cluster answered at {_host_port(address)}" in capsys.readouterr().err
    assert not (folder / "ablation").exists() and fake_ray == []


# ---------------------------------------------------------------------------------------------- a real study
@pytest.mark.slow
def test_a_stale_address_file_leaves_a_local_study_untouched(stale, tmp_path):
    root, _ = stale
    cmd = [sys.executable, "-m", "study.run", *TINY, "--name", "local", "--results-dir", str(tmp_path)]
    env = _env(root, RNN_STUDY_CACHE=str(tmp_path / "cache"))
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    assert "new local instance" in run.stderr
    study = json.loads((tmp_path / "local" / "study.json").read_text())
    assert study["status"] == "completed" and not study["settings"]["address"]
    sessions = [p for p in (root / "ray").iterdir() if p.name.startswith("session_2")]
    assert sessions  # its own Ray, in the temp folder it was given


@pytest.mark.slow
def test_address_auto_with_a_stale_address_file_fails_with_exit_2_in_the_stated_time(stale, tmp_path):
    root, address = stale
    cmd = [sys.executable, "-m", "study.run", *TINY, "--address", "auto", "--name", "never"]
    cmd += ["--results-dir", str(tmp_path)]
    started = time.monotonic()
    run = subprocess.run(cmd, cwd=ROOT, env=_env(root, RNN_STUDY_CACHE=str(tmp_path / "cache")), capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    elapsed = time.monotonic() - started
    assert run.returncode == 2, (run.stdout + run.stderr)[-5000:]
    assert f"no Ray cluster answered at {_host_port(address)}" in run.stderr
    assert f"within {CONNECT_TIMEOUT_S:g} s" in run.stderr
    assert CONNECT_TIMEOUT_S <= elapsed < CONNECT_TIMEOUT_S + 30  # the probe's wait, then the start-up of Python
    assert not (tmp_path / "never").exists()
