"""`python -m study.run`: the command line of a study. Parsing and exit codes only; the work is run_study.

Exit codes: 0 done, 2 bad input or settings (said before Ray starts), 130 interrupted (resumable),
1 anything else.
"""

from __future__ import annotations

import sys

from study.cli import CommandParser, run_command
from study.config import StudyConfig, add_arguments, build_config

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
  python -m study.run --space my_space.toml             # a search space of your own (README)
  python -m study.run --address auto --storage s3://bucket/studies --gpus-per-trial 0.25   # on a cluster
  python -m study.run --resume NAME                     # complete an interrupted study

exit codes: 0 done, 2 bad input or settings, 130 interrupted (resume with --resume NAME), 1 other errors
"""


def parser() -> CommandParser:
    from search_spaces import SPACES

    p = CommandParser("python -m study.run", DESCRIPTION, EPILOG)
    p.add_argument("--config", metavar="FILE", help="TOML file with the same keys as the flags")
    add_arguments(p, StudyConfig)
    spaces = "; ".join(f"{name} ({space.description})" for name, space in SPACES.items())
    file = 'or a .toml file that declares one as search_spaces/*.toml do (README: "Search spaces of your own")'
    p.set_help("space", f"named search space, one of: {spaces}; {file}. Default: {StudyConfig.space}")
    return p


def main(argv: list[str] | None = None) -> int:
    ns = vars(parser().parse_args(argv))
    toml_path = ns.pop("config", None)

    def work(console) -> None:
        from study.search.driver import run_study
        from study.search.progress import top_trials_table

        outcome = run_study(build_config(ns, toml_path, StudyConfig), console)
        console.print(top_trials_table(outcome.trials))
        counts = outcome.trials["status"].value_counts().to_dict()
        console.print(f"Study [bold]{outcome.name}[/] done: {len(outcome.trials)} trials ({counts}).")
        if outcome.info.get("final"):
            from study.final.summary import answer_lines

            for line in answer_lines(outcome.info["final"], outcome.folder):
                console.print(line, markup=False, soft_wrap=True)
        console.print(f"Results: [bold]{outcome.folder}[/]  ·  report: python -m study.report {outcome.folder}")
        print(outcome.folder)

    return run_command("study", work, interrupted="before the study started; nothing to resume.")


if __name__ == "__main__":
    sys.exit(main())
