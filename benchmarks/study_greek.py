"""A `default`-space study on the Greek election data with its final stage: the search's best against the CV.

What it measures: a real study as a user would run it (a stratified 80/20 split of `valid_set.csv`,
`test_set.csv` as unlabelled Word2Vec text): trials run and stopped early, trial-epochs, wall time, the search's
best validation macro-F1 and AUC; then its final stage (on by default): the top configurations under stratified
5-fold CV over all labelled rows, the winner's CV estimate with its 95% interval, the TF-IDF baselines on the
same folds, the paired verdict, and the gap between the search's best and the CV estimate (the optimism of a
search's best on one split). Not run in CI.

    python benchmarks/study_greek.py [--num-samples 160] [--max-epochs 10]  # updates BENCHMARKS.md (study section)
    python benchmarks/study_greek.py --quick                                   # a few minutes; writes nothing
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


def interval(e: dict) -> str:
    """A CV estimate of study.json's final block as `mean ± std [low, high]`."""
    return f"{e['mean']:.3f} ± {e['std']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-samples", type=int, default=160)
    p.add_argument("--max-epochs", type=int, default=10)
    p.add_argument("--folds", type=int, default=5, help="the final stage's folds (default: 5)")
    p.add_argument("--final-top", type=int, default=3, help="configurations the final stage scores (default: 3)")
    p.add_argument("--quick", action="store_true", help="a few minutes: 4 trials, 2 epochs, 2 folds")
    p.add_argument("--results-dir", default=None, help="keep the study here (default: a temporary folder)")
    add_output_arguments(p, SECTION, "a paragraph added under the table")
    args = p.parse_args(argv)
    if args.quick:
        args.num_samples, args.max_epochs, args.folds, args.final_top = 4, 2, 2, 2
    console = Console()
    if data_folder_missing(args.data_dir, console):
        return 2
    greek = args.data_dir / "greek-election-tweets-ys19-2023"
    results = Path(args.results_dir or tempfile.mkdtemp(prefix="study-bench-"))
    name = f"greek-default-{int(time.time())}"
    data_flags = ["--train", str(greek / "valid_set.csv"), "--unlabelled", str(greek / "test_set.csv")]
    load = os.getloadavg()[0]
    flags = ["--space", "default", "--num-samples", str(args.num_samples), "--max-epochs", str(args.max_epochs)]
    flags += ["--final-top", str(args.final_top), "--final-folds", str(args.folds)]
    _, study_s = run(["-m", "study.run", *data_flags, *flags, "--name", name, "--results-dir", str(results)])
    folder = results / name
    sys.path.insert(0, str(REPO))
    from study.final.summary import BASELINE_NAMES
    from study.results import BEST_METRIC, read_table

    trials = read_table(folder / "trials.parquet")
    final_rows = read_table(folder / "final.parquet")
    final = json.loads((folder / "study.json").read_text())["final"]
    best = trials.sort_values(BEST_METRIC, ascending=False).iloc[0]
    winner, better = final["winner"], final["better_baseline"]
    won = next(c for c in final["candidates"] if c["trial_id"] == winner["trial_id"])
    final_s = final_rows["finished_at"].max() - final_rows["started_at"].min()
    counts = trials["status"].value_counts().to_dict()
    config = ", ".join(
        f"{k}={best[f'params_{k}']:.3g}" if isinstance(best[f"params_{k}"], float) else f"{k}={best[f'params_{k}']}"
        for k in HPARAMS
    )
    epochs_run = int(trials["epochs_run"].sum())
    cv_rows = final_rows[final_rows["split"] == "cv"]
    n_labelled = int(cv_rows["n_train"].iloc[0] + cv_rows["n_held_out"].iloc[0])
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
        (
            "study wall time, final stage included",
            f"{study_s / 60:.1f} min (Word2Vec on 4,185 + 10,470 tweets included)",
        ),
        ("... of it the final stage (first fold task's start to the model's end)", f"{final_s / 60:.1f} min"),
        (
            "the search's best validation macro-F1 (one 20% split)",
            f"{best[BEST_METRIC]:.3f} (trial {best['trial_id']}, epoch {int(best['best_epoch'])}; AUC "
            f"{best['best_val_auc']:.3f})",
        ),
        ("its configuration", config),
        *(
            (
                f"final stage: trial {c['trial_id']} (search rank {c['rank']}, search score {c['search_score']:.3f}), "
                f"{final['folds']}-fold CV macro-F1",
                interval(c["cv"]) + (" **winner**" if c["trial_id"] == winner["trial_id"] else ""),
            )
            for c in final["candidates"]
        ),
        ("the winner's CV ROC AUC", interval(won["cv_auc"])),
        (
            "gap: the winner's search score - its CV estimate",
            f"{winner['optimism']:+.3f} (the best search score {best[BEST_METRIC]:.3f} - CV "
            f"{won['cv']['mean']:.3f}: {best[BEST_METRIC] - won['cv']['mean']:+.3f})",
        ),
        *(
            (
                f"baseline {BASELINE_NAMES[b]}, same folds: macro-F1",
                interval(e["cv"]) + f"; AUC {e['cv_auc']['mean']:.3f}",
            )
            for b, e in final["baselines"].items()
        ),
        ("verdict against the better baseline", final["comparison"]["macro_f1"]["line"] if better else "no baseline"),
        ("... on AUC", final["comparison"]["auc"]["line"] if better else "no baseline"),
        (
            "final model",
            f"retrained on all {n_labelled} labelled rows for {winner['epochs']} epochs (its folds' median best epoch)",
        ),
    ]
    body = "\n".join(
        [
            "## A `default`-space study on the Greek data (`python benchmarks/study_greek.py`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} (load average {load:.1f} at the start: the cores may be shared with "
            "other jobs, so the times are upper bounds). `python -m study.run --train valid_set.csv "
            f"--unlabelled test_set.csv --space default --num-samples {args.num_samples} --max-epochs "
            f"{args.max_epochs}` (a seeded stratified 80/20 split of the labelled file for the search, 2 trials at "
            f"once), with its final stage (`--final-top {args.final_top} --final-folds {args.folds}`: the top "
            "configurations and the TF-IDF baselines under the same stratified folds of all 5,232 labelled rows, each "
            "fold's Word2Vec without its held-out part; a fold's score is its best epoch's). Intervals: 95%, "
            "Nadeau-Bengio corrected; verdicts: the corrected paired t-test over the folds.",
            "",
            *markdown_table(("what", "value"), rows),
            "",
            "For scale: the original work reached macro-F1 0.40-0.41 and AUC 0.57-0.59 training on 36,630 tweets; here "
            "only the 5,232 labelled tweets of `valid_set.csv` exist, and the labels are very noisy. No GPU was "
            "available to this session.",
            *closing(args, 1),
        ]
    )
    console.print(body)
    publish(SECTION, body, args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
