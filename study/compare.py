"""`python -m study.compare results/<a> results/<b> ... --out DIR`: the comparison's command line.

Parsing only; the work is study.report.compare.write_comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from study.cli import run_command
from study.report.compare import PAIRED_CHOICES, parse_labels, write_comparison
from study.report.load import ReportError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.compare",
        description="Compare studies: best models with bootstrap CIs, learning curves, trial scores, paired tests.",
        epilog="exit codes: 0 done, 2 bad input (not a study folder, missing file, unknown schema, "
        "different validation sets with --paired require), 1 other errors",
    )
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="study results folders, e.g. results/<name>")
    p.add_argument("--labels", metavar="A,B,...", help="one short name per folder (default: the folder names)")
    p.add_argument("--out", required=True, metavar="DIR", help="where comparison.html and figures/ go")
    p.add_argument("--boot", type=int, default=1000, metavar="N", help="bootstrap resamples (default: 1000)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level; CIs are 1 - alpha (default: 0.05)")
    p.add_argument(
        "--paired",
        choices=PAIRED_CHOICES,
        default="auto",
        help="paired tests where the validation sets match (auto), refuse pairs that do not match (require), "
        "or none (off)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def work(console) -> None:
        labels = parse_labels(args.labels, [Path(f) for f in args.folders])
        print(write_comparison(args.folders, args.out, labels, args.boot, args.alpha, args.paired, args.seed))

    return run_command("comparison", work, bad_input=(ReportError,))  # CompareError is a ReportError


if __name__ == "__main__":
    sys.exit(main())
