"""Where a study runs: starting or joining Ray, the nodes to plan on, and what its tasks may ask of them.

Here: `init_ray` (a new local Ray, or the cluster at `address` / $RAY_ADDRESS once it answers), `cluster_nodes`
(the nodes up and the workers a `ray up` cluster's launcher may start, `autoscaler_capacity`), `check_resources`
(requests of the study's trials and tasks that no node can hold are refused), `concurrency` (how many trials at
once) and `TaskWindow` (Ray tasks submitted no faster than the nodes take them). Not here: the study's steps
(search/driver.py), the settings themselves (config.py).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.config import StudyConfig
from trainables.settings import ConfigError

log = logging.getLogger(__name__)

# How long a cluster named by `--address` (or $RAY_ADDRESS) may take to answer before the command gives up
# with exit 2; Ray itself would retry a dead address for ever.
CONNECT_TIMEOUT_S = 15.0


def autoscaler_capacity() -> list[dict[str, float]]:
    """Resources of every worker the cluster launcher may start, read on a `ray up` head; [] elsewhere.

    Planning on the nodes that are up would ask an autoscaling cluster for only what its head holds, and it
    would never grow; a GPU study started before the first GPU worker joins would be refused.
    """
    path = Path("~/ray_bootstrap_config.yaml").expanduser()
    if not path.is_file():
        return []
    import yaml

    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    head = config.get("head_node_type")
    return [
        {k: float(v) for k, v in (t.get("resources") or {}).items()}
        for name, t in (config.get("available_node_types") or {}).items()
        if name != head
        for _ in range(int(t.get("max_workers", 0)))
    ]


def cluster_address(cfg: StudyConfig) -> str:
    """The cluster to join: `address`, else $RAY_ADDRESS; "" for a new local Ray of this command's own."""
    return cfg.address or os.environ.get("RAY_ADDRESS", "").strip()


def cluster_nodes(cfg: StudyConfig, checkpoints: bool = True) -> list[dict[str, float]]:
    """The resources of every node to plan trials on: the nodes up, and the workers the launcher may start.

    `checkpoints` False: the work keeps nothing on the nodes (an ablation's fold tasks), so no shared storage
    is needed.

    Raises:
        ConfigError: the cluster spans several machines but `storage` is not set (with `checkpoints`).
    """
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    hosts = {n.get("NodeManagerHostname") for n in alive}
    capacity = autoscaler_capacity() if cluster_address(cfg) else []
    if checkpoints and (len(hosts) > 1 or capacity) and not cfg.storage:
        raise ConfigError(
            f"this Ray cluster spans {max(len(hosts), 2)} machines, but `storage` is not set, so trials on worker "
            "nodes could not save checkpoints; give `--storage s3://bucket/prefix` or a path every node mounts "
            "(NFS, EFS)."
        )
    nodes = [n["Resources"] for n in alive]
    if capacity:  # the head, and every worker the launcher may start (the running ones count within max_workers)
        return [r for r in nodes if "node:__internal_head__" in r] + capacity
    return nodes


@dataclass(frozen=True)
class Request:
    """What one Ray task or actor of a study asks for: CPUs and GPUs, on one node."""

    cpus: float
    gpus: float = 0.0


def trial_request(cfg: StudyConfig) -> Request:
    """A trial's request; each final-stage fold task, encoding and the final model ask for the same."""
    return Request(cfg.cpus_per_trial, cfg.gpus_per_trial)


def holds(node: dict[str, float], request: Request) -> int:
    """How many tasks of `request` the node holds at once (0: none)."""
    fits = [math.floor(node.get(k, 0) / n + 1e-9) for k, n in (("CPU", request.cpus), ("GPU", request.gpus)) if n]
    return min(fits, default=1)


def tasks_at_once(request: Request, nodes: list[dict[str, float]]) -> int:
    """How many tasks of `request` the nodes hold at once, at least 1."""
    return max(1, sum(holds(n, request) for n in nodes))


