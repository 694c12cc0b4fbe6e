"""A `default`-space study on the Greek election data, then 5-fold CV of its best configuration.

What it measures: a real study as a user would run it (a stratified 80/20 split of `valid_set.csv`,
`test_set.csv` as unlabelled Word2Vec text) at a budget that finishes in about 30 minutes on 2 cores: best
validation macro-F1 and AUC, trials run and stopped early, trial-epochs, wall time; then
`python -m study.evaluate` (5-fold stratified CV, seeded) of the best trial's configuration, which says how
much of the study's best score was luck of the split. Not run in CI.

    python benchmarks/study_greek.py [--num-samples 24] [--max-epochs 8] [--quick]

Writes the `study` section of BENCHMARKS.md.
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

from sections import write_section

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "greek-election-tweets-ys19-2023"
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
    args = p.parse_args(argv)
    if args.quick:
        args.num_samples, args.max_epochs, args.folds = 4, 2, 2
    if not (DATA / "valid_set.csv").is_file():
        raise SystemExit(f"the Greek data is not at {DATA}")
    results = Path(args.results_dir or tempfile.mkdtemp(prefix="study-bench-"))
    name = f"greek-default-{int(time.time())}"
    data_flags = ["--train", str(DATA / "valid_set.csv"), "--unlabelled", str(DATA / "test_set.csv")]
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
    table = [
        "| what | value |",
        "| --- | --- |",
        f"| trials run | {len(trials)} (completed {counts.get('completed', 0)}, stopped early by ASHA "
        f"{counts.get('stopped_early', 0)}, errored {counts.get('errored', 0)}) |",
        f"| trial-epochs run | {int(trials['epochs_run'].sum())} of {len(trials) * args.max_epochs} without early "
        f"stopping ({trials['epochs_run'].sum() / (len(trials) * args.max_epochs):.0%}) |",
        f"| study wall time | {study_s / 60:.1f} min (Word2Vec on 4,185 + 10,470 tweets included) |",
        f"| best validation macro-F1 (one 20% split) | {best['best_val_macro_f1']:.3f} (trial {best['trial_id']}, "
        f"epoch {int(best['best_epoch'])}) |",
        f"| its validation ROC AUC | {best['best_val_auc']:.3f} |",
        f"| best configuration | {config} |",
        f"| {cv['folds']}-fold CV of that configuration: macro-F1 | {cv['macro_f1_mean']:.3f} ± "
        f"{cv['macro_f1_std']:.3f} |",
        f"| ... ROC AUC | {cv['auc_mean']:.3f} ± {cv['auc_std']:.3f} |",
        f"| ... accuracy | {cv['accuracy_mean']:.3f} |",
        f"| CV wall time | {cv_s / 60:.1f} min |",
    ]
    body = "\n".join(
        [
            "## A `default`-space study on the Greek data (`python benchmarks/study_greek.py`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on this 2-core machine (load average {load:.1f} at the start; other "
            "developers' jobs were running, so the times are upper bounds). `python -m study.run --train valid_set.csv "
            f"--unlabelled test_set.csv --space default --num-samples {args.num_samples} --max-epochs "
            f"{args.max_epochs}` (a seeded stratified 80/20 split of the labelled file, 2 trials at once), then "
            f"`python -m study.evaluate --folds {args.folds}` on the best trial's configuration (a fold's score is its "
            "best epoch's).",
            "",
            *table,
            "",
            "For scale: the original work reached macro-F1 0.40-0.41 and AUC 0.57-0.59 training on 36,630 tweets; here "
            "only the 5,232 labelled tweets of `valid_set.csv` exist, and the labels are very noisy. The TF-IDF "
            "baseline is in the quality section. No GPU was available to this session: the `--smoke` run with "
            "fractional GPUs is still to be measured.",
        ]
    )
    print(body)
    write_section("study", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
