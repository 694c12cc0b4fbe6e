"""Start-up of a study: where the seconds from `run_study`'s call to the first training step go.

What it measures (not in CI; needs ../shared/data), each `--repeats` times, medians reported:
- A study's phases, from the call: loading and checking the input files, Ray's start (`ray.init`), encoding (the
  Word2Vec cache warm, as in benchmarks/performance.py), Tune's start until the first trial function runs, and
  from there to its first training step. The study: the `perf` space of benchmarks/performance.py on the Greek
  data, 2 trials of 1 epoch, 2 at once, 1 CPU each.
- In fresh processes, the CPU-bound pieces: importing a trial's code (`trainables.trainable`: torch, Ray Tune),
  the first `torch.optim.Adam` (torch imports torch._dynamo there), and `ray.init`, with the CPU seconds of the
  processes that Ray starts (GCS, raylet, agents, the idle workers that become the trial processes).
Their sum over the cores is the floor of the start-up on this machine: with two trial processes starting at
once on 2 cores, little of it can overlap.

    python benchmarks/startup.py              # 3 repeats (~2 min on 2 cores); updates BENCHMARKS.md
    python benchmarks/startup.py --quick      # 1 repeat; writes nothing
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sections import (  # benchmarks/ on sys.path
    add_output_arguments,
    closing,
    data_folder_missing,
    markdown_table,
    publish,
    run_for_json,
)

SECTION = "startup"

IMPORTS = """
import json, time
import ray  # a Ray worker process has it already
t = time.perf_counter()
import trainables.trainable
import torch
t_import = time.perf_counter() - t
t = time.perf_counter()
torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
print(json.dumps({"import": t_import, "adam": time.perf_counter() - t}))
"""

RAY_INIT = """
import json, os, time
def pids():
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}
before = pids()
t = time.perf_counter()
import ray
ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
wall = time.perf_counter() - t
time.sleep(3)  # the idle workers Ray starts after init
cpu = 0.0
for p in pids() - before - {os.getpid()}:
    try:
        fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
ray.shutdown()
print(json.dumps({"wall": wall, "cpu": cpu}))
"""


def study_phases(greek: Path, work: Path, repeat: int) -> dict[str, float]:
    """Seconds from run_study's call to the end of each phase of a 2-trial study."""
    from performance import Budget, run_ray, study_config

    marks: dict[str, float] = {}
    cfg = study_config(greek, Budget(2, 1, 1, 3, 2, 1), repeat, f"startup-{repeat}", work, fifo=False)
    run = run_ray("asha", cfg, work, on_phase=lambda name: marks.setdefault(name, time.time()))
    first = min(run.trials, key=lambda t: t.first_step)
    return {
        "load": marks["loaded"] - run.t0,
        "ray": marks["ray"] - run.t0,
        "encode": marks["encoded"] - run.t0,
        "tuner": marks["fit"] - run.t0,
        "entered": min(t.entered for t in run.trials) - run.t0,
        "first_step": first.first_step - run.t0,
    }


def measure(args: argparse.Namespace, greek: Path, console: Console) -> dict[str, list[float]]:
    from performance import Budget, study_config

    from trainables.inputs import encode, load_dataset

    work = Path(tempfile.mkdtemp(prefix="startup-"))
    warm = study_config(greek, Budget(2, 1, 1, 3, 2, 1), 0, "warm", work, fifo=False)
    encode(load_dataset(warm), warm)  # fills the Word2Vec cache, untimed
    samples: dict[str, list[float]] = {}
    for repeat in range(args.repeats):
        console.print(f"repeat {repeat + 1} of {args.repeats} ...")
        for key, value in {
            **study_phases(greek, work, repeat),
            **{f"trial_{k}": v for k, v in run_for_json(["-c", IMPORTS], "the import-measuring process").items()},
            **{f"init_{k}": v for k, v in run_for_json(["-c", RAY_INIT], "the ray.init-measuring process").items()},
        }.items():
            samples.setdefault(key, []).append(value)
    return samples


HEADER = ("step", "seconds (median)", "range", "what")
STEPS = (
    ("load", "call → input files loaded and checked", "reading and checking the CSV files"),
    ("ray", "→ Ray started", "`ray.init`: GCS, raylet, agents, 2 idle workers"),
    ("encode", "→ data encoded", "tokens → Word2Vec ids (the vectors are cached)"),
    ("tuner", "→ Tune starts", "the study's files, searcher and scheduler"),
    ("entered", "→ first trial function runs", "an idle worker imports the trial's code"),
    ("first_step", "→ its first training step", "model, Adam (imports torch._dynamo), batches"),
)
PIECES = (
    ("trial_import", "importing `trainables.trainable` where `ray` is", "torch, Ray Tune (and pandas)"),
    ("trial_adam", "the first `torch.optim.Adam` in that process", "imports torch._dynamo"),
    ("init_wall", "`ray.init`, wall", ""),
    ("init_cpu", "`ray.init`, CPU s of the processes it starts", "spread over the cores"),
)


def rows(samples: dict[str, list[float]]) -> list[tuple[str, str, str, str]]:
    out = []
    for key, label, what in (*STEPS, *PIECES):
        v = samples[key]
        out.append((label, f"{statistics.median(v):.2f}", f"{min(v):.2f}-{max(v):.2f}", what))
    return out


def floor_s(samples: dict[str, list[float]]) -> float:
    """CPU seconds that must run before the first step, over the cores: 2 trial processes, Ray, the driver."""
    m = {k: statistics.median(v) for k, v in samples.items()}
    driver = m["load"] + (m["tuner"] - m["ray"])  # loading + encoding and Tune's start, on the driver
    return (2 * (m["trial_import"] + m["trial_adam"]) + m["init_cpu"] + driver) / (os.cpu_count() or 1)


def markdown(samples: dict[str, list[float]], args: argparse.Namespace, total_s: float) -> str:
    lines = [
        "## Start-up: from the call to the first training step (`python benchmarks/startup.py`)",
        "",
        f"`python benchmarks/startup.py --repeats {args.repeats}`, total {total_s / 60:.1f} min. A 2-trial study "
        "of the `perf` space (benchmarks/performance.py) on the Greek data, 2 trials at once, 1 CPU each, the "
        "Word2Vec cache warm; times from `run_study`'s call. Then, in fresh processes, the CPU-bound pieces.",
        "",
        *markdown_table(HEADER, rows(samples)),
        "",
        f"Floor on {os.cpu_count()} cores: {floor_s(samples):.1f} s (2 trial processes' imports and first Adam, "
        "the CPU of Ray's processes, and the driver's loading, encoding and Tune start, spread evenly over the "
        f"cores), against {statistics.median(samples['first_step']):.1f} s measured.",
        *closing(args, 1),
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1 repeat; writes nothing")
    add_output_arguments(p, SECTION, "a paragraph added under the table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.repeats = 1
    console = Console(stderr=True)
    greek = args.data_dir / "greek-election-tweets-ys19-2023"
    if data_folder_missing(greek, console):
        return 2
    t0 = time.perf_counter()
    samples = measure(args, greek, console)
    table = Table(*HEADER, title="Start-up of a study")
    for r in rows(samples):
        table.add_row(*r)
    Console().print(table)
    console.print(f"floor {floor_s(samples):.1f} s")
    publish(SECTION, markdown(samples, args, time.perf_counter() - t0), args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
