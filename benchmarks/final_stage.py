"""Final stage speed: its k-fold CV as parallel Ray tasks against one configuration after another, fold by fold.

What it measures, on the Greek election tweets (`valid_set.csv`, 5,232 labelled; `test_set.csv` unlabelled, for
Word2Vec only): three configurations of the default space, each scored by stratified 5-fold CV (seed 0) with a
6-epoch budget, as a study's final stage does it:
- final stage: `study.final.stage.run_cv` on a local Ray with every CPU (each fold's Word2Vec trained once by one task,
  then every configuration's fold task reads it from the object store; tasks of one CPU, one torch thread);
- sequential: the same `run_cv` for one configuration after the other, one task at a time (`at_once` 1, one
  thread: one fold after another, as `python -m study.evaluate` ran before its folds became Ray tasks), which is
  what a user without the final stage would do.
Both start from an empty Word2Vec cache; Ray's workers run at the driver's priority (`RAY_worker_niceness=0`:
Ray's default of 15 starves them whenever anything else runs on the machine, which would time the neighbours);
Ray is started before the clock (a study's final stage runs on the Ray
its search started). Both give the same scores fold by fold (the same seeds, one thread): checked. The TF-IDF
baselines are timed apart (the sequential protocol has none). Target: final stage / sequential <= 0.6 on 2 cores.

Run (not part of CI; needs ../shared/data):
    python benchmarks/final_stage.py            # 2 repeats, about 20 minutes on 2 cores; updates BENCHMARKS.md
    python benchmarks/final_stage.py --quick    # 2 folds, 1 epoch, 32-d vectors: checks that it runs
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sections import add_output_arguments, closing, data_folder_missing, markdown_table, publish  # noqa: E402

SECTION = "final-stage"
TARGET = 0.6
GREEK = "greek-election-tweets-ys19-2023"
CONFIGS = {  # three configurations of the default space, as a final stage's candidates
    "gru-64-attn": {"cell": "gru", "hidden_size": 64, "num_layers": 1, "attention": True, "skip": False,
                    "dropout": 0.2, "clip": 1.0, "lr": 2e-3, "batch_size": 64},
    "lstm-32x2": {"cell": "lstm", "hidden_size": 32, "num_layers": 2, "attention": False, "skip": True,
                  "dropout": 0.3, "clip": 0.5, "lr": 3e-3, "batch_size": 128},
    "rnn-128": {"cell": "rnn", "hidden_size": 128, "num_layers": 1, "attention": True, "skip": False,
                "dropout": 0.1, "clip": 2.0, "lr": 1e-3, "batch_size": 256},
}  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=2, help="runs of each protocol, alternating (default: 2)")
    p.add_argument("--quick", action="store_true", help="2 folds, 1 epoch, 32-d vectors, 1 repeat, 2 configs")
    add_output_arguments(p, SECTION, "a paragraph added under the table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from rich.console import Console

    console = Console(stderr=True)
    if data_folder_missing(args.data_dir, console):
        return 2
    import ray

    from study.final.stage import FinalPlan, run_cv
    from study.final.summary import Candidate
    from trainables.baseline import BASELINES
    from trainables.data_settings import DataSettings
    from trainables.inputs import load_dataset, study_data

    folds, epochs, size = (2, 1, 32) if args.quick else (5, 6, 300)
    repeats = 1 if args.quick else args.repeats
    configs = dict(list(CONFIGS.items())[:2]) if args.quick else CONFIGS
    settings = DataSettings.from_settings(
        train=str(args.data_dir / GREEK / "valid_set.csv"),
        unlabelled=(str(args.data_dir / GREEK / "test_set.csv"),),
        vector_size=size,
    )
    ds = load_dataset(settings)
    data = study_data(ds, settings)
    labelled = data.labelled
    fixed = {"bidirectional": True, "seed": 0, "max_epochs": epochs, "num_threads": 1, "device": "cpu"}
    cands = [Candidate(name, i + 1, math.nan, params) for i, (name, params) in enumerate(configs.items())]
    cpus = os.cpu_count() or 1
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    plan = FinalPlan(len(cands), folds, settings.data_seed, fixed, 1, 0, 1)

    def final_stage(baselines) -> tuple[float, dict]:
        rows = []
        with tempfile.TemporaryDirectory() as cache:
            t0 = time.perf_counter()
            run_cv(plan, cands, replace(data, cache_dir=Path(cache)), set(), rows.append, baselines)
            return time.perf_counter() - t0, {(r["candidate"], r["fold"]): r["macro_f1"] for r in rows}

    def sequential() -> tuple[float, dict]:
        rows = []
        with tempfile.TemporaryDirectory() as cache:
            t0 = time.perf_counter()
            for c in cands:
                run_cv(replace(plan, at_once=1), [c], replace(data, cache_dir=Path(cache)), set(), rows.append, ())
            return time.perf_counter() - t0, {(r["candidate"], r["fold"]): r["macro_f1"] for r in rows}

    runs: dict[str, list[float]] = {"final stage": [], "sequential": [], "baselines": []}
    agree = True
    for r in range(repeats):
        order = ("final", "sequential") if r % 2 == 0 else ("sequential", "final")
        for which in order:
            if which == "final":
                t, final_scores = final_stage(())
                runs["final stage"].append(t)
            else:
                t, seq_scores = sequential()
                runs["sequential"].append(t)
            console.print(f"repeat {r + 1}: {which} {t:.1f} s (load {os.getloadavg()[0]:.1f})")
        agree &= all(abs(final_scores[k] - seq_scores[k]) < 1e-6 for k in seq_scores)
        t, _ = final_stage(BASELINES)
        runs["baselines"].append(t - runs["final stage"][-1])
    ray.shutdown()

    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio = med["final stage"] / med["sequential"]
    rows = [
        ("final stage (Ray tasks)", f"{med['final stage']:.1f}", ", ".join(f"{t:.1f}" for t in runs["final stage"])),
        ("one fold at a time", f"{med['sequential']:.1f}", ", ".join(f"{t:.1f}" for t in runs["sequential"])),
        ("final stage / sequential", f"**{ratio:.3f}**", f"target <= {TARGET}: {'met' if ratio <= TARGET else 'no'}"),
        ("baselines added to the stage", f"{med['baselines']:+.1f}", "two TF-IDF baselines on the same folds"),
    ]  # fmt: skip
    body = [
        "## Final stage: parallel fold tasks against one fold at a time",
        "",
        f"{len(cands)} configurations x {folds} folds, {epochs} epochs, {size}-d Word2Vec per fold, on "
        f"{len(labelled)} Greek tweets (+ {len(ds.unlabelled)} unlabelled for Word2Vec); medians of {repeats} "
        f"repeat(s). Fold scores identical in both protocols: {'yes' if agree else 'NO'}.",
        "",
        *markdown_table(("protocol", "wall s (median)", "runs"), rows),
        "",
        "Command: `python benchmarks/final_stage.py`.",
        *closing(args, 1, f", Ray with {cpus} CPUs"),
    ]
    text = "\n".join(body)
    console.print(text)
    publish(SECTION, text, args, console)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
