"""`python -m study.ablate results/<name>`: one factor of a study's winner changed at a time, with intervals.

The command line, which writes the report (study/report/ablation.py) once the steps are done; the steps are
study/ablation/driver.py's, the plan, runs and statistics study/ablation/effects.py's.

Exit codes: 0 done, 2 bad input or settings (nothing written), 130 interrupted (rerun the same command to
resume), 1 anything else.
"""

from __future__ import annotations

import shlex
import sys

from study.ablation.driver import DEFAULT_FOLDS, DEFAULT_PRESET, ablate
from study.ablation.effects import ABLATION_FILE, PRESETS
from study.cli import CommandParser, run_command

DESCRIPTION = """\
Ablate a study's winner: change one factor at a time (cell type, hidden size, layers, dropout, skip, clip,
attention, ...) and run every variant and the base with the same stratified folds, the same Word2Vec per fold
and the same seeds, side by side on Ray with the study's per-trial resources and data. Each variant is compared
with the base fold by fold: the change in macro-F1 and AUC with a 95% interval (Nadeau-Bengio corrected), a
paired t-test and Holm's correction for the number of variants, and one line in plain words.

The base is the winner of the study's final stage (its hyperparameters, the space's fixed ones, the study's
seed and epochs), changed by --base; a study without a final stage needs --base. With neither --vary nor
--preset, the `original` preset replays the original work's experiments (cell rnn/lstm/gru, hidden 16-128,
1-3 layers, dropout 0/0.3/0.5, skip, clip 0/1/5, attention). --vary adds factors to a preset and replaces the
values of a factor both name. Values equal to the base's are skipped.
"""

EPILOG = """\
examples:
  python -m study.ablate results/greek                                  # the original work's experiments
  python -m study.ablate results/greek --vary cell=rnn,gru --vary attention=false --folds 5 --repeats 2
  python -m study.ablate results/greek --base cell=lstm --base hidden_size=64 --vary num_layers=1,2,3
  python -m study.ablate results/greek --address auto --out results/greek/ablation-layers --vary num_layers=1,3

Results: DIR/ablation.parquet (a row per variant, repeat and fold), DIR/ablation.json (settings, base,
variants, effects), DIR/report.html and DIR/figures/. DIR defaults to RESULTS/ablation. Rerunning the same
command resumes an interrupted ablation (only the missing folds run; --repeats may grow); another plan into
the same DIR is refused.

exit codes: 0 done, 2 bad input or settings (nothing written), 130 interrupted (rerun the same command to resume),
1 other errors
"""


def parser() -> CommandParser:
    p = CommandParser("python -m study.ablate", DESCRIPTION, EPILOG)
    p.add_argument("folder", metavar="RESULTS", help="a study's results folder, e.g. results/<name>")
    p.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="FACTOR=V1,V2",
        help="a factor and the values to try, e.g. --vary cell=rnn,gru --vary attention=false (repeatable)",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help=f"a named set of factors (default: {DEFAULT_PRESET} when no --vary is given)",
    )
    p.add_argument(
        "--base",
        action="append",
        default=[],
        metavar="FACTOR=VALUE",
        help="change the base (the final stage's winner), e.g. --base hidden_size=64 (repeatable)",
    )
    p.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help=f"k of the k-fold CV (default: {DEFAULT_FOLDS})")
    p.add_argument("--repeats", type=int, default=1, help="repeats with other folds and seeds (default: 1)")
    p.add_argument("--max-epochs", type=int, default=None, help="epochs per fold (default: the study's)")
    p.add_argument("--cpus-per-trial", type=float, default=None, help="CPUs per fold task (default: the study's)")
    p.add_argument("--gpus-per-trial", type=float, default=None, help="GPUs per fold task (default: the study's)")
    p.add_argument("--out", metavar="DIR", help="where the results go (default: RESULTS/ablation)")
    p.add_argument("--address", default="", help="a running Ray cluster, e.g. auto (default: start Ray here)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    command = shlex.join(["python", "-m", "study.ablate", *argv])

    def work(console) -> None:
        out, info, rows = ablate(args, console, command)
        from study.report.ablation import write_ablation_report  # matplotlib loads once the folds are done

        report = write_ablation_report(out, info, rows)
        console.print(f"Ablation done: {out / ABLATION_FILE}  ·  report: {report}")
        print(report)

    return run_command(
        "ablation",
        work,
        interrupted="ablation stopped; rerun the same command to resume (finished folds are kept).",
    )


if __name__ == "__main__":
    sys.exit(main())
