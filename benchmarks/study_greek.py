"""A `default`-space study on the Greek election data, then 5-fold CV of its best configuration.

What it measures: a real study as a user would run it (a stratified 80/20 split of `valid_set.csv`,
`test_set.csv` as unlabelled Word2Vec text) at a budget that finishes in about 30 minutes on 2 cores: best
validation macro-F1 and AUC, trials run and stopped early, trial-epochs, wall time; then
`python -m study.evaluate` (5-fold stratified CV, seeded) of the best trial's configuration, which says how
much of the study's best score was luck of the split. Not run in CI.

    python benchmarks/study_greek.py [--num-samples 24] [--max-epochs 8]   # writes the `study` section of BENCHMARKS.md
    python benchmarks/study_greek.py --quick                                  # a few minutes; writes nothing
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from sections import (  # benchmarks/ on sys.path
    add_output_arguments,
    closing,
    data_folder_missing,
    markdown_table,
    publish,
)

SECTION = "study"
REPO = Path(__file__).resolve().parents[1]
HPARAMS = (
    "cell",
    "hidden_size",
    "num_layers",
    "bidirectional",
    "dropout",
    "skip",
    "attention",
    "clip",
    "lr",
    "batch_size",
)


def run(cmd: list[str]) -> tuple[str, float]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, *cmd], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-samples", type=int, default=24)
    p.add_argument("--max-epochs", type=int, default=8)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="a few minutes: 4 trials, 2 epochs, 2 folds")
    p.add_argument("--results-dir", default=None, help="keep the study here (default: a temporary folder)")
    add_output_arguments(p, SECTION, "a paragraph added under the table")
    args = p.parse_args(argv)
    if args.quick:
        args.num_samples, args.max_epochs, args.folds = 4, 2, 2
    console = Console()
    if data_folder_missing(args.data_dir, console):
        return 2
    greek = args.data_dir / "greek-election-tweets-ys19-2023"
    results = Path(args.results_dir or tempfile.mkdtemp(prefix="study-bench-"))
    name = f"greek-default-{int(time.time())}"
    data_flags = ["--train", str(greek / "valid_set.csv"), "--unlabelled", str(greek / "test_set.csv")]
    load = os.getloadavg()[0]
    _, study_s = run(
        [
            "-m",
            "study.run",
            *data_flags,
            "--space",
            "default",
            "--num-samples",
            str(args.num_samples),
            "--max-epochs",
            str(args.max_epochs),
            "--name",
            name,
            "--results-dir",
            str(results),
        ]
    )
    folder = results / name
    sys.path.insert(0, str(REPO))
    from study.results import read_table

    trials = read_table(folder / "trials.parquet")
    best = trials.sort_values("best_val_macro_f1", ascending=False).iloc[0]
    sets = []
    for k in HPARAMS:
        v = best[f"params_{k}"]
        sets += ["--set", f"{k}={v.item() if hasattr(v, 'item') else v}"]
    out, cv_s = run(
        [
            "-m",
            "study.evaluate",
            *data_flags,
            "--folds",
            str(args.folds),
            "--max-epochs",
            str(args.max_epochs),
            *sets,
            "--json",
        ]
    )
    cv = json.loads(out)
    counts = trials["status"].value_counts().to_dict()
    config = ", ".join(
        f"{k}={best[f'params_{k}']:.3g}" if isinstance(best[f"params_{k}"], float) else f"{k}={best[f'params_{k}']}"
        for k in HPARAMS
    )
    epochs_run = int(trials["epochs_run"].sum())
    rows = [
        (
            "trials run",
            f"{len(trials)} (completed {counts.get('completed', 0)}, stopped early by ASHA "
            f"{counts.get('stopped_early', 0)}, errored {counts.get('errored', 0)})",
        ),
        (
            "trial-epochs run",
            f"{epochs_run} of {len(trials) * args.max_epochs} without early stopping "
            f"({epochs_run / (len(trials) * args.max_epochs):.0%})",
        ),
        ("study wall time", f"{study_s / 60:.1f} min (Word2Vec on 4,185 + 10,470 tweets included)"),
        (
            "best validation macro-F1 (one 20% split)",
            f"{best['best_val_macro_f1']:.3f} (trial {best['trial_id']}, epoch {int(best['best_epoch'])})",
        ),
        ("its validation ROC AUC", f"{best['best_val_auc']:.3f}"),
        ("best configuration", config),
        (
            f"{cv['folds']}-fold CV of that configuration: macro-F1",
            f"{cv['macro_f1_mean']:.3f} ± {cv['macro_f1_std']:.3f}",
        ),
        ("... ROC AUC", f"{cv['auc_mean']:.3f} ± {cv['auc_std']:.3f}"),
        ("... accuracy", f"{cv['accuracy_mean']:.3f}"),
        ("CV wall time", f"{cv_s / 60:.1f} min"),
    ]
    body = "\n".join(
        [
            "## A `default`-space study on the Greek data (`python benchmarks/study_greek.py`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} (load average {load:.1f} at the start: the cores may be shared with "
            "other jobs, so the times are upper bounds). `python -m study.run --train valid_set.csv "
            f"--unlabelled test_set.csv --space default --num-samples {args.num_samples} --max-epochs "
            f"{args.max_epochs}` (a seeded stratified 80/20 split of the labelled file, 2 trials at once), then "
            f"`python -m study.evaluate --folds {args.folds}` on the best trial's configuration (a fold's score is its "
            "best epoch's).",
            "",
            *markdown_table(("what", "value"), rows),
            "",
            "For scale: the original work reached macro-F1 0.40-0.41 and AUC 0.57-0.59 training on 36,630 tweets; here "
            "only the 5,232 labelled tweets of `valid_set.csv` exist, and the labels are very noisy. The TF-IDF "
            "baseline is in the quality section. No GPU was available to this session: the `--smoke` run with "
            "fractional GPUs is still to be measured.",
            *closing(args, 1),
        ]
    )
    console.print(body)
    publish(SECTION, body, args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
