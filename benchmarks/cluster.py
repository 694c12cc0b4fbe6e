"""Trials per hour of one study on one Ray node against two, on this machine; and a 16-GPU estimate.

    python benchmarks/cluster.py [--repeats 3] [--estimate-from results/<name>] [--no-write]

Each configuration is a real Ray cluster of `ray start --block` nodes (1 CPU each, own temp folders, token
auth with a fresh token) that `python -m study.run --address ...` joins; one node and two nodes run the
same study (same settings and seed, same budget), alternately when repeated. Trials per hour come from the
study's own wall time (study.json `wall_time_s`: data encoding, the Tune run and the writing of results).
From the measured per-trial costs (epochs.parquet `epoch_time_s`, epochs per trial, and the time a trial
slot spends on a trial beyond its epochs) it estimates trials per hour and cost of a 16-GPU cluster like
cluster.yaml's. Prints a table and rewrites its section of BENCHMARKS.md. Never calls `ray stop` (which
stops every Ray process of the machine): it stops the processes it started.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sections import write_section  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "cluster"
# the same 8 trials in every run: all seeded random (no TPE, whose proposals depend on the order trials end),
# and no early stopping (grace period = max epochs)
STUDY_ARGS = ["--space", "default", "--num-samples", "8", "--n-startup-trials", "8", "--max-epochs", "2"]
STUDY_ARGS += ["--grace-period", "2", "--demo-rows", "1200", "--cpus-per-trial", "1"]
MARKER = "RNN_STUDY_BENCH_CLUSTER"

# USD per hour, us-west-2 Linux list prices assumed (they change; spot moves by the hour)
PRICE = {"head m5.xlarge": 0.192, "g5.xlarge on-demand": 1.006, "g5.xlarge spot": 0.40, "150 GB gp3 disk": 0.016}
GPUS, TRIALS_PER_GPU = 16, 4  # cluster.yaml: 16 one-GPU workers, --gpus-per-trial 0.25 --cpus-per-trial 1


# ----------------------------------------------------------------------------------- a cluster on this machine
class LocalCluster:
    """`ray start --block` nodes on this machine with a shared fresh auth token; stops exactly its processes."""

    def __init__(self) -> None:
        self.marker = secrets.token_hex(8)
        self.env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
        self.env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0")
        self.env[MARKER] = self.marker
        self.nodes: list[tuple[subprocess.Popen, Path]] = []
        self.address = ""
        self.ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"

    def add_node(self, timeout: float = 120) -> None:
        temp = Path(tempfile.mkdtemp(prefix="rb_", dir="/tmp"))  # short: unix socket paths live under it
        args = (
            ["--address", self.address] if self.address else ["--head", "--port", "0", "--include-dashboard", "false"]
        )
        cmd = [self.ray, "start", "--block", "--temp-dir", str(temp), "--num-cpus", "1", "--num-gpus", "0"]
        cmd += ["--object-store-memory", str(100 * 2**20), "--disable-usage-stats", *args]
        log = temp / "ray_start.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self.nodes.append((proc, temp))
        deadline = time.monotonic() + timeout
        address = temp / "ray_current_cluster"  # written after the message below
        while "Ray runtime started" not in log.read_text(errors="replace") or not _read(address).strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`ray start` failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        if not self.address:
            self.address = _read(address).strip()

    def wait_for_nodes(self, n: int, timeout: float = 60) -> None:
        code = (
            "import sys, time, ray\n"
            "ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
            "t = time.monotonic()\n"
            "while sum(x['Alive'] for x in ray.nodes()) < int(sys.argv[2]):\n"
            "    if time.monotonic() - t > float(sys.argv[3]): sys.exit('nodes missing')\n"
            "    time.sleep(0.5)\n"
        )
        cmd = [sys.executable, "-c", code, self.address, str(n), str(timeout)]
        subprocess.run(cmd, env=self.env, check=True, capture_output=True, timeout=timeout + 60)

    def _pids(self) -> list[int]:
        mark = f"{MARKER}={self.marker}".encode()
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if proc.stat().st_uid == os.getuid() and mark in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
        return [p for p in pids if p != os.getpid()]

    def stop(self) -> None:
        for proc, _ in reversed(self.nodes):  # workers first; each takes its node's processes down
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        for pid in self._pids():  # anything left (a zombie-free sweep of this cluster's processes only)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for _, temp in self.nodes:
            shutil.rmtree(temp, ignore_errors=True)


def other_ray_clusters() -> int:
    """GCS servers of other people's Ray clusters running on this machine now (they compete for the CPUs)."""
    return sum(
        1
        for proc in Path("/proc").glob("[0-9]*")
        if (proc / "comm").exists() and _read(proc / "comm").strip() == "gcs_server"
    )


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


