"""`python -m study.run`: the command line of a study. Parsing and exit codes only; the work is run_study.

Exit codes: 0 done, 2 bad input or settings (said before Ray starts), 130 interrupted (resumable),
1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys

from rich.markup import escape

from study.config import ConfigError, StudyConfig, add_arguments, build_config
from study.console import setup_console
from trainables.data import DataError

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = """\
Run a hyperparameter study of a recurrent tweet-sentiment classifier: Ray Tune runs the trials in parallel,
Optuna's TPE proposes them, ASHA stops weak ones early. With no data given it runs on a built-in demo data
set. Results land in RESULTS_DIR/NAME/ (trials.parquet, epochs.parquet, predictions.parquet, study.json,
optuna.db); `python -m study.report RESULTS_DIR/NAME` turns them into a report.
"""

EPILOG = """\
examples:
  python -m study.run                                   # small study on the built-in demo data
  python -m study.run --smoke                           # a tiny one, to check that everything runs
  python -m study.run --train valid_set.csv --unlabelled test_set.csv --space seed --num-samples 40
  python -m study.run --train vaccine_train_set.csv --valid vaccine_validation_set.csv \\
      --text-column tweet --label-column label --party-column '' --label-map 0=neutral,1=anti,2=pro
  python -m study.run --config study.toml --num-samples 64   # flags win over the TOML file
  python -m study.run --address auto --storage s3://bucket/studies --gpus-per-trial 0.25   # on a cluster
  python -m study.run --resume NAME                     # complete an interrupted study

exit codes: 0 done, 2 bad input or settings, 130 interrupted (resume with --resume NAME), 1 other errors
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.run",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", help="TOML file with the same keys as the flags")
    add_arguments(p, StudyConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    console = setup_console()
    ns = vars(parser().parse_args(argv))
    toml_path = ns.pop("config", None)
    from study.orchestrate import StudyInterrupted, StudyWriteError, run_study  # before `try`: its except names them

    try:
        cfg = build_config(ns, toml_path, StudyConfig)
        outcome = run_study(cfg, console)
    except (ConfigError, DataError) as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/] before the study started; nothing to resume.")
        return EXIT_INTERRUPTED
    except StudyInterrupted as e:
        console.print(f"[yellow]{escape(str(e))}[/]")
        return EXIT_INTERRUPTED
    except StudyWriteError as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}")
        return EXIT_ERROR
    except Exception as e:  # noqa: BLE001 - the last line of defence: say what failed, exit 1
        logging.getLogger(__name__).exception("study failed: %s", e)
        return EXIT_ERROR

    from study.progress import top_trials_table

    console.print(top_trials_table(outcome.trials))
    counts = outcome.trials["status"].value_counts().to_dict()
    console.print(f"Study [bold]{outcome.name}[/] done: {len(outcome.trials)} trials ({counts}).")
    console.print(f"Results: [bold]{outcome.folder}[/]  ·  report: python -m study.report {outcome.folder}")
    print(outcome.folder)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
