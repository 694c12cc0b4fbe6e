"""Where a study runs: starting or joining Ray, the nodes to plan on, and what a trial may ask of them.

Here: `init_ray` (a local Ray, or the cluster at `address`), `cluster_nodes` (the nodes up and the workers a
`ray up` cluster's launcher may start, `autoscaler_capacity`), `check_resources` (per-trial requests no node can
hold are refused) and `concurrency` (how many trials at once). Not here: the study's steps (orchestrate.py), the
settings themselves (config.py).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from study.config import ConfigError, StudyConfig


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


def cluster_nodes(cfg: StudyConfig, checkpoints: bool = True) -> list[dict[str, float]]:
    """The resources of every node to plan trials on: the nodes up, and the workers the launcher may start.

    `checkpoints` False: the work keeps nothing on the nodes (an ablation's fold tasks), so no shared storage
    is needed.

    Raises:
        ConfigError: the cluster spans several machines but `storage` is not shared (with `checkpoints`).
    """
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    hosts = {n.get("NodeManagerHostname") for n in alive}
    capacity = autoscaler_capacity() if cfg.address else []
    if checkpoints and (len(hosts) > 1 or capacity) and not cfg.storage:
        raise ConfigError(
            f"this Ray cluster spans {max(len(hosts), 2)} machines, but `storage` is not set, so trials on worker "
            "nodes could not save checkpoints; give `--storage s3://bucket/prefix` or a path every node mounts "
            "(NFS, EFS)."
        )
    nodes = [n["Resources"] for n in alive]
    if capacity:
        workers = [n["Resources"] for n in alive if "node:__internal_head__" not in n["Resources"]]
        nodes = [r for r in nodes if r not in workers] + capacity  # running workers count within max_workers
    return nodes


def check_resources(cfg: StudyConfig, nodes: list[dict[str, float]]) -> None:
    """Refuse per-trial requests that no node can hold (Ray would otherwise wait for ever)."""
    max_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    max_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    if cfg.gpus_per_trial > 0 and max_gpus == 0:
        raise ConfigError(
            f"`gpus_per_trial` is {cfg.gpus_per_trial}, but no node of this Ray cluster has a GPU. "
            "Use `--gpus-per-trial 0` to train on CPUs, or connect to a GPU cluster with `--address`."
        )
    if cfg.gpus_per_trial > max_gpus:
        raise ConfigError(
            f"`gpus_per_trial` is {cfg.gpus_per_trial}, but the largest node has {max_gpus:g} GPU(s); "
            f"ask for at most {max_gpus:g} (a fraction such as 0.25 shares a card)."
        )
    if cfg.cpus_per_trial > max_cpus:
        raise ConfigError(
            f"`cpus_per_trial` is {cfg.cpus_per_trial}, but the largest node has {max_cpus:g} CPU(s); "
            f"ask for at most {max_cpus:g}."
        )


def concurrency(cfg: StudyConfig, nodes: list[dict[str, float]]) -> int:
    """Trials at once: the user's `max_concurrent`, else what fits on the nodes, at most the budget."""
    if cfg.max_concurrent:
        return min(cfg.max_concurrent, cfg.num_samples)
    fit = 0
    for n in nodes:
        by_cpu = math.floor(n.get("CPU", 0) / cfg.cpus_per_trial + 1e-9)
        by_gpu = math.floor(n.get("GPU", 0) / cfg.gpus_per_trial + 1e-9) if cfg.gpus_per_trial else by_cpu
        fit += min(by_cpu, by_gpu)
    return max(1, min(fit, cfg.num_samples))


def init_ray(cfg: StudyConfig) -> bool:
    """Connect to `address` or start a local Ray; returns whether this call started it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if cfg.address:
        ray.init(address=cfg.address, **kwargs)
    else:
        ray.init(include_dashboard=False, **kwargs)
    return True
