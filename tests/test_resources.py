"""Planning a study on a cluster: how many trials at once, which requests no node can hold, autoscaler capacity,
and the window that keeps Ray's queue within what the nodes hold."""

import secrets
import time

import pytest

from study.config import StudyConfig
from study.resources import (
    Once,
    Request,
    TaskWindow,
    autoscaler_capacity,
    check_resources,
    cluster_nodes,
    concurrency,
    deferred,
    tasks_at_once,
)
from trainables.settings import ConfigError

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
    assert concurrency(StudyConfig.from_settings(**kwargs), nodes) == expected


def test_requests_no_node_can_hold_are_refused():
    with pytest.raises(ConfigError, match="no node of this Ray cluster has a GPU"):
        check_resources(StudyConfig.from_settings(gpus_per_trial=0.5), [{"CPU": 2.0}])
    with pytest.raises(ConfigError, match="largest node has 1 GPU"):
        check_resources(StudyConfig.from_settings(gpus_per_trial=2), [HEAD, GPU_NODE])
    with pytest.raises(ConfigError, match="largest node has 4 CPU"):
        check_resources(StudyConfig.from_settings(cpus_per_trial=6), [HEAD, GPU_NODE])
    check_resources(StudyConfig.from_settings(gpus_per_trial=0.25), [HEAD, GPU_NODE])


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
    cfg = StudyConfig.from_settings(num_samples=200, gpus_per_trial=0.25, address="auto", storage="s3://bucket/studies")
    check_resources(cfg, [HEAD, *capacity])  # a GPU study may start before the first GPU worker is up
    assert concurrency(cfg, [HEAD, *capacity]) == 64


@pytest.fixture(scope="module")
def local_ray():
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def test_a_launcher_cluster_without_storage_is_refused_unless_nothing_is_checkpointed(local_ray, tmp_path, monkeypatch):
    ray = local_ray  # the module's Ray, started before HOME moves: Ray's own processes keep the real one
    monkeypatch.setenv("HOME", str(tmp_path))  # where autoscaler_capacity looks for the launcher's config
    (tmp_path / "ray_bootstrap_config.yaml").write_text(
        "head_node_type: head\n"
        "available_node_types:\n"
        "  head: {resources: {CPU: 1}, max_workers: 0}\n"
        "  gpu: {resources: {CPU: 4, GPU: 1}, max_workers: 2}\n"
    )
    cfg = StudyConfig.from_settings(address="auto")  # no `storage`
    with pytest.raises(ConfigError, match="`storage` is not set"):
        cluster_nodes(cfg)
    nodes = cluster_nodes(cfg, checkpoints=False)  # an ablation's fold tasks keep nothing on the nodes
    assert nodes[-2:] == [GPU_NODE, GPU_NODE] and len(nodes) == len(ray.nodes()) + 2


def test_a_trials_cpus_and_gpus_must_fit_one_node_together():
    """Each fits some node, but no node holds both: every trial and final-stage fold would wait for ever."""
    nodes = [{"CPU": 8.0}, {"CPU": 2.0, "GPU": 1.0}]
    with pytest.raises(ConfigError, match=r"no node of this Ray cluster .* has both.*at most `--cpus-per-trial 2`"):
        check_resources(StudyConfig.from_settings(cpus_per_trial=4, gpus_per_trial=1), nodes)
    check_resources(StudyConfig.from_settings(cpus_per_trial=2, gpus_per_trial=1), nodes)
    check_resources(StudyConfig.from_settings(cpus_per_trial=8), nodes)


@pytest.mark.parametrize(
    "request_,nodes,expected",
    [
        (Request(1), [{"CPU": 2.0}, {"CPU": 3.0}], 5),
        (Request(1, 0.25), [HEAD, GPU_NODE, GPU_NODE], 8),
        (Request(2, 0.25), [GPU_NODE], 2),
        (Request(4, 1), [{"CPU": 8.0}, {"CPU": 2.0, "GPU": 1.0}], 1),  # none fits: never below 1
    ],
)
def test_tasks_at_once_counts_whole_requests_per_node(request_, nodes, expected):
    assert tasks_at_once(request_, nodes) == expected


def _tasks():
    """Task functions, made here so that Ray pickles them by value (the workers cannot import a test module)."""

    def span(label):
        start = time.time()
        time.sleep(0.4)
        return label, start, time.time()

    def token():
        return secrets.token_hex(4)

    def echo(value, label):
        return value, label

    return span, token, echo


def test_a_task_window_keeps_at_most_at_once_tasks_in_ray(local_ray):
    """On 2 CPUs Ray would run two 1-CPU tasks side by side; a window of 1 submits the next only when one ends."""
    span, _, _ = _tasks()
    task = local_ray.remote(span).options(num_cpus=1)
    window = TaskWindow(1)
    for i in range(4):
        window.add(deferred(task.remote, i), f"k{i}")
    assert len(window) == 4
    spans = sorted(local_ray.get(ref) for ref, _ in window.finished())
    assert [s[0] for s in spans] == [0, 1, 2, 3] and len(window) == 0
    assert all(later[1] >= earlier[2] - 0.01 for earlier, later in zip(spans, spans[1:]))  # one at a time


