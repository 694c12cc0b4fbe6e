"""`python -m study.report FOLDER [--top K]`: the command line of the study report; the work is write_report."""

from __future__ import annotations

import argparse
import sys

from study.cli import EXIT_CODES_HELP, run_command
from study.report.load import ReportError
from study.results import read_study


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, but got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, but got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.report",
        description="Write FOLDER/report.html and FOLDER/figures/*.png from a study's results files.",
        epilog=EXIT_CODES_HELP,
    )
    p.add_argument("folder", help="a study's results folder, e.g. results/<name>")
    p.add_argument("--top", type=_positive_int, default=5, metavar="K", help="trials in the top-K curves and table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def work(console) -> None:
        read_study(args.folder)  # a bad folder is refused before the plotting stack loads (seconds)
        import matplotlib

        matplotlib.use("Agg")  # Optuna draws through pyplot; a report never opens a window
        from study.report.sections import write_report

        print(write_report(args.folder, args.top))

    return run_command("report", work, bad_input=(ReportError,))


if __name__ == "__main__":
    sys.exit(main())