def check_resources(cfg: StudyConfig, nodes: list[dict[str, float]]) -> None:
    """Refuse requests of the study's trials and tasks that no node can hold (Ray would otherwise wait for ever).

    Every task and actor a study starts asks for a trial's request (trials, final-stage folds and their
    encodings, the final model), a trial's CPUs alone (the TF-IDF baselines) or nothing (the representation
    store and its encodings), so one node that holds a trial's CPUs and GPUs together holds them all.
    """
    max_cpus, max_gpus = (max((n.get(k, 0) for n in nodes), default=0) for k in ("CPU", "GPU"))
    if cfg.gpus_per_trial > 0 and max_gpus == 0:
        raise ConfigError(
            f"`gpus_per_trial` is {cfg.gpus_per_trial}, but no node of this Ray cluster has a GPU. "
            "Use `--gpus-per-trial 0` to train on CPUs, or connect to a GPU cluster with `--address`."
        )
    if cfg.gpus_per_trial > max_gpus:
        raise ConfigError(
            f"`gpus_per_trial` is {cfg.gpus_per_trial:g}, but the largest node has {max_gpus:g} GPU(s); "
            f"ask for at most {max_gpus:g} (a fraction such as 0.25 shares a card)."
        )
    if cfg.cpus_per_trial > max_cpus:
        raise ConfigError(
            f"`cpus_per_trial` is {cfg.cpus_per_trial:g}, but the largest node has {max_cpus:g} CPU(s); "
            f"ask for at most {max_cpus:g}."
        )
    request = trial_request(cfg)
    if not any(holds(n, request) for n in nodes):
        most = max(n.get("CPU", 0) for n in nodes if n.get("GPU", 0) >= cfg.gpus_per_trial)
        raise ConfigError(
            f"`cpus_per_trial` {cfg.cpus_per_trial:g} with `gpus_per_trial` {cfg.gpus_per_trial:g}: no node of this "
            f"Ray cluster (nor a worker its launcher may start) has both, so every trial and final-stage fold "
            f"would wait for ever; the nodes with {cfg.gpus_per_trial:g} GPU(s) have at most {most:g} CPU(s). "
            f"Ask for at most `--cpus-per-trial {most:g}`, or for fewer GPUs per trial."
        )


def concurrency(cfg: StudyConfig, nodes: list[dict[str, float]]) -> int:
    """Trials at once: the user's `max_concurrent`, else what fits on the nodes, at most the budget."""
    return min(cfg.max_concurrent or tasks_at_once(trial_request(cfg), nodes), cfg.num_samples)


class TaskWindow:
    """Ray tasks submitted so that at most `at_once` of them are unfinished; the others wait here, not in Ray.

    A task that Ray queues because every node is busy is pending demand to the autoscaler, and demand that
    neither a free node nor a node type the launcher may start can take is what it calls "infeasible": Ray then
    warns "There are tasks with infeasible resource requests that cannot be scheduled", although the tasks only
    wait for a free CPU. Sized by `tasks_at_once` over the nodes up and the workers the launcher may start, the
    window never asks for more than the cluster can hold, while an autoscaling cluster still sees the demand that
    makes it start workers.

    `add` queues a task with a key and `finished` yields (ref, key) as they end, in the order they end;
    `submit` starts a task ahead of the queue as soon as a slot is free (for work the caller waits on
    itself); `drop` forgets them all (what runs ends on its own).
    """

    def __init__(self, at_once: int, on_wait: Callable[[int, int], None] | None = None, every_s: float = 10.0):
        """`on_wait(running, queued)` is called every `every_s` seconds that pass with no task ending."""
        self.at_once = at_once if at_once > 0 else math.inf
        self.on_wait, self.every_s = on_wait, every_s
        self._queue: deque[tuple[Callable[[], Any], Any]] = deque()
        self._running: dict[Any, tuple[bool, Any]] = {}  # ref -> (keyed, key)
        self._done: deque[tuple[Any, Any]] = deque()

    def __len__(self) -> int:
        """Keyed tasks not yet yielded by `finished`: queued, running or done."""
        return len(self._queue) + self._keyed_running() + len(self._done)

    def add(self, submit: Callable[[], Any], key: Any) -> None:
        """Queue a task: `submit()` starts it and returns its ObjectRef; `finished` yields it with `key`."""
        self._queue.append((submit, key))
        self._fill()

    def submit(self, submit: Callable[[], Any]) -> Any:
        """Start a task as soon as a slot is free, before the queued ones; returns its ObjectRef."""
        while len(self._running) >= self.at_once:
            self._wait_one()
        ref = submit()
        self._running[ref] = (False, None)
        return ref

    def finished(self) -> Iterator[tuple[Any, Any]]:
        """(ref, key) of every queued task as it ends; the caller `ray.get`s the ref."""
        while True:
            self._fill()
            if self._done:
                yield self._done.popleft()
            elif self._queue or self._keyed_running():
                self._wait_one()
            else:
                return

    def drop(self) -> None:
        """Forget every task: the queued ones never start; the running ones end on their own, or with the job when
        the driver exits (its Ctrl-C).

        Not `ray.cancel`: in Ray 2.60 a task whose reply arrives as it is cancelled aborts the driver process
        (RAY_CHECK "Tried to complete task that was not pending"; ray-project/ray#54798).
        """
        self._queue.clear()
        self._running.clear()
        self._done.clear()

    def _keyed_running(self) -> int:
        """Running tasks that `finished` will yield (not those started by `submit`)."""
        return sum(keyed for keyed, _ in self._running.values())

    def _fill(self) -> None:
        while self._queue and len(self._running) < self.at_once:
            submit, key = self._queue.popleft()
            self._running[submit()] = (True, key)

    def _wait_one(self) -> None:
        import ray

        timeout = self.every_s if self.on_wait else None
        while not (ready := ray.wait(list(self._running), num_returns=1, timeout=timeout)[0]):
            self.on_wait(self._keyed_running(), len(self._queue))
        ready = ready[0]
        keyed, key = self._running.pop(ready)
        if keyed:
            self._done.append((ready, key))


