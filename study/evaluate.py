"""`python -m study.evaluate`: the command line of a cross-validation of ONE configuration.

Here: parsing (`parse_overrides` reads the `--set name=value` items), the summary table and the exit codes.
The steps (the folds as the final stage's Ray tasks) live in study/final/evaluation.py, the folds and the
summary over them in study/final/cv.py. With `--valid FILE` there is one "fold": train on `--train`, score on
`--valid`.

Exit codes: 0 done, 2 bad input or settings, 130 interrupted, 1 anything else.
"""

from __future__ import annotations

import difflib
import math
import sys
from argparse import SUPPRESS
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from study.cli import CommandParser, run_command
from study.config import StudyConfig, add_arguments, build_config
from study.final.cv import SCORED_BY
from study.final.evaluation import evaluate
from study.results import json_text
from trainables.data_settings import DataSettings, convert_value, field_types, searched_settings
from trainables.folds import DEFAULT_FOLDS
from trainables.hparams import HParams
from trainables.settings import ConfigError

# One torch thread unless `--set num_threads=N`: a recurrent step is too small to split well, and on a busy
# 2-core machine 2 threads ran 2-10x slower than 1 (threads spin while waiting for a core). A fixed default
# also keeps results independent of the machine's load.
DEFAULT_THREADS = 1

DESCRIPTION = """\
Cross-validate one configuration of the recurrent tweet-sentiment classifier: stratified k-fold (seeded by
--data-seed), fresh word vectors per fold on that fold's training texts (+ --unlabelled), never on the held-out
fold. Each fold's epoch is chosen on an inner validation split of its training part (by val_macro_f1) and the
held-out fold is scored at that epoch; the last epoch's scores and the old, optimistic rule's (the held-out
fold's own best epoch) are shown too. The folds run side by side as Ray tasks, as the final stage's do, on a
Ray started here or on the cluster at --address.
With --valid, train on --train and score on --valid instead (one fold). With no --train, the built-in demo
data is used.
"""

EPILOG = """\
examples:
  python -m study.evaluate --folds 3 --max-epochs 3                    # demo data
  python -m study.evaluate --train valid_set.csv --unlabelled test_set.csv \\
      --set cell=gru --set hidden_size=64 --set lr=1e-3 --set batch_size=64 --json
  python -m study.evaluate --train vaccine_train_set.csv --valid vaccine_validation_set.csv \\
      --text-column tweet --label-column label --party-column '' --label-map 0=neutral,1=anti,2=pro

--set names: every hyperparameter (cell, hidden_size, num_layers, bidirectional, dropout, embedding_dropout,
skip, attention, clip, lr, batch_size, max_epochs, freeze_embeddings, weight_decay, lr_schedule,
label_smoothing, seed, device, num_threads) and every data setting (vectorizer, encoding, vector_size,
max_len, w2v_epochs, ...; a search space's window, sg and min_count name w2v_window, w2v_sg and
w2v_min_count). Booleans take true/false/1/0. Torch uses one thread unless --set num_threads=N (more helps
only large models on an otherwise idle machine).

exit codes: 0 done, 2 bad input or settings, 130 interrupted, 1 other errors
"""


HPARAM_KINDS = field_types(HParams)
DATA_KINDS = field_types(DataSettings)


