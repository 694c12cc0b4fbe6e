"""The fault matrix, round after round: workers SIGKILLed at every phase of a trial, and how many trials are lost.

What it measures: each round runs the matrix of tests/test_faults.py, six real 2-trial studies (`python -m
study.run`, each on a local Ray of its own, trials one at a time, 3 epochs, no early stopping), each with one trial
worker SIGKILLed at a known point through the test-only fault points of tests/faults/fault_points.py (loaded by
the study's processes, they wrap the product's functions): (a) while Ray resets the first trial's worker for the
second trial, (b) the second trial on that reused worker before its first report, (c) the first trial in epoch 2
with epoch 1's checkpoint, (d) the first trial while it writes epoch 2's checkpoint, (e) a final-stage fold task,
and the task retraining the winner (these two studies run a final stage of 2 candidates and the baselines on 2
folds; a final row or the model is lost unless final.parquet holds each row once without error and the model is
saved). A trial is lost unless it is in trials.parquet once, `completed`, with epochs 1-3 once each; the goal is 0.
Retries is the trials.parquet column (restarts after a failure), Ray's failures its own count (`num_failures`, what
--max-failures limits); epochs rerun counts results Ray logged twice for one epoch (a restart from scratch instead
of from the checkpoint). For comparison, `--baseline-rounds` rounds run the studies without study/compat.py (its
patch replaced by a no-op in the study's process).

Run (not part of CI; demo data, nothing needed beyond the project):
    python benchmarks/faults.py               # 20 rounds and 3 without the fix (138 studies, ~3 h on 2 shared cores)
    python benchmarks/faults.py --quick       # 2 rounds and 1 without the fix; writes nothing
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sections import closing, markdown_table, publish  # benchmarks/ on sys.path

from study.results import ResultsError, read_table
from trainables.baseline import BASELINES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "faults"))  # the tests' fault points, which the studies load too
from fault_points import arm, environment, kill_held_trial  # noqa: E402

SECTION = "faults"
EPOCHS = 3
STUDY_ARGS = ["--smoke", "--vector-size", "16", "--max-concurrent", "1", "--num-samples", "2"]
FINAL_ARGS = ["--final-top", "2", "--final-folds", "2"]  # (e): a final stage of 2 candidates + the baselines, 2 folds
FINAL_ROWS = (2 + len(BASELINES)) * 2
STUDY_ARGS += ["--max-epochs", str(EPOCHS), "--grace-period", str(EPOCHS), "--demo-rows", "300"]
TRIALS = 2
# the matrix of tests/test_faults.py. name: (fault point, the n-th to reach it is killed there, final stage on)
MATRIX = {
    "(a) reused worker, in its reset": ("reset", 1, False),
    "(b) reused worker, before the first report": ("start", 2, False),
    "(c) mid-epoch, with a checkpoint": ("reported-1", 1, False),
    "(d) while a checkpoint is written": ("checkpoint-2", 1, False),
    "(e) final stage, a fold task": ("final-fold", 1, True),
    "(e) final stage, retraining the winner": ("final-model", 1, True),
}
CASES = "".join(sorted({case[1] for case in MATRIX}))  # "abcde"
# `python -m study.run` with study/compat.py's patch made a no-op: Ray 2.60 as it is
WITHOUT_FIX = (
    "import sys, study.compat as f; f.retry_trials_whose_worker_dies_in_reset = lambda: None; "
    "from study.run import main; sys.exit(main(sys.argv[1:]))"
)
HEADER = ("fault", "Ray fix", "point", "faults injected", "studies finished", "trials", "trials lost", "retries")
HEADER += ("Ray's failures", "epochs rerun", "final rows lost", "study s (median)")


@dataclass(frozen=True)
class Outcome:
    case: str
    fix: bool  # study/compat.py applied (as always in a study), or not (the baseline)
    exit_code: int
    lost: int  # trials not in trials.parquet exactly once, completed, with every epoch once
    retries: int  # the retries column, summed over the trials
    ray_failures: int  # Ray's num_failures, summed
    epochs_rerun: int  # results Ray logged for an epoch it had logged before
    final_lost: int  # (e): final.parquet rows missing, doubled or errored, and a model not saved
    wall_s: float


def ray_view(folder: Path) -> tuple[int, int]:
    """Ray's own record: its failures (`num_failures`, summed) and the results it logged twice for one epoch."""
    from ray.tune import ExperimentAnalysis

    failures = reruns = 0
    for trial in ExperimentAnalysis(str(folder / "ray" / folder.name)).trials:
        failures += trial.run_metadata.num_failures
        path = Path(trial.path) / "result.json"
        lines = path.read_text().splitlines() if path.exists() else []
        epochs = [json.loads(line)["epoch"] for line in lines if line.strip()]
        reruns += len(epochs) - len(set(epochs))
    return failures, reruns