class Once:
    """`remote(*args)` called at most once, on the first call: a task that several others read (a fold's encoding)."""

    def __init__(self, remote: Callable[..., Any], *args: Any):
        self._remote, self._args, self._refs = remote, args, []

    def __call__(self) -> Any:
        if not self._refs:
            self._refs.append(self._remote(*self._args))
        return self._refs[0]


def deferred(remote: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """`remote(*args)`, called later (by a TaskWindow); a `Once` argument is started then and its ObjectRef passed."""
    return lambda: remote(*(a() if isinstance(a, Once) else a for a in args))


def resolve_address(address: str) -> tuple[str, str]:
    """The host:port a cluster address names, and where it came from (for messages).

    `auto` is $RAY_ADDRESS, else the address file of the last cluster started on this machine (`ray start`,
    `ray up`: `ray_current_cluster` in Ray's temp folder), else the one Ray process running here, as Ray finds it.
    (Ray itself prefers a lone running cluster to the file; here a dead cluster in the file is an error, never
    a silent move to another cluster.)

    Raises:
        ConfigError: `auto` finds no cluster, or the address is not host:port, `auto` or ray://host:port.
    """
    from study.compat import canonical_address, ray_address_file

    env = os.environ.get("RAY_ADDRESS", "").strip()
    path = ray_address_file()
    if address != "auto":
        source = "`--address`" if address != env else "$RAY_ADDRESS"
    elif env:
        address, source = env, "$RAY_ADDRESS"
    elif path.is_file() and (recorded := path.read_text().strip()):
        address, source = recorded, f"{path}, the last cluster started on this machine"
    else:
        source = "the Ray process running on this machine"
    if "://" in address:  # a Ray Client address: its server's host and port
        return address.split("://", 1)[1].rstrip("/"), source
    try:
        found = canonical_address(address)
    except ConnectionError:
        raise ConfigError(
            "`--address auto`: no running Ray cluster was found on this machine (no $RAY_ADDRESS, no address "
            f"file {path}). Start one (`ray start --head`, `ray up cluster.yaml` and run "
            "the command on its head), give its address (`--address HOST:PORT`), or leave out `--address` to run "
            "on a new local Ray."
        ) from None
    except ValueError as e:
        raise ConfigError(
            f"`--address` {address!r} is not an address ({e}); give HOST:PORT of the cluster's head, `auto` or "
            "ray://HOST:PORT."
        ) from None
    if found is None:
        raise ConfigError(f"`--address` {address!r} names no cluster; give HOST:PORT of the cluster's head or `auto`.")
    return found, source


def answers(host_port: str, timeout_s: float) -> bool:
    """Whether something accepts a TCP connection at host:port within `timeout_s` (tried every 0.5 s)."""
    host, _, port = host_port.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=max(0.1, min(2.0, timeout_s))):
                return True
        except (OSError, ValueError):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)


def init_ray(cfg: StudyConfig) -> bool:
    """Join the cluster at `address` (or $RAY_ADDRESS) or start a new local Ray; returns whether this call started it.

    Without an address the command starts its own Ray (`address="local"`), whatever clusters this machine ran
    before: Ray's plain `ray.init()` would join the last one started here (its address file), dead or alive.
    With one, the cluster must answer within CONNECT_TIMEOUT_S.

    Raises:
        ConfigError: the address names no cluster, or none answers there in time.
    """
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    address = cluster_address(cfg)
    if not address:
        log.info("Ray: starting a new local instance (no `--address`; clusters started on this machine are not joined)")
        ray.init(address="local", include_dashboard=False, **kwargs)
        return True
    host_port, source = resolve_address(address)
    given = f"`--address {cfg.address}`" if cfg.address else f"$RAY_ADDRESS={address}"
    if not answers(host_port, CONNECT_TIMEOUT_S):
        stale = f" (if that cluster is gone, delete {source.split(',')[0]})" if "last cluster" in source else ""
        raise ConfigError(
            f"no Ray cluster answered at {host_port} ({given}, from {source}) within {CONNECT_TIMEOUT_S:g} s. "
            f"Start it (`ray start --head`, or `ray up cluster.yaml`){stale}, give the address of a running one "
            "(`ray status` on its head shows it), or leave out `--address` and unset $RAY_ADDRESS to run on a new "
            "local Ray."
        )
    log.info("Ray: joining the cluster at %s (%s)", host_port, given)
    ray.init(address=cfg.address or None, **kwargs)
    return True