def test_a_task_window_of_two_runs_two_tasks_side_by_side(local_ray, tmp_path):
    """Each task marks that it started, then waits for the other's mark: they end only if both run at once (a
    window of 1 would leave the second queued behind the first, which then gives up and says so)."""

    def meet(mine, theirs):
        import pathlib
        import time as t

        pathlib.Path(mine).touch()
        for _ in range(6000):  # 60 s: a guard against a hang, not a timer the test races
            if pathlib.Path(theirs).exists():
                return True
            t.sleep(0.01)
        return False

    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    task = local_ray.remote(meet).options(num_cpus=1)
    window = TaskWindow(2)
    window.add(deferred(task.remote, a, b), "a")
    window.add(deferred(task.remote, b, a), "b")
    assert [local_ray.get(ref) for ref, _ in window.finished()] == [True, True]


def test_a_once_task_runs_once_for_every_task_that_reads_it_and_submit_goes_first(local_ray):
    span, token, echo = (local_ray.remote(f) for f in _tasks())
    shared = Once(token.remote)
    window = TaskWindow(1)
    window.add(deferred(echo.remote, shared, "a"), "a")
    window.add(deferred(echo.remote, shared, "b"), "b")
    window.add(deferred(span.remote, "queued"), "queued")
    first = window.submit(deferred(span.remote, "submitted"))  # ahead of the queued ones once a slot is free
    done = {key: local_ray.get(ref) for ref, key in window.finished()}
    assert done["a"][0] == done["b"][0]  # one token: the shared task ran once
    assert local_ray.get(first)[1] < done["queued"][1]


def test_a_dropped_window_starts_no_queued_task_and_leaves_the_running_one_to_end(local_ray, tmp_path):
    """Ctrl-C's step: the running task is not cancelled (in Ray 2.60 a reply racing its cancellation aborts the
    driver); it ends once the test lets it, after the drop."""
    go = tmp_path / "go"

    def held(path, name):
        import pathlib
        import time as t

        pathlib.Path(path).with_name(name).touch()
        while not pathlib.Path(path).exists():
            t.sleep(0.01)
        return name

    task = local_ray.remote(held).options(num_cpus=1)
    window = TaskWindow(1)
    running = window.submit(deferred(task.remote, str(go), "running"))
    window.add(deferred(task.remote, str(go), "queued"), "queued")
    window.drop()
    assert len(window) == 0 and list(window.finished()) == []
    go.touch()
    assert local_ray.get(running, timeout=60) == "running"
    assert not (tmp_path / "queued").exists()  # its submit was never called


def test_a_task_window_says_what_runs_and_waits_while_nothing_ends(local_ray, tmp_path):
    """A task that ends only once the window has reported on it: the report comes while nothing ends, not on a timer
    the test races."""
    go = tmp_path / "go"

    def held(path):
        import pathlib
        import time as t

        while not pathlib.Path(path).exists():
            t.sleep(0.01)
        return "done"

    reports = []

    def on_wait(running, queued):
        reports.append((running, queued))
        go.touch()

    task = local_ray.remote(held).options(num_cpus=1)
    window = TaskWindow(1, on_wait, every_s=0.05)
    window.add(deferred(task.remote, str(go)), "a")
    window.add(deferred(task.remote, str(go)), "b")
    assert [local_ray.get(ref) for ref, _ in window.finished()] == ["done", "done"]
    assert reports and reports[0] == (1, 1)  # one running, one waiting in the window


@pytest.mark.slow
def test_the_final_stage_keeps_no_more_fold_tasks_in_ray_than_its_window(local_ray, tmp_path):
    """With `at_once` 1 the fold tasks (their encodings included) run one after another, each fold encoded once."""
    from study.final.stage import FinalPlan, run_cv
    from study.final.summary import Candidate
    from trainables.data import DataSpec, read_labelled
    from trainables.demo import write_demo
    from trainables.inputs import StudyData
    from trainables.preprocess import CleanConfig
    from trainables.vectorize import VectorConfig

    labelled = read_labelled(write_demo(tmp_path / "demo", n_rows=300, seed=0)[0], DataSpec())
    fixed = {"hidden_size": 8, "num_layers": 1, "batch_size": 64, "seed": 0, "max_epochs": 1, "num_threads": 1}
    plan = FinalPlan(2, 2, 0, {**fixed, "device": "cpu"}, cpus=1, gpus=0, max_retries=0, at_once=1)
    cands = [Candidate("x", 1, 0.5, {"lr": 3e-3}), Candidate("y", 2, 0.4, {"lr": 1e-3})]
    rows, cache = [], tmp_path / "vectors"
    data = StudyData(labelled, (), CleanConfig(), VectorConfig(vector_size=8, epochs=1), cache)
    run_cv(plan, cands, data, set(), rows.append)
    assert len(rows) == (2 + 3) * 2 and all(r["error"] is None for r in rows), rows
    spans = sorted((r["started_at"], r["finished_at"]) for r in rows)
    assert all(later[0] >= earlier[1] - 0.01 for earlier, later in zip(spans, spans[1:]))  # never two at once
    assert len(list(cache.glob("word2vec-*.npz"))) == 2  # one encoding per fold, read by both candidates