def parse_overrides(items: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split `--set name=value` items into typed hyperparameters and data settings.

    Returns:
        (hyperparameters by HParams field, data settings by DataSettings field).

    Raises:
        ConfigError: an item is not `name=value`, names no known setting, has a bad value or repeats a name.
    """
    hparams: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        name = searched_settings().get(name, name) if name not in DATA_KINDS else name  # a search space's names
        if not sep or not name:
            raise ConfigError(f"`--set` items must have the form name=value (e.g. hidden_size=64), but got {item!r}.")
        if name in HPARAM_KINDS:
            target, kind = hparams, HPARAM_KINDS[name]
        elif name in DATA_KINDS:
            target, kind = data, DATA_KINDS[name]
        else:
            known = sorted(HPARAM_KINDS) + sorted(DATA_KINDS)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise ConfigError(
                f"`--set` names must be hyperparameters or data settings, but got `{name}`.{hint} "
                f"Known names: {', '.join(known)}."
            )
        if name in target:
            raise ConfigError(f"`--set` must give each name once, but `{name}` is set twice.")
        target[name] = convert_value(name, text.strip(), kind, "--set")
    return hparams, data


def build_settings(
    flags: dict[str, Any], overrides: Sequence[str], max_epochs: int | None, toml_path: str | None = None
) -> tuple[StudyConfig, HParams]:
    """Validated settings (data, Ray address and resources) and hyperparameters from the flags, `--set` items,
    `--max-epochs` and a `--config` file (a study's: its data settings are read, the rest is left alone).

    A name given both as a flag and in `--set` is an error, as is a name given twice.
    """
    hp_values, data_values = parse_overrides(overrides)
    both = sorted(set(flags) & set(data_values))
    if both:
        raise ConfigError(f"`{both[0]}` must be given once, but it is both a flag and a `--set` item.")
    if max_epochs is not None:
        if "max_epochs" in hp_values:
            raise ConfigError("`max_epochs` must be given once, but it is both `--max-epochs` and a `--set` item.")
        hp_values["max_epochs"] = max_epochs
    settings = build_config({**flags, **data_values}, toml_path, StudyConfig)
    hp_values.setdefault("num_threads", DEFAULT_THREADS)
    return settings, HParams(**hp_values)


def summary_table(summary: dict[str, Any], classes: tuple[str, ...], title: str) -> Table:
    """A rich table of mean ± std of every metric, best epoch and last epoch side by side."""

    def cell(prefix: str, name: str, per_class: str | None = None) -> str:
        mean, std = summary[f"{prefix}{name}_mean"], summary[f"{prefix}{name}_std"]
        if per_class is not None:  # `name` is a {class: value} summary
            mean, std = mean[per_class], std[per_class]
        return "n/a" if math.isnan(mean) else f"{mean:.4f} ± {std:.4f}"

    old = summary["held_out_best_macro_f1_mean"]
    caption = (
        f"mean ± std over {summary['folds']} fold(s); chosen epoch = {SCORED_BY}. The old rule (each fold's best "
        f"epoch on its own held-out rows, optimistic) gave macro-F1 {old:.4f}"
    )
    table = Table("metric", title=title, caption=caption)
    for column in ("chosen epoch", "last epoch"):
        table.add_column(column, justify="right")
    for name, label in (("macro_f1", "macro-F1"), ("auc", "AUC (macro OvR)"), ("accuracy", "accuracy")):
        table.add_row(label, cell("", name), cell("last_", name))
    for c in classes:
        table.add_row(f"recall {c}", cell("", "recall_per_class", c), cell("last_", "recall_per_class", c))
    table.add_row("epoch", f"{summary['best_epoch_mean']:.1f} (mean)", str(summary["epochs"]))
    table.add_row("time", f"{summary['time_s']:.1f} s (all folds)", "")
    return table


def parser() -> CommandParser:
    p = CommandParser("python -m study.evaluate", DESCRIPTION, EPILOG)
    p.add_argument("--config", metavar="FILE", help="a study's TOML settings file (study.run --config): its data")
    p.add_argument("--folds", type=int, default=None, help=f"k of the k-fold CV (default: {DEFAULT_FOLDS})")
    p.add_argument("--max-epochs", type=int, default=None, help=f"epochs per fold (default: {HParams.max_epochs})")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hyperparameter or data setting, e.g. --set cell=gru --set lr=1e-3 (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the table")
    p.add_argument("--address", default=SUPPRESS, help="a running Ray cluster, e.g. auto (default: start Ray here)")
    p.add_argument("--cpus-per-trial", default=SUPPRESS, metavar="N", help="CPUs per fold task (default: 1)")
    p.add_argument("--gpus-per-trial", default=SUPPRESS, metavar="N", help="GPUs per fold task (default: 0, the CPU)")
    add_arguments(p, DataSettings)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k not in ("folds", "max_epochs", "overrides", "json", "config")}

    def work(console: Console) -> None:
        out = evaluate(*build_settings(flags, args.overrides, args.max_epochs, args.config), args.folds)
        if args.json:
            sys.stdout.write(json_text(out) + "\n")
        else:
            title = f"{out['mode']}: {out['folds']} fold(s), {out['n_rows']} rows, {out['train_path']}"
            Console().print(summary_table(out, tuple(out["classes"]), title))

    # a ValueError is a bad hyperparameter or data setting here (HParams and the data checks raise it)
    return run_command("evaluation", work, bad_input=(ValueError,), interrupted="evaluation stopped; nothing written.")


if __name__ == "__main__":
    sys.exit(main())
