"""`python -m study.evaluate`: stratified k-fold cross-validation of ONE configuration, no Ray needed.

Here: the command line, `parse_overrides` (the `--set name=value` items), `fold_indices` / `fold_data` (the
seeded folds), `cross_validate` (Word2Vec and `fit` per fold) and `summarise` (mean ± std over folds).
Not here: reading files (trainables/data.py, study/dataset.py), the training loop (trainables/train.py).

Every fold trains its own Word2Vec on that fold's training texts plus the unlabelled texts, never on the
held-out fold. A fold's score is the validation metrics of its best epoch (by `val_macro_f1`); the last
epoch's metrics are reported too. With `--valid FILE` there is one "fold": train on `--train`, score on
`--valid`.

Exit codes: 0 done, 2 bad input or settings, 130 interrupted, 1 anything else.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from study.config import ConfigError, DataSettings, add_arguments, build_config, convert_value, field_types
from study.console import setup_console
from trainables.data import DataError, LabelledData, concat, subset
from trainables.metrics import METRIC
from trainables.prepare import EncodedData, prepare
from trainables.train import HParams, NonFiniteLossError, fit

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_FOLDS = 5
# One torch thread unless `--set num_threads=N`: a recurrent step is too small to split well, and on a busy
# 2-core machine 2 threads ran 2-10x slower than 1 (threads spin while waiting for a core). A fixed default
# also keeps results independent of the machine's load.
DEFAULT_THREADS = 1
SCORED_BY = f"best epoch by {METRIC} per fold"
SUMMARY_METRICS = ("macro_f1", "auc", "accuracy")

DESCRIPTION = """\
Cross-validate one configuration of the recurrent tweet-sentiment classifier: stratified k-fold (seeded by
--data-seed), a fresh Word2Vec per fold on that fold's training texts (+ --unlabelled), never on the held-out
fold. A fold's score is its best epoch's validation metrics (by val_macro_f1); the last epoch's are shown too.
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

--set names: every hyperparameter (cell, hidden_size, num_layers, bidirectional, dropout, skip, attention,
clip, lr, batch_size, max_epochs, freeze_embeddings, seed, device, num_threads) and every data setting
(vectorizer, vector_size, max_len, w2v_epochs, ...). Booleans take true/false/1/0. Torch uses one thread
unless --set num_threads=N (more helps only large models on an otherwise idle machine).

exit codes: 0 done, 2 bad input or settings, 130 interrupted, 1 other errors
"""


@dataclass(frozen=True)
class FoldResult:
    fold: int  # 1-based
    n_train: int
    n_valid: int
    best_epoch: int  # 1-based epoch whose validation macro-F1 is highest
    epochs: int  # epochs run
    best: dict[str, Any]  # validation metrics of the best epoch (val_ prefix dropped)
    last: dict[str, Any]  # validation metrics of the last epoch
    time_s: float  # Word2Vec + encoding + training


# ---------------------------------------------------------------------------------------------------------------
# settings


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
    flags: dict[str, Any], overrides: Sequence[str], max_epochs: int | None
) -> tuple[DataSettings, HParams]:
    """Validated data settings and hyperparameters from the data flags, `--set` items and `--max-epochs`.

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
    settings = build_config({**flags, **data_values}, None, DataSettings)
    hp_values.setdefault("num_threads", DEFAULT_THREADS)
    return settings, HParams(**hp_values)


# ---------------------------------------------------------------------------------------------------------------
# folds


