"""The cluster side: `cluster.yaml` against Ray's own cluster-config schema, and a real two-node Ray cluster.

The two-node test starts a head and a worker on this machine with `ray start --block` (1 CPU each, their
own short temp folders, token auth with a fresh token given to every process in RAY_AUTH_TOKEN), runs
`python -m study.run --address ...` against them and checks that the trials ran on both nodes. It never
calls `ray stop`, which stops every Ray process of the machine, other developers' clusters included: it
stops the two `ray start --block` processes it started (each takes its node's processes down with it) and
then looks for anything left by its temp folders and by a marker variable in the processes' environment.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement

from trainables.baseline import BASELINES

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
CLUSTER_DOC = ROOT / "docs" / "cluster.md"
MARKER = "RNN_STUDY_TEST_CLUSTER"  # set in every process of the test cluster, so leftovers can be found
NODE_MARKER = "RNN_STUDY_TEST_NODE"  # set in every process of one worker node, so the node can be lost whole


# ---------------------------------------------------------------------------------------------- cluster.yaml
@pytest.fixture(scope="module")
def cluster_config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _ray_schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _prepared(config: dict) -> dict:
    """What `ray up` validates: the file merged with the provider's defaults (no cloud calls)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cluster_yaml_passes_rays_schema(cluster_config):
    jsonschema.validate(cluster_config, _ray_schema())  # the file itself, before defaults are merged in
    prepared = _prepared(cluster_config)
    assert prepared["provider"]["type"] == "aws"
    assert prepared["available_node_types"][prepared["head_node_type"]]["max_workers"] == 0
    # what `ray up` would change from the file: only keys the file leaves to Ray's defaults
    for key in ("setup_commands", "head_start_ray_commands", "worker_start_ray_commands", "file_mounts"):
        assert prepared[key] == cluster_config[key]


def test_each_top_level_key_has_a_comment_line_above():
    lines = CLUSTER_YAML.read_text().splitlines()
    keys = [(i, line.split(":")[0]) for i, line in enumerate(lines) if re.match(r"^[a-z_]+:", line)]
    assert len(keys) >= 10
    uncommented = [key for i, key in keys if not lines[i - 1].startswith("#")]
    assert not uncommented, f"keys without a comment line above them: {uncommented}"


