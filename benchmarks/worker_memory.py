"""Memory of a reused trial process: does it grow without bound over many trials, or level off?

What it measures: a study's worker process (`reuse_actors=True`) runs trial after trial. This script does the
same without Ray, in a fresh process per mode: `fit` for `--trials` configurations in a row, drawn at random
(seeded, the same list in every mode) from the `perf` space of `benchmarks/performance.py`, on the Greek data
(`valid_set.csv` 80/20 split, Word2Vec on its training texts + `test_set.csv`). Between two trials it records
the process's USS (private memory, from /proc/self/smaps_rollup): what the process holds while it waits.
Four modes, two switches:
- `malloc_trim`: `release_freed_memory()` between trials (as `train_sentiment` does at each trial's start), or not.
- oneDNN's primitive cache (one entry per input shape of an RNN batch whose tweets have one length): oneDNN's
  default capacity of 1024, or 0 (`ONEDNN_PRIMITIVE_CACHE_CAPACITY`), which `train_sentiment` sets unless the
  environment does. Fit s, the sum of the trials' epoch times, shows what switching the cache off costs.
A leak shows as a steady rise to the end (the slope over the last half of the trials, MB per trial); freed
heap kept by the allocator shows as a rise that levels off once the largest model and batch have been seen.

Run (not part of CI; needs ../shared/data):
    python benchmarks/worker_memory.py             # 60 trials of 2 epochs in each of 4 modes (~5 min on 2 cores)
    python benchmarks/worker_memory.py --quick     # 8 trials of 1 epoch; writes nothing
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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

from trainables.trainable import ONEDNN_CACHE_VARIABLE

SECTION = "worker-memory"
MODES = {  # name: (ONEDNN_PRIMITIVE_CACHE_CAPACITY, malloc_trim between trials)
    "no trim, oneDNN cache": ("1024", False),
    "malloc_trim, oneDNN cache": ("1024", True),
    "no trim, no oneDNN cache": ("0", False),
    "malloc_trim, no oneDNN cache (a study's trial)": ("0", True),
}


@dataclass(frozen=True)
class Curve:
    mode: str
    uss_mb: tuple[float, ...]  # USS between trials: after each trial (and the trim)
    fit_s: float  # the sum of every trial's epoch times

    def at(self, trial: int) -> float:
        return self.uss_mb[min(trial, len(self.uss_mb)) - 1]

    @property
    def late_slope(self) -> float:
        """MB per trial over the last half of the trials (least squares): near 0 once memory has levelled off."""
        y = np.asarray(self.uss_mb[len(self.uss_mb) // 2 :])
        return float(np.polyfit(np.arange(len(y)), y, 1)[0]) if len(y) >= 2 else float("nan")

    @property
    def levelled_at(self) -> int:
        """The first trial after which USS never rose by more than 5 MB."""
        final = self.uss_mb[-1]
        return next(i + 1 for i, v in enumerate(self.uss_mb) if final - v <= 5)


def child(mode: str, trials: int, epochs: int, seed: int, data_dir: Path) -> dict[str, Any]:
    """Run the trials in this process (its environment sets the cache); USS in MB between trials, fit seconds."""
    import optuna
    from performance import PERF_SPACE, Budget, process_memory, study_config

    from trainables.hparams import HParams
    from trainables.inputs import encode, load_dataset
    from trainables.train import fit
    from trainables.trainable import release_freed_memory

    budget = Budget(trials, epochs, 1, 3, trials, 1)  # only the data settings are used
    settings = study_config(data_dir / "greek-election-tweets-ys19-2023", budget, seed, "memory", Path("unused"), False)
    data = encode(load_dataset(settings), settings)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    uss, fit_s = [], 0.0
    for _ in range(trials):
        params = sampler.ask(dict(PERF_SPACE.params)).params
        hp = HParams.from_dict({**PERF_SPACE.fixed, **params, "max_epochs": epochs, "num_threads": 1})
        history = fit(hp, data, lambda r: r.state())  # the state as a checkpoint would take it
        fit_s += sum(m["epoch_time_s"] for m in history)
        if MODES[mode][1]:
            release_freed_memory()  # as the next trial's start does
        uss.append(process_memory(None)["uss_kb"] / 1024)
    return {"uss_mb": uss, "fit_s": fit_s}


def measure(args: argparse.Namespace, console: Console) -> list[Curve]:
    curves = []
    for mode, (capacity, _) in MODES.items():
        console.print(f"{mode}: {args.trials} trials of {args.epochs} epoch(s) in a fresh process ...")
        cmd = [__file__, "--child", mode, "--trials", str(args.trials), "--epochs", str(args.epochs)]
        cmd += ["--seed", str(args.seed), "--data-dir", str(args.data_dir)]
        env = {**os.environ, ONEDNN_CACHE_VARIABLE: capacity}  # read when oneDNN creates its first primitive
        result = run_for_json(cmd, f"the {mode!r} process", env)
        curves.append(Curve(mode, tuple(result["uss_mb"]), result["fit_s"]))
    return curves


HEADER = (
    "mode",
    "USS (MB) after trial 1",
    "after 10",
    "after the last",
    "level after trial",
    "MB/trial, last half",
    "fit s",
)


def rows(curves: list[Curve]) -> list[tuple[str, ...]]:
    return [
        (
            c.mode,
            f"{c.at(1):.0f}",
            f"{c.at(10):.0f}",
            f"{c.uss_mb[-1]:.0f}",
            str(c.levelled_at),
            f"{c.late_slope:+.2f}",
            f"{c.fit_s:.1f}",
        )
        for c in curves
    ]


def markdown(curves: list[Curve], args: argparse.Namespace, total_s: float) -> str:
    lines = [
        "## Memory of a reused trial process (`python benchmarks/worker_memory.py`)",
        "",
        f"`python benchmarks/worker_memory.py --trials {args.trials} --epochs {args.epochs} --seed {args.seed}`, "
        f"total {total_s / 60:.1f} min. One fresh process per mode calls `fit` for {args.trials} random "
        "configurations of the `perf` space in a row (the same list in every mode), as a reused study worker "
        "runs trial after trial; USS (private memory, including this process's own copy of the data) between "
        "two trials. `malloc_trim` = `release_freed_memory()` between trials, as `train_sentiment` does at a "
        "trial's start. oneDNN cache: PyTorch's CPU RNN kernels for batches whose tweets have one length cache "
        "a primitive per input shape, up to oneDNN's default 1024 entries; `train_sentiment` sets "
        "`ONEDNN_PRIMITIVE_CACHE_CAPACITY=0` unless the environment sets it. Fit s = the sum of the trials' "
        "epoch times (one run per mode, so a few % is noise).",
        "",
        *markdown_table(HEADER, rows(curves)),
        "",
        "USS between trials (MB): "
        + "; ".join(f"{c.mode}: " + ", ".join(f"{v:.0f}" for v in c.uss_mb) for c in curves)
        + ".",
        *closing(args, 1),
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=60)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="8 trials of 1 epoch; writes nothing")
    p.add_argument("--child", choices=tuple(MODES), help=argparse.SUPPRESS)
    add_output_arguments(p, SECTION, "a paragraph added under the table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.trials, args.epochs = 8, 1
    if args.child:
        print(json.dumps(child(args.child, args.trials, args.epochs, args.seed, args.data_dir)))
        return 0
    console = Console()
    if data_folder_missing(args.data_dir, console):
        return 2
    t0 = time.perf_counter()
    curves = measure(args, console)
    table = Table(*HEADER, title="USS of one process running trial after trial")
    for r in rows(curves):
        table.add_row(*r)
    console.print(table)
    publish(SECTION, markdown(curves, args, time.perf_counter() - t0), args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