def fold_indices(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified k-fold positions: one (train, held_out) pair of sorted positions per fold.

    Raises:
        ConfigError: `folds` < 2, or some class has fewer rows than `folds`.
    """
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise ConfigError(f"`folds` must be >= 2 for cross-validation, but got {folds}.")
    counts = np.bincount(labels)
    smallest = int(counts[counts > 0].min())
    if smallest < folds:
        raise ConfigError(
            f"`folds` must be <= the row count of the smallest class ({smallest}), but got {folds}; "
            "use fewer folds or more data."
        )
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(labels)), labels))


def fold_data(data: LabelledData, folds: int, seed: int) -> list[tuple[LabelledData, LabelledData]]:
    """The (train, held_out) LabelledData of every fold; the held-out parts partition `data`."""
    return [(subset(data, tr), subset(data, ho)) for tr, ho in fold_indices(data.labels, folds, seed)]


def encode_fold(
    train: LabelledData,
    held_out: LabelledData,
    unlabelled: Sequence[str],
    settings: DataSettings,
    cache_dir: Path | None,
) -> EncodedData:
    """Word2Vec on the fold's training texts plus `unlabelled` (never `held_out`), then encode both parts."""
    return prepare(
        train,
        held_out,
        unlabelled,
        clean=settings.clean_config(),
        vectors=settings.vector_config(),
        cache_dir=cache_dir,
    )


# ---------------------------------------------------------------------------------------------------------------
# evaluation


def _val_metrics(record: dict[str, Any], classes: tuple[str, ...]) -> dict[str, Any]:
    return {
        "macro_f1": record["val_macro_f1"],
        "auc": record["val_auc"],
        "accuracy": record["val_accuracy"],
        "loss": record["val_loss"],
        "recall_per_class": dict(zip(classes, record["val_recall_per_class"], strict=True)),
        "f1_per_class": dict(zip(classes, record["val_f1_per_class"], strict=True)),
    }


def score_history(history: list[dict[str, Any]], classes: tuple[str, ...]) -> tuple[int, dict, dict]:
    """(best epoch, its validation metrics, the last epoch's validation metrics) of one `fit` run."""
    best = max(history, key=lambda r: (r[METRIC], -r["epoch"]))  # the earliest of equal scores
    return int(best["epoch"]), _val_metrics(best, classes), _val_metrics(history[-1], classes)


def evaluate_split(
    hp: HParams,
    train: LabelledData,
    held_out: LabelledData,
    unlabelled: Sequence[str],
    settings: DataSettings,
    cache_dir: Path | None,
    fold: int = 1,
) -> FoldResult:
    """Word2Vec, encoding and `fit` on one (train, held_out) pair, scored on `held_out`."""
    t0 = time.perf_counter()
    data = encode_fold(train, held_out, unlabelled, settings, cache_dir)
    history = fit(hp, data)
    best_epoch, best, last = score_history(history, data.classes)
    return FoldResult(fold, len(train), len(held_out), best_epoch, len(history), best, last, time.perf_counter() - t0)


def cross_validate(
    hp: HParams,
    data: LabelledData,
    unlabelled: Sequence[str],
    settings: DataSettings,
    folds: int,
    cache_dir: Path | None = None,
    on_fold: Callable[[FoldResult], None] | None = None,
) -> list[FoldResult]:
    """Stratified k-fold CV (seeded by `settings.data_seed`) of one configuration.

    Args:
        hp: the hyperparameters, the same in every fold.
        data: every labelled row; each fold holds out 1/`folds` of it.
        unlabelled: extra texts for every fold's Word2Vec.
        settings: cleaning and Word2Vec settings.
        folds: k >= 2.
        cache_dir: the Word2Vec cache; None trains every fold's vectors afresh.
        on_fold: called with each fold's result as it finishes.

    Returns:
        One FoldResult per fold, in fold order.
    """
    results = []
    for i, (train, held_out) in enumerate(fold_data(data, folds, settings.data_seed), start=1):
        result = evaluate_split(hp, train, held_out, unlabelled, settings, cache_dir, fold=i)
        if on_fold is not None:
            on_fold(result)
        results.append(result)
    return results


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    if np.isnan(a).all():
        return math.nan, math.nan
    return float(np.nanmean(a)), float(np.nanstd(a))


def summarise(results: Sequence[FoldResult], classes: tuple[str, ...]) -> dict[str, Any]:
    """Mean and (population) std over folds of the best-epoch metrics, plus the last epoch's as `last_*`."""
    out: dict[str, Any] = {"folds": len(results), "scored_by": SCORED_BY}
    for which, prefix in (("best", ""), ("last", "last_")):
        for name in SUMMARY_METRICS:
            mean, std = _mean_std([getattr(r, which)[name] for r in results])
            out[f"{prefix}{name}_mean"], out[f"{prefix}{name}_std"] = mean, std
        per_class = {c: _mean_std([getattr(r, which)["recall_per_class"][c] for r in results]) for c in classes}
        out[f"{prefix}recall_per_class_mean"] = {c: m for c, (m, _) in per_class.items()}
        out[f"{prefix}recall_per_class_std"] = {c: s for c, (_, s) in per_class.items()}
    out["best_epoch_mean"] = float(np.mean([r.best_epoch for r in results]))
    out["epochs"] = max(r.epochs for r in results)
    out["time_s"] = float(sum(r.time_s for r in results))
    out["per_fold"] = [asdict(r) for r in results]
    return out


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null, so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def summary_table(summary: dict[str, Any], classes: tuple[str, ...], title: str) -> Table:
    """A rich table of mean ± std of every metric, best epoch and last epoch side by side."""

    def cell(prefix: str, name: str, per_class: str | None = None) -> str:
        if per_class is None:
            mean, std = summary[f"{prefix}{name}_mean"], summary[f"{prefix}{name}_std"]
        else:
            mean = summary[f"{prefix}recall_per_class_mean"][per_class]
            std = summary[f"{prefix}recall_per_class_std"][per_class]
        return "n/a" if math.isnan(mean) else f"{mean:.4f} ± {std:.4f}"

    table = Table(title=title, caption=f"mean ± std over {summary['folds']} fold(s); best = {SCORED_BY}")
    table.add_column("metric")
    table.add_column("best epoch", justify="right")
    table.add_column("last epoch", justify="right")
    for name, label in (("macro_f1", "macro-F1"), ("auc", "AUC (macro OvR)"), ("accuracy", "accuracy")):
        table.add_row(label, cell("", name), cell("last_", name))
    for c in classes:
        table.add_row(f"recall {c}", cell("", "recall", c), cell("last_", "recall", c))
    table.add_row("epoch", f"{summary['best_epoch_mean']:.1f} (mean)", str(summary["epochs"]))
    table.add_row("time", f"{summary['time_s']:.1f} s (all folds)", "")
    return table


# ---------------------------------------------------------------------------------------------------------------
# command line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.evaluate",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    add_arguments(p, DataSettings)
    return p


def run(args: argparse.Namespace, flags: dict[str, Any]) -> dict[str, Any]:
    """Validate everything, read the data, cross-validate (or train → valid); returns the JSON summary."""
    from study.dataset import load_dataset
    from trainables.vectorize import default_cache_dir

    settings, hp = build_settings(flags, args.overrides, args.max_epochs)
    if settings.valid and args.folds is not None:
        raise ConfigError(f"`folds` must not be given with `valid` (one train → valid split), but got {args.folds}.")
    folds = DEFAULT_FOLDS if args.folds is None else args.folds
    if not settings.valid and folds < 2:
        raise ConfigError(f"`folds` must be >= 2 for cross-validation, but got {folds}.")
    torch.set_num_threads(hp.num_threads)

    ds = load_dataset(settings)
    cache_dir = default_cache_dir() / "word2vec"

    def on_fold(r: FoldResult) -> None:
        log.info(
            "Fold %d: macro-F1 %.4f, AUC %.4f (best epoch %d of %d), %.1f s",
            r.fold,
            r.best["macro_f1"],
            r.best["auc"],
            r.best_epoch,
            r.epochs,
            r.time_s,
        )

    if settings.valid:
        mode = "train-valid"
        n_rows = len(ds.train) + len(ds.valid)
        log.info(
            "Training on %s (%d rows), scoring on %s (%d rows)",
            ds.train_path,
            len(ds.train),
            settings.valid,
            len(ds.valid),
        )
        results = [evaluate_split(hp, ds.train, ds.valid, ds.unlabelled, settings, cache_dir)]
        on_fold(results[0])
    else:
        mode = "cross-validation"
        labelled = concat(ds.train, ds.valid)  # load_dataset splits; CV needs every labelled row
        n_rows = len(labelled)
        log.info("%d-fold stratified CV of %d rows from %s", folds, n_rows, ds.train_path)
        fold_indices(labelled.labels, folds, settings.data_seed)  # refuse bad `folds` before any work
        results = cross_validate(hp, labelled, ds.unlabelled, settings, folds, cache_dir, on_fold)
    classes = ds.train.classes
    summary = summarise(results, classes)
    return {
        **summary,
        "mode": mode,
        "classes": list(classes),
        "n_rows": n_rows,
        "train_path": ds.train_path,
        "unlabelled_rows": len(ds.unlabelled),
        "settings": {"data": {**asdict(settings), "clean_off": list(settings.clean_off)}, "hparams": asdict(hp)},
    }


def main(argv: list[str] | None = None) -> int:
    console = setup_console()
    args = parser().parse_args(argv)
    known = {"folds", "max_epochs", "overrides", "json"}
    flags = {k: v for k, v in vars(args).items() if k not in known}
    try:
        out = run(args, flags)
    except (ConfigError, DataError, ValueError) as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}")
        return EXIT_BAD_INPUT
    except NonFiniteLossError as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the last line of defence: say what failed, exit 1
        log.exception("evaluation failed: %s", e)
        return EXIT_ERROR
    if args.json:
        sys.stdout.write(json.dumps(_json_safe(out), ensure_ascii=False, allow_nan=False) + "\n")
    else:
        title = f"{out['mode']}: {out['folds']} fold(s), {out['n_rows']} rows, {out['train_path']}"
        Console().print(summary_table(out, tuple(out["classes"]), title))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