def test_gpu_workers_autoscale_with_a_spot_type(cluster_config):
    types = cluster_config["available_node_types"]
    head = types[cluster_config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] == 0  # trials stay off the head
    workers = {name: t for name, t in types.items() if name != cluster_config["head_node_type"]}
    assert workers and all(t["resources"]["GPU"] >= 1 for t in workers.values())
    assert all(0 <= t.get("min_workers", 0) <= t["max_workers"] for t in workers.values())
    assert sum(t["max_workers"] for t in workers.values()) == cluster_config["max_workers"]
    assert any(t.get("min_workers", 0) == 0 for t in workers.values())  # something scales from zero
    spot = [t for t in workers.values() if t["node_config"].get("InstanceMarketOptions", {}).get("MarketType")]
    assert spot and all(t["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot" for t in spot)
    # every worker can write trial state to S3 through an instance profile (no keys on the machines)
    assert all("IamInstanceProfile" in t["node_config"] for t in workers.values())
    assert "aws_access_key" not in CLUSTER_YAML.read_text().lower()


def test_only_ssh_is_opened(cluster_config):
    rules = cluster_config["provider"].get("security_group", {}).get("IpPermissions", [])
    assert all(r["FromPort"] == r["ToPort"] == 22 for r in rules), rules
    for name, node_type in cluster_config["available_node_types"].items():
        # a group or network interface of one's own would bypass the launcher's group: none here
        assert not {"SecurityGroupIds", "NetworkInterfaces"} & set(node_type["node_config"]), name
    start = " ".join(cluster_config["head_start_ray_commands"] + cluster_config["worker_start_ray_commands"])
    assert "0.0.0.0" not in start and "--ray-client-server-port" not in start
    assert "--dashboard-host=127.0.0.1" in start  # reached through `ray dashboard cluster.yaml` only


def _pins(commands: list[str]) -> dict[str, Requirement]:
    pins = {}
    for quoted in re.findall(r'"([^"]+)"', " ".join(commands)):
        try:
            req = Requirement(quoted)
        except InvalidRequirement:
            continue
        pins[req.name] = req
    return pins


def test_setup_installs_cuda_torch_ray_and_this_project_everywhere(cluster_config):
    import ray

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # the project's code reaches every node through file_mounts, every installed package included
    mounts = cluster_config["file_mounts"]
    remote_root = os.path.commonpath(list(mounts))
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    for local in ["pyproject.toml", pyproject["project"]["readme"], *packages]:
        assert mounts.get(f"{remote_root}/{local}") == local, f"{local} is not mounted at {remote_root}/{local}"
        assert (ROOT / local).exists()
    # then installed, after torch and Ray, on every node (setup_commands run on the head and the workers)
    setup = cluster_config["setup_commands"]
    project = [i for i, c in enumerate(setup) if re.search(rf"pip install .*-e {re.escape(remote_root)}$", c)]
    torch_at = [i for i, c in enumerate(setup) if "pip install" in c and '"torch==' in c]
    ray_at = [i for i, c in enumerate(setup) if "pip install" in c and '"ray[' in c]
    assert project and torch_at and ray_at and max(torch_at + ray_at) < project[0]
    assert "whl/cpu" not in " ".join(setup)  # the CUDA build, not the CPU one
    only_some = cluster_config["head_setup_commands"] + cluster_config["worker_setup_commands"]
    assert not any(remote_root in c for c in only_some)  # the project goes on every node, not on some
    # exact pins that satisfy the project's own requirements; Ray's the same as the laptop's
    pins = _pins(setup)
    required = {r.name: r for r in map(Requirement, pyproject["project"]["dependencies"])}
    for name in ("torch", "ray"):
        (spec,) = pins[name].specifier
        assert spec.operator == "==", pins[name]
        assert required[name].specifier.contains(spec.version), (pins[name], required[name])
    assert str(next(iter(pins["ray"].specifier)).version) == ray.__version__
    assert "default" in pins["ray"].extras  # the cluster launcher's extra, needed on every node


def test_documented_local_provider_config_passes_rays_schema():
    """docs/cluster.md's `local` provider config (ray up over SSH on this machine) is valid too."""
    text = CLUSTER_DOC.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    local = [yaml.safe_load(b) for b in blocks if "type: local" in b]
    assert len(local) == 1
    prepared = _prepared(local[0])
    assert prepared["provider"]["head_ip"] in ("127.0.0.1", "localhost")


# ------------------------------------------------------------------------------------- two nodes, one machine
WAIT_FOR_NODES = """
import sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
deadline = time.monotonic() + float(sys.argv[3])
while True:
    alive = [n for n in ray.nodes() if n["Alive"]]
    if len(alive) >= int(sys.argv[2]):
        print(" ".join(sorted(n["NodeID"] for n in alive)))
        break
    if time.monotonic() > deadline:
        sys.exit(f"only {len(alive)} node(s) joined")
    time.sleep(0.5)
"""


def _node_marker(index: int) -> str:
    return f"node{index}"


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _is_zombie(proc: Path) -> bool:
    return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def _alive(pid: int) -> bool:
    try:
        return not _is_zombie(Path(f"/proc/{pid}"))
    except OSError:
        return False


def _describe(pid: int) -> str:
    try:
        return f"{pid} " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return f"{pid} (gone)"


class LocalCluster:
    """A Ray cluster of `ray start --block` nodes on this machine, each in its own temp folder.

    Token auth (RAY_AUTH_MODE=token) with a fresh token in RAY_AUTH_TOKEN, which Ray reads before
    ~/.ray/auth_token: the head, the workers and every driver started with `env` share it, and nothing
    under ~/.ray is written. Every process carries the MARKER variable, so `leftovers` finds all of them.
    """

    def __init__(self, cpus_per_node: int = 1):
        self.cpus = cpus_per_node
        self.marker = secrets.token_hex(8)
        self.env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
        self.env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=secrets.token_hex(32),
            RAY_USAGE_STATS_ENABLED="0",
            **{MARKER: self.marker},
        )
        self.nodes: list[tuple[subprocess.Popen, Path]] = []
        self.address: str | None = None
        self.node_ids: list[str] = []
        self.ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"

    def _start(self, args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
        # short: the session folder holds unix sockets, whose paths may not exceed 107 bytes
        temp = Path(tempfile.mkdtemp(prefix="rh_", dir="/tmp"))
        cmd = [self.ray, "start", "--block", "--temp-dir", str(temp), "--num-cpus", str(self.cpus)]
        cmd += ["--num-gpus", "0", "--object-store-memory", str(100 * 2**20), "--disable-usage-stats", *args]
        # a session of its own: Ctrl-C in the terminal reaches pytest, whose teardown then stops the nodes
        with open(temp / "ray_start.log", "w") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**self.env, **(env or {})}, start_new_session=True
            )
        self.nodes.append((proc, temp))
        return proc, temp

    def _wait_started(self, proc: subprocess.Popen, temp: Path, timeout: float) -> None:
        """Until the node says it started and has written its address (after that message)."""
        deadline = time.monotonic() + timeout
        log, address = temp / "ray_start.log", temp / "ray_current_cluster"
        while "Ray runtime started" not in log.read_text(errors="replace") or not _read(address).strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`ray start` did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def start_head(self, timeout: float = 120) -> str:
        # port 0: a free port, never a running cluster's 6379; the dashboard is left out
        proc, temp = self._start(["--head", "--port", "0", "--include-dashboard", "false"])
        self._wait_started(proc, temp, timeout)
        self.address = _read(temp / "ray_current_cluster").strip()
        return self.address

    def add_worker(self, timeout: float = 120) -> None:
        proc, temp = self._start(["--address", self.address], {NODE_MARKER: _node_marker(len(self.nodes))})
        self._wait_started(proc, temp, timeout)

    def node_pids(self, index: int) -> list[int]:
        """Pids of node `index`'s processes (1 for the first worker): its `ray start`, raylet, trial workers."""
        mark = f"{NODE_MARKER}={_node_marker(index)}".encode()
        return [pid for pid in self.leftovers() if mark in _environ(pid)]

    def wait_for_nodes(self, n: int, timeout: float = 60) -> list[str]:
        """The node ids once `n` nodes are alive (a study sizes its concurrency on the nodes it sees)."""
        out = subprocess.run(
            [sys.executable, "-c", WAIT_FOR_NODES, self.address, str(n), str(timeout)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout + 60,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout.split()

    def leftovers(self) -> list[int]:
        """Pids of this cluster's live processes: the marker in their environment, or a temp folder in argv."""
        in_temp = re.compile("|".join(re.escape(str(t)) + r"(?![\w-])" for _, t in self.nodes) or r"(?!x)x")
        mark = f"{MARKER}={self.marker}".encode()
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if proc.stat().st_uid != os.getuid() or int(proc.name) == os.getpid() or _is_zombie(proc):
                    continue
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if mark in (proc / "environ").read_bytes().split(b"\0") or in_temp.search(cmdline):
                    found.append(int(proc.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
        return found

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM to each `ray start --block`, workers first: each drains its node and ends its processes."""
        for proc, _ in reversed(self.nodes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)

    def kill_leftovers(self, timeout: float = 10) -> None:
        pids = self.leftovers()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.1)

    def remove_temp_dirs(self) -> None:
        for _, temp in self.nodes:
            shutil.rmtree(temp, ignore_errors=True)


@contextlib.contextmanager
def _two_nodes(env: dict[str, str]):
    cluster = LocalCluster(cpus_per_node=1)
    cluster.env.update(env)
    try:
        cluster.start_head()
        cluster.add_worker()
        cluster.node_ids = cluster.wait_for_nodes(2)
        yield cluster
    finally:
        cluster.stop()
        cluster.kill_leftovers()
        cluster.remove_temp_dirs()


@pytest.fixture
def two_nodes():
    """A head and a worker, 1 CPU each; stopped and cleaned up even when the test fails."""
    with _two_nodes({}) as cluster:
        yield cluster


@pytest.fixture
def hook(tmp_path):
    """The markers' folder of the test-only fault points (tests/faults/fault_points.py)."""
    folder = tmp_path / "hook"
    folder.mkdir()
    return folder


@pytest.fixture
def two_nodes_with_hook(hook):
    """`two_nodes` whose every process loads the fault points with `hook`'s markers, the trial workers included."""
    from faults.fault_points import environment

    with _two_nodes(environment(hook)) as cluster:
        yield cluster


@pytest.mark.slow
def test_study_spreads_trials_over_two_nodes(two_nodes, tmp_path):
    from study.results import read_table

    cmd = [sys.executable, "-m", "study.run", "--address", two_nodes.address, "--smoke", "--num-samples", "4"]
    cmd += ["--max-epochs", "2", "--demo-rows", "300", "--vector-size", "16", "--cpus-per-trial", "1"]
    cmd += ["--name", "two", "--results-dir", str(tmp_path)]
    run = subprocess.run(cmd, cwd=ROOT, env=two_nodes.env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]

    folder = tmp_path / "two"
    trials = read_table(folder / "trials.parquet")
    assert len(trials) == 4 and trials["node_id"].notna().all()
    assert set(trials["node_id"]) == set(two_nodes.node_ids)  # both nodes ran trials, and only these two
    study = json.loads((folder / "study.json").read_text())
    assert study["hardware"]["cluster_cpus"] == 2 and study["ray"]["max_concurrent"] == 2
    assert study["settings"]["address"] == two_nodes.address  # the driver joined, it did not start a Ray
    # the final stage's fold tasks ran on the same cluster, on both nodes, beside each other
    final = read_table(folder / "final.parquet")
    assert len(final) == (2 + len(BASELINES)) * 2 and final["error"].isna().all()
    assert set(final["node_id"]) == set(two_nodes.node_ids)
    assert (folder / "model" / "weights.pt").is_file()

    assert len(two_nodes.leftovers()) >= 4, "the cluster's processes are not found, so the check below is void"
    two_nodes.stop()
    left = two_nodes.leftovers()
    assert not left, f"Ray processes left after the stop: {[_describe(pid) for pid in left]}"
    assert all(proc.returncode is not None for proc, _ in two_nodes.nodes)


@pytest.mark.slow
def test_a_lost_worker_node_loses_no_trial_they_resume_on_the_head_from_shared_storage(
    two_nodes_with_hook, hook, tmp_path
):
    """Every process of the worker node SIGKILLed (a machine gone) once both trials have a checkpoint."""
    from faults.fault_points import ALL, arm, held_trials, kill_and_wait, let_go

    from study.results import read_table

    cluster = two_nodes_with_hook
    arm(hook, "reported-1", ALL)  # both trials, one on each node, wait after epoch 1's checkpoint
    cmd = [sys.executable, "-m", "study.run", "--address", cluster.address, "--smoke", "--num-samples", "2"]
    cmd += ["--max-epochs", "3", "--grace-period", "3", "--demo-rows", "300", "--vector-size", "16"]
    cmd += ["--storage", str(tmp_path / "shared"), "--name", "lost", "--results-dir", str(tmp_path), "--final-top", "0"]
    study = subprocess.Popen(cmd, cwd=ROOT, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        held = held_trials(hook, "reported-1", lambda: study.poll() is None, count=2, timeout_s=300)
        worker_node = cluster.node_pids(1)
        (victim,) = [trial for trial, pid in held.items() if pid in worker_node]
        kill_and_wait(worker_node)  # the raylet, its trial worker and `ray start`: the node is gone
        let_go(hook, "reported-1")
        out, err = study.communicate(timeout=600)
    finally:
        if study.poll() is None:
            study.kill()
            study.communicate()
    assert study.returncode == 0, (out + err)[-5000:]

    folder = tmp_path / "lost"
    trials, epochs = read_table(folder / "trials.parquet"), read_table(folder / "epochs.parquet")
    assert len(trials) == 2 and trials["trial_id"].is_unique and set(trials["status"]) == {"completed"}
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert epochs.groupby("trial_id")["epoch"].apply(sorted).to_dict() == {t: [1, 2, 3] for t in trials["trial_id"]}
    assert dict(zip(trials["trial_id"], trials["retries"])) == {t: int(t == victim) for t in trials["trial_id"]}
    # the victim's epoch 1 ran on the lost node; epochs 2-3 on the head, from epoch 1's checkpoint in shared storage
    mine = epochs[epochs["trial_id"] == victim].sort_values("epoch")["node_id"].tolist()
    assert mine[0] != mine[1] == mine[2] and set(mine) == set(cluster.node_ids)
    (trial_folder,) = (tmp_path / "shared" / "lost").glob(f"*{victim}*")
    logged = [json.loads(line) for line in (trial_folder / "result.json").read_text().splitlines() if line.strip()]
    assert [(r["epoch"], r["iterations_since_restore"]) for r in logged] == [(1, 1), (2, 1), (3, 2)]


@pytest.mark.slow
def test_a_request_no_node_holds_is_refused_at_once_with_exit_2(tmp_path):
    """A head of 2 CPUs and a worker of 1 CPU and 1 GPU: 2 CPUs fit one node and 1 GPU the other, but no node
    holds a trial's 2 CPUs and 1 GPU together, so every trial (and final-stage fold) would wait for ever."""
    cluster = LocalCluster(cpus_per_node=2)
    try:
        cluster.start_head()
        worker, temp = cluster._start(["--address", cluster.address, "--num-cpus", "1", "--num-gpus", "1"])
        cluster._wait_started(worker, temp, 120)
        cluster.wait_for_nodes(2)
        cmd = [sys.executable, "-m", "study.run", "--address", cluster.address, "--smoke", "--cpus-per-trial", "2"]
        cmd += ["--gpus-per-trial", "1", "--name", "never", "--results-dir", str(tmp_path)]
        started = time.monotonic()
        run = subprocess.run(cmd, cwd=ROOT, env={**cluster.env, "COLUMNS": "1000"}, capture_output=True, text=True,
                             timeout=300)  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        cluster.stop()
        cluster.kill_leftovers()
        cluster.remove_temp_dirs()
    assert run.returncode == 2, (run.stdout + run.stderr)[-5000:]
    assert "`cpus_per_trial` 2 with `gpus_per_trial` 1: no node of this Ray cluster" in run.stderr
    assert "at most `--cpus-per-trial 1`" in run.stderr
    assert elapsed < 60  # refused once the nodes are read, not left waiting
    assert not (tmp_path / "never").exists()