def lost_trials(folder: Path) -> int:
    try:
        trials, epochs = read_table(folder / "trials.parquet"), read_table(folder / "epochs.parquet")
    except ResultsError:
        return TRIALS
    good = 0
    for trial_id, rows in trials.groupby("trial_id"):
        got = sorted(epochs.loc[epochs["trial_id"] == trial_id, "epoch"])
        good += len(rows) == 1 and rows["status"].iloc[0] == "completed" and got == list(range(1, EPOCHS + 1))
    return TRIALS - good


def lost_final(folder: Path) -> int:
    """The final stage's losses: FINAL_ROWS rows each once and without error, and a saved model, are the goal."""
    try:
        final = read_table(folder / "final.parquet")
    except ResultsError:
        return FINAL_ROWS + 1
    good = final[final["error"].isna()].drop_duplicates(["candidate", "split", "fold"])
    doubled = len(final) - len(final.drop_duplicates(["candidate", "split", "fold"]))
    return FINAL_ROWS - len(good) + doubled + (not (folder / "model" / "weights.pt").is_file())


def run_case(case: str, work: Path, fix: bool = True) -> Outcome:
    """One study with one worker killed at the case's point; its outcome read from the files it wrote."""
    point, nth, final = MATRIX[case]
    hook, results, ray_tmp = work / "hook", work / "results", tempfile.mkdtemp(prefix="rf", dir="/tmp")
    hook.mkdir(parents=True)
    arm(hook, point, nth)
    # a Ray of its own (its own temp folder), never a cluster another process started on this machine
    env = {**os.environ, **environment(hook), "RAY_TMPDIR": ray_tmp, "COLUMNS": "200"}
    study = ["-m", "study.run"] if fix else ["-c", WITHOUT_FIX]
    stage = FINAL_ARGS if final else ["--final-top", "0"]
    cmd = [sys.executable, *study, *STUDY_ARGS, *stage, "--name", "f", "--results-dir", str(results)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        kill_held_trial(hook, point, lambda: proc.poll() is None, timeout_s=600)
        _, err = proc.communicate(timeout=1200)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(err[-3000:], file=sys.stderr)
    folder = results / "f"
    try:
        trials = read_table(folder / "trials.parquet")
        retries = int(trials["retries"].sum())
    except ResultsError:
        retries = 0
    failures, reruns = ray_view(folder)
    lost = lost_final(folder) if final else 0
    return Outcome(case, fix, proc.returncode, lost_trials(folder), retries, failures, reruns, lost, wall)


def rows(outcomes: list[Outcome]) -> list[tuple[str, ...]]:
    out = []
    for fix in (True, False):
        for case in [*MATRIX, "all"]:
            mine = [o for o in outcomes if o.fix == fix and case in (o.case, "all")]
            if mine:
                out.append(_row(case, fix, mine))
    return out


def _row(case: str, fix: bool, mine: list[Outcome]) -> tuple[str, ...]:
    return (
        case,
        "on" if fix else "off",
        MATRIX[case][0] if case in MATRIX else "",
        str(len(mine)),
        str(sum(o.exit_code == 0 for o in mine)),
        str(TRIALS * len(mine)),
        str(sum(o.lost for o in mine)),
        str(sum(o.retries for o in mine)),
        str(sum(o.ray_failures for o in mine)),
        str(sum(o.epochs_rerun for o in mine)),
        str(sum(o.final_lost for o in mine)),
        f"{statistics.median(o.wall_s for o in mine):.0f}",
    )


def markdown(outcomes: list[Outcome], args: argparse.Namespace, total_s: float) -> str:
    lines = [
        "## Faults: trial workers SIGKILLed at every phase (`python benchmarks/faults.py`)"
        + ("" if set(args.cases) == set(CASES) else f": cases {', '.join(f'({c})' for c in sorted(args.cases))}"),
        "",
        f"`python benchmarks/faults.py --rounds {args.rounds} --baseline-rounds {args.baseline_rounds}"
        + ("" if set(args.cases) == set(CASES) else f" --cases {args.cases}")
        + f"`, total {total_s / 60:.0f} min. Each round runs the "
        "fault matrix of tests/test_faults.py (here its cases "
        + ", ".join(f"({c})" for c in sorted(args.cases))
        + "): real 2-trial studies (`python -m study.run --smoke`, a local "
        f"Ray each, one trial at a time, {EPOCHS} epochs, no early stopping, `--max-failures 2`), each with one "
        "trial's worker process SIGKILLed at a known point (a test-only fault point of tests/faults/fault_points.py "
        "holds the trial there until it is killed). A trial is lost unless it is in trials.parquet once, `completed`, "
        f"with epochs 1-{EPOCHS} once each; the goal is 0. The (e) cases run the study's final stage (2 candidates "
        f"and {len(BASELINES)} baselines on 2 folds): a final row is lost unless final.parquet holds each of its "
        f"{FINAL_ROWS} rows once without error, and the model is lost unless it is saved. Retries: the `retries` "
        "column (restarts after a failure); Ray's failures: its `num_failures` (what `--max-failures` limits); epochs "
        "rerun: results Ray logged twice for one epoch (a restart from scratch where a checkpoint was there). Ray fix "
        "off: the baseline rounds, the same studies with study/compat.py's patch made a no-op (Ray 2.60 as it is).",
        "",
        *markdown_table(HEADER, rows(outcomes)),
        *closing(args, 1),
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20, help="rounds of the matrix (default 20)")
    p.add_argument("--baseline-rounds", type=int, default=3, help="rounds without study/compat.py (default 3)")
    p.add_argument("--quick", action="store_true", help="2 rounds and 1 without the fix; writes nothing")
    p.add_argument(
        "--cases",
        default=CASES,
        help=f"the matrix's cases to run, by letter (default {CASES}); a subset writes its own section, faults-LETTERS",
    )
    p.add_argument("--output", type=Path, default=None, help="the Markdown file (default BENCHMARKS.md; none --quick)")
    p.add_argument("--notes", default="", help="a paragraph added under the table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.rounds, args.baseline_rounds = 2, 1
    if not args.cases or set(args.cases) - set(CASES):
        raise SystemExit(f"--cases must be letters among {CASES}, but got {args.cases!r}.")
    cases = [case for case in MATRIX if case[1] in args.cases]
    section = SECTION if set(args.cases) == set(CASES) else f"{SECTION}-{''.join(sorted(set(args.cases)))}"
    console = Console()
    t0 = time.perf_counter()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="faults-") as work:
        rounds = [(r, True) for r in range(args.rounds)] + [(r, False) for r in range(args.baseline_rounds)]
        for r, fix in rounds:
            for i, case in enumerate(cases):
                o = run_case(case, Path(work) / f"{r}-{i}-{fix}", fix)
                outcomes.append(o)
                console.print(
                    f"round {r + 1}/{args.rounds if fix else args.baseline_rounds}{'' if fix else ' without the fix'}"
                    f" {case}: exit {o.exit_code}, lost {o.lost}, retries {o.retries}, Ray's failures "
                    f"{o.ray_failures}, epochs rerun {o.epochs_rerun}, {o.wall_s:.0f} s"
                )
    table = Table(*HEADER, title=f"{args.rounds} rounds of the fault matrix, {args.baseline_rounds} without the fix")
    for row in rows(outcomes):
        table.add_row(*row)
    console.print(table)
    publish(section, markdown(outcomes, args, time.perf_counter() - t0), args, console)
    return 0 if all(o.exit_code == 0 and o.lost == 0 and o.final_lost == 0 for o in outcomes if o.fix) else 1


if __name__ == "__main__":
    sys.exit(main())