# ------------------------------------------------------------------------------------------------ measuring
@dataclass(frozen=True)
class Run:
    nodes: int
    trials: int
    wall_s: float  # study.json wall_time_s: encoding, the Tune run, writing the results
    tune_s: float  # from the first trial's start to the last trial's last report (Ray's result.json files)
    process_s: float  # the whole `python -m study.run` process, imports and Ray connect included
    concurrent: int
    epoch_s: float  # mean epoch_time_s
    epochs_per_trial: float
    node_ids: int
    load_before: float
    others: int

    @property
    def trials_per_hour(self) -> float:
        return self.trials / self.wall_s * 3600

    @property
    def slot_s(self) -> float:
        """Seconds of one trial slot per trial: the Tune run's span × trials at once / trials."""
        return self.tune_s * self.concurrent / self.trials

    @property
    def overhead_s(self) -> float:
        """Slot seconds per trial beyond its epochs: actor start, fetching the data, checkpoints, scheduling."""
        return max(self.slot_s - self.epochs_per_trial * self.epoch_s, 0.0)


def tune_span(trial_root: Path) -> float:
    """Seconds from the first trial's start to the last report of any trial, from Ray's result.json files."""
    starts, ends = [], []
    for result in trial_root.glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if rows:
            starts.append(rows[0]["timestamp"] - rows[0]["time_total_s"])
            ends.append(rows[-1]["timestamp"])
    return max(ends) - min(starts)


def run_once(nodes: int, results_dir: Path) -> Run:
    others, load = other_ray_clusters(), os.getloadavg()[0]
    cluster = LocalCluster()
    try:
        for _ in range(nodes):
            cluster.add_node()
        cluster.wait_for_nodes(nodes)
        name = f"bench-{nodes}n-{secrets.token_hex(3)}"
        cmd = [sys.executable, "-m", "study.run", "--address", cluster.address, *STUDY_ARGS]
        cmd += ["--name", name, "--results-dir", str(results_dir)]
        t0 = time.monotonic()
        out = subprocess.run(cmd, cwd=ROOT, env=cluster.env, capture_output=True, text=True, timeout=1800)
        process_s = time.monotonic() - t0
        if out.returncode != 0:
            raise RuntimeError(f"study failed ({out.returncode}):\n{(out.stdout + out.stderr)[-4000:]}")
    finally:
        cluster.stop()
    from study.results import read_table

    folder = results_dir / name
    study = json.loads((folder / "study.json").read_text())
    trials, epochs = read_table(folder / "trials.parquet"), read_table(folder / "epochs.parquet")
    return Run(
        nodes=nodes,
        trials=len(trials),
        wall_s=float(study["wall_time_s"]),
        tune_s=tune_span(Path(study["ray"]["experiment_path"])),
        process_s=process_s,
        concurrent=int(study["ray"]["max_concurrent"]),
        epoch_s=float(epochs["epoch_time_s"].mean()),
        epochs_per_trial=float(trials["epochs_run"].mean()),
        node_ids=int(trials["node_id"].nunique()),
        load_before=load,
        others=others,
    )


# ------------------------------------------------------------------------------------------------- estimate
def estimate(epoch_s: float, epochs_per_trial: float, overhead_s: float, speedup: float) -> dict[str, float]:
    """Trials per hour and cost of 16 one-GPU workers running TRIALS_PER_GPU trials each at once."""
    per_trial_s = epochs_per_trial * epoch_s / speedup + overhead_s
    per_hour = GPUS * TRIALS_PER_GPU * 3600 / per_trial_s
    disks = (GPUS + 1) * PRICE["150 GB gp3 disk"]
    on_demand = PRICE["head m5.xlarge"] + GPUS * PRICE["g5.xlarge on-demand"] + disks
    spot = PRICE["head m5.xlarge"] + PRICE["g5.xlarge on-demand"] + (GPUS - 1) * PRICE["g5.xlarge spot"] + disks
    return {
        "per_trial_s": per_trial_s,
        "trials_per_hour": per_hour,
        "usd_per_hour_on_demand": on_demand,
        "usd_per_hour_spot": spot,
        "usd_per_1000_trials_on_demand": on_demand / per_hour * 1000,
        "usd_per_1000_trials_spot": spot / per_hour * 1000,
    }


