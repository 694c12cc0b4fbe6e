"""Planning a study on a cluster: how many trials at once, which requests no node can hold, autoscaler capacity."""

import pytest

from study.config import ConfigError, StudyConfig
from study.resources import autoscaler_capacity, check_resources, cluster_nodes, concurrency

HEAD = {"CPU": 0.0, "node:__internal_head__": 1.0}
GPU_NODE = {"CPU": 4.0, "GPU": 1.0}


@pytest.mark.parametrize(
    "kwargs,nodes,expected",
    [
        ({"num_samples": 12}, [{"CPU": 2.0}], 2),
        ({"num_samples": 12, "cpus_per_trial": 0.5}, [{"CPU": 2.0}], 4),
        ({"num_samples": 3}, [{"CPU": 8.0}], 3),  # never more than the budget
        ({"num_samples": 64, "gpus_per_trial": 0.25}, [HEAD, GPU_NODE, GPU_NODE], 8),  # 4 trials per card
        ({"num_samples": 64, "gpus_per_trial": 0.25, "cpus_per_trial": 2}, [GPU_NODE], 2),  # CPUs bind first
        ({"num_samples": 12, "max_concurrent": 5}, [{"CPU": 2.0}], 5),
    ],
)
def test_concurrency(kwargs, nodes, expected):
    assert concurrency(StudyConfig(**kwargs), nodes) == expected


def test_requests_no_node_can_hold_are_refused():
    with pytest.raises(ConfigError, match="no node of this Ray cluster has a GPU"):
        check_resources(StudyConfig(gpus_per_trial=0.5), [{"CPU": 2.0}])
    with pytest.raises(ConfigError, match="largest node has 1 GPU"):
        check_resources(StudyConfig(gpus_per_trial=2), [HEAD, GPU_NODE])
    with pytest.raises(ConfigError, match="largest node has 4 CPU"):
        check_resources(StudyConfig(cpus_per_trial=6), [HEAD, GPU_NODE])
    check_resources(StudyConfig(gpus_per_trial=0.25), [HEAD, GPU_NODE])


def test_autoscaler_capacity_counts_every_worker_the_launcher_may_start(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert autoscaler_capacity() == []  # not a `ray up` head
    (tmp_path / "ray_bootstrap_config.yaml").write_text(
        "head_node_type: head\n"
        "available_node_types:\n"
        "  head: {resources: {CPU: 0}, max_workers: 0}\n"
        "  gpu.ondemand: {resources: {CPU: 4, GPU: 1}, min_workers: 1, max_workers: 1}\n"
        "  gpu.spot: {resources: {CPU: 4, GPU: 1}, min_workers: 0, max_workers: 15}\n"
    )
    capacity = autoscaler_capacity()
    assert len(capacity) == 16 and all(c == {"CPU": 4.0, "GPU": 1.0} for c in capacity)
    cfg = StudyConfig(num_samples=200, gpus_per_trial=0.25, address="auto", storage="s3://bucket/studies")
    check_resources(cfg, [HEAD, *capacity])  # a GPU study may start before the first GPU worker is up
    assert concurrency(cfg, [HEAD, *capacity]) == 64


def test_a_launcher_cluster_without_storage_is_refused_unless_nothing_is_checkpointed(tmp_path, monkeypatch):
    import ray

    started = not ray.is_initialized()
    if started:  # before HOME moves: Ray's own processes keep the real one
        ray.init(num_cpus=1, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # where autoscaler_capacity looks for the launcher's config
    (tmp_path / "ray_bootstrap_config.yaml").write_text(
        "head_node_type: head\n"
        "available_node_types:\n"
        "  head: {resources: {CPU: 1}, max_workers: 0}\n"
        "  gpu: {resources: {CPU: 4, GPU: 1}, max_workers: 2}\n"
    )
    try:
        cfg = StudyConfig(address="auto")  # no `storage`
        with pytest.raises(ConfigError, match="`storage` is not set"):
            cluster_nodes(cfg)
        nodes = cluster_nodes(cfg, checkpoints=False)  # an ablation's fold tasks keep nothing on the nodes
        assert nodes[-2:] == [GPU_NODE, GPU_NODE] and len(nodes) == len(ray.nodes()) + 2
    finally:
        if started:
            ray.shutdown()