def from_study(folder: Path) -> tuple[str, float, float]:
    """An earlier study (e.g. a full-size one): what it was, its mean epoch time and epochs per trial."""
    from study.results import read_table

    epochs, trials = read_table(folder / "epochs.parquet"), read_table(folder / "trials.parquet")
    study = json.loads((folder / "study.json").read_text())
    cfg, data = study["settings"], study["data"]
    label = (
        f"a `{cfg['space']}`-space study: {len(trials)} trials, {data['n_train']} training rows"
        f"{' (demo)' if data.get('demo') else ''}, vector size {cfg['vector_size'] or 300}, "
        f"max {cfg['max_epochs']} epochs"
    )
    return label, float(epochs["epoch_time_s"].mean()), float(trials["epochs_run"].mean())


# ---------------------------------------------------------------------------------------------- BENCHMARKS.md
def report(runs: list[Run], estimate_from: Path | None) -> str:
    one = [r for r in runs if r.nodes == 1]
    two = [r for r in runs if r.nodes == 2]
    # each two-node run against the one-node run just before it: neighbours in time share the machine's load
    ratios = [b.trials_per_hour / a.trials_per_hour for a, b in zip(one, two)]
    ratio = statistics.median(ratios)
    # per-trial costs from the one-node runs: one trial at a time competes least for the cores
    epochs = statistics.median(r.epochs_per_trial for r in one)
    epoch_s = statistics.median(r.epoch_s for r in one)
    overhead = statistics.median(r.overhead_s for r in one)
    slowdowns = [b.epoch_s / a.epoch_s for a, b in zip(one, two)]
    fixed = statistics.median(r.wall_s - r.tune_s for r in runs)
    slots = GPUS * TRIALS_PER_GPU
    lines = [
        "## Cluster: one node against two (`python benchmarks/cluster.py`)",
        "",
        f"Measured {dt.date.today().isoformat()} on `{platform.node()}`, **{os.cpu_count()} CPU cores, shared with",
        "other developers' jobs while it ran**: the load average and the number of other Ray clusters on the",
        "machine at the start of each run are in the table; the times move a lot with them. One node = a",
        "`ray start` head with 1 CPU; two nodes = that head and a `ray start` worker with 1 CPU; `python -m",
        "study.run --address` joins them. Same study and budget each time,",
        f"`{' '.join(STUDY_ARGS)}`: the same 8",
        "trials (all seeded random, none stopped early), 2 epochs each. The runs alternate, one node then two.",
        "",
        "| nodes | trials | at once | study wall s | Tune run s | fixed s | process s | trials/hour | slot s per trial "
        "| epochs/trial | mean epoch s | nodes used | load avg | other Ray clusters |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        lines.append(
            f"| {r.nodes} | {r.trials} | {r.concurrent} | {r.wall_s:.1f} | {r.tune_s:.0f} | "
            f"{r.wall_s - r.tune_s:.1f} | {r.process_s:.1f} | {r.trials_per_hour:.0f} | {r.slot_s:.1f} | "
            f"{r.epochs_per_trial:.2f} | {r.epoch_s:.3f} | {r.node_ids} | {r.load_before:.1f} | {r.others} |"
        )
    lines += [
        "",
        "Trials per hour = trials / study wall time (study.json `wall_time_s`: encoding, the Tune run, writing",
        "the results). Tune run = first trial start to last report (Ray's result.json files, 1 s resolution);",
        "fixed = wall − Tune run; slot s per trial = Tune run × trials at once / trials; process s adds the",
        "imports and connecting to Ray.",
        "",
        f"**Two nodes / one node: {ratio:.2f}× the trials per hour** (median of the pairs: "
        + ", ".join(f"{x:.2f}" for x in ratios)
        + "). The ideal is 2×. What keeps it lower here: the study's fixed part (the `fixed s` column: data,",
        "Tune's start, writing the results), which more nodes do not shrink; the end of the run, when one",
        "trial is left; and the 2 cores, which the driver, two trials and other developers' jobs share: an",
        "epoch took " + ", ".join(f"{x:.2f}×" for x in slowdowns) + " as long with two trials at once as",
        "with one, pair by pair. On machines of their own, two nodes would come closer to 2×.",
        "",
        f"### Estimate: {GPUS} GPUs (cluster.yaml: {GPUS} × g5.xlarge, {TRIALS_PER_GPU} trials per GPU with "
        "`--gpus-per-trial 0.25`)",
        "",
        "Per-trial costs measured above, medians of the one-node runs (one trial at a time, so the least",
        f"contention): {epochs:.2f} epochs per trial × **{epoch_s:.3f} s per trial-epoch** on 1 core",
        f"(epochs.parquet `epoch_time_s`), and **{overhead:.1f} s of overhead per trial** (slot time beyond the",
        "epochs: the trial's actor start, fetching the data, checkpoints, scheduling, and the end of the run",
        f"when fewer trials than slots are left; inflated here by the machine's load); about {fixed:.0f} s fixed",
        f"per study. On the cluster {slots} trials run at once, each taking epochs × epoch time / GPU speed-up +",
        f"that overhead, so trials/hour = {slots} × 3600 / that.",
        "",
        "**The GPU speed-up is an assumption, not a measurement** (this machine has no GPU): 1× (small models",
        "and batches may gain nothing from a GPU) and 5× (a plausible gain for the default space's larger",
        "models with 4 trials sharing an A10G). Also assumed: a g5.xlarge vCPU is as fast as a core here, the",
        f"overhead stays as measured, and the driver (Tune and TPE on the head) keeps up with {slots} trials at",
        "once. That last one is untested: the driver must start as many trials per second as the last column",
        "says, and rows that need more than a few per second are upper bounds, capped by the head rather than",
        "the GPUs. Rows from a real study (`--estimate-from`) are the ones that matter.",
        "",
        "Prices assumed, USD per hour (us-west-2 list prices; spot is a typical price and varies): "
        + ", ".join(f"{k} {v:.3f}" for k, v in PRICE.items())
        + f". Spot mix = the head, 1 on-demand and {GPUS - 1} spot GPU workers; disks for all {GPUS + 1} nodes.",
        "",
        "| per-trial cost from | GPU speed-up (assumed) | epochs × epoch s | s per trial | trials/hour "
        "| USD/hour on-demand | USD/hour spot mix | USD/1000 trials on-demand | USD/1000 trials spot mix "
        "| trials/s the driver starts |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    bases = [("this benchmark's study", epoch_s, epochs)]
    if estimate_from:
        bases.append(from_study(estimate_from))
    for label, base_epoch_s, base_epochs in bases:
        for speedup in (1.0, 5.0):
            e = estimate(base_epoch_s, base_epochs, overhead, speedup)
            lines.append(
                f"| {label} | {speedup:g}× | {base_epochs:.2f} × {base_epoch_s:.3f} | {e['per_trial_s']:.1f} | "
                f"{e['trials_per_hour']:,.0f} | {e['usd_per_hour_on_demand']:.2f} | {e['usd_per_hour_spot']:.2f} | "
                f"{e['usd_per_1000_trials_on_demand']:.2f} | {e['usd_per_1000_trials_spot']:.2f} | "
                f"{e['trials_per_hour'] / 3600:.1f} |"
            )
    lines += [
        "",
        "Where the overhead dominates, GPUs buy little; they pay off as epochs get longer (more data,",
        "`--vector-size`, `--max-len`, larger sampled models). `--estimate-from results/<name>` adds rows from",
        "another study's own epoch times (as measured on its machine).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="runs of each configuration, alternating")
    p.add_argument("--estimate-from", type=Path, help="results/<name> of a study whose epoch times to estimate from")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md as it is")
    args = p.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as results:
        for _ in range(args.repeats):
            for nodes in (1, 2):
                run = run_once(nodes, Path(results))
                print(f"{nodes} node(s): {run.trials_per_hour:.0f} trials/hour ({run.wall_s:.1f} s)", flush=True)
                runs.append(run)
    text = report(runs, args.estimate_from)
    print(text)
    if not args.no_write:
        write_section(SECTION, text, BENCHMARKS_MD)
        print(f"\nWrote the `{SECTION}` section of {BENCHMARKS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
