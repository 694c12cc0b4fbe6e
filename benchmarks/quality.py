"""Quality benchmark: macro-F1, macro one-vs-rest AUC and wall time of three models on the real tweet data.

What it measures:
- Greek election tweets (`valid_set.csv`, 5,232 labelled tweets): 5-fold stratified CV (seed 0, the folds of
  `study.evaluate`) of (a) TF-IDF (1-2 grams, sublinear tf) + logistic regression, (b) the original work's best
  configuration (bidirectional LSTM, hidden 16, 3 layers, skip, attention, dropout 0.3, clip 0.4, lr 1e-4,
  batch 2048, `mean` vectoriser) and (c) a GRU over word vectors (`sequence` vectoriser, hidden 64, 1 layer,
  lr 1e-3, batch 64). Every fold trains its own Word2Vec on that fold's training texts plus the unlabelled
  `test_set.csv`, never on the held-out fold.
- Vaccine tweets: train on `vaccine_train_set.csv`, score on `vaccine_validation_set.csv`, for (a) and (c).
An RNN fold's score is its best epoch's validation metrics (the same held-out data picks the epoch, so this is
slightly optimistic); the last epoch's macro-F1 is shown next to it. Wall time includes Word2Vec (no cache).

Run (not part of CI; needs ../shared/data):
    python benchmarks/quality.py            # the full benchmark (about 15-25 min on 2 CPU cores); updates BENCHMARKS.md
    python benchmarks/quality.py --quick    # 2 folds, 1 epoch, 32-d vectors: checks that it runs; writes nothing
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from sections import (  # benchmarks/ on sys.path
    add_output_arguments,
    closing,
    data_folder_missing,
    markdown_table,
    publish,
)

from study.config import DataSettings
from study.cv import cross_validate, evaluate_split, fold_data, summarise
from study.dataset import load_dataset
from trainables.data import LabelledData, concat
from trainables.metrics import classification_metrics
from trainables.train import HParams

SECTION = "quality"
SEED = 0

ORIGINAL = HParams(
    cell="lstm",
    hidden_size=16,
    num_layers=3,
    bidirectional=True,
    skip=True,
    attention=True,
    dropout=0.3,
    clip=0.4,
    lr=1e-4,
    batch_size=2048,
    seed=SEED,
)
CUSTOM = HParams(
    cell="gru",
    hidden_size=64,
    num_layers=1,
    bidirectional=True,
    skip=False,
    attention=True,
    dropout=0.3,
    clip=1.0,
    lr=1e-3,
    batch_size=64,
    seed=SEED,
)


@dataclass(frozen=True)
class Row:
    dataset: str
    model: str  # a short name; `config` has the details
    config: str
    protocol: str
    macro_f1: tuple[float, float]  # mean, std over folds
    auc: tuple[float, float]
    last_macro_f1: float | None  # RNNs: the last epoch's mean macro-F1
    epochs: str
    wall_s: float


# ---------------------------------------------------------------------------------------------------------------
# BENCHMARKS.md (benchmarks/sections.py writes the section)


# ---------------------------------------------------------------------------------------------------------------
# models


def tfidf_scores(train: LabelledData, held_out: LabelledData) -> dict[str, float]:
    """TF-IDF (1-2 grams, sublinear tf) + logistic regression, fitted on `train`, scored on `held_out`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000).fit(vec.fit_transform(train.texts), train.labels)
    m = classification_metrics(held_out.labels, clf.predict_proba(vec.transform(held_out.texts)))
    return {"macro_f1": m["val_macro_f1"], "auc": m["val_auc"]}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def tfidf_row(dataset: str, pairs: Sequence[tuple[LabelledData, LabelledData]], protocol: str) -> Row:
    t0 = time.perf_counter()
    scores = [tfidf_scores(tr, ho) for tr, ho in pairs]
    return Row(
        dataset,
        "(a) TF-IDF + LR",
        "TF-IDF of 1-2 grams (sublinear tf) + logistic regression (sklearn defaults, max_iter 2000)",
        protocol,
        _mean_std([s["macro_f1"] for s in scores]),
        _mean_std([s["auc"] for s in scores]),
        None,
        "-",
        time.perf_counter() - t0,
    )


def rnn_row(dataset: str, model: str, config: str, protocol: str, summary: dict, wall_s: float) -> Row:
    return Row(
        dataset,
        model,
        config,
        protocol,
        (summary["macro_f1_mean"], summary["macro_f1_std"]),
        (summary["auc_mean"], summary["auc_std"]),
        summary["last_macro_f1_mean"],
        f"{summary['epochs']} (best {summary['best_epoch_mean']:.1f})",
        wall_s,
    )


def describe(hp: HParams, settings: DataSettings) -> str:
    direction = "bi" if hp.bidirectional else ""
    parts = [
        f"{direction}{hp.cell.upper()} h{hp.hidden_size}x{hp.num_layers}",
        "skip" if hp.skip and hp.num_layers > 1 else "",
        "attention" if hp.attention else "",
        f"dropout {hp.dropout}, clip {hp.clip}, lr {hp.lr:g}, batch {hp.batch_size}",
        f"{settings.vectorizer} {settings.vector_size}-d",
    ]
    return ", ".join(p for p in parts if p)


# ---------------------------------------------------------------------------------------------------------------
# the benchmark


def run(args: argparse.Namespace, console: Console) -> list[Row]:
    greek, vaccine = args.data_dir / "greek-election-tweets-ys19-2023", args.data_dir / "vaccine-sentiment-ys19"
    base = DataSettings(vector_size=args.vector_size, data_seed=SEED)
    greek_settings = replace(base, train=str(greek / "valid_set.csv"), unlabelled=str(greek / "test_set.csv"))
    vaccine_settings = replace(
        base,
        train=str(vaccine / "vaccine_train_set.csv"),
        valid=str(vaccine / "vaccine_validation_set.csv"),
        text_column="tweet",
        label_column="label",
        party_column="",
        label_map="0=neutral,1=anti,2=pro",
    )
    original_hp = replace(ORIGINAL, max_epochs=args.epochs_original, num_threads=args.threads)
    custom_hp = replace(CUSTOM, max_epochs=args.epochs_custom, num_threads=args.threads)
    original_settings = replace(greek_settings, vectorizer="mean")
    rows: list[Row] = []

    def done(row: Row) -> None:
        rows.append(row)
        console.log(f"{row.dataset} · {row.model}: macro-F1 {row.macro_f1[0]:.4f}, {row.wall_s:.0f} s")

    ds = load_dataset(greek_settings)
    labelled = concat(ds.train, ds.valid)
    cv = f"{args.folds}-fold CV"
    done(tfidf_row("Greek", fold_data(labelled, args.folds, SEED), cv))
    for name, hp, settings in (
        ("(b) original best", original_hp, original_settings),
        ("(c) GRU + word vectors", custom_hp, greek_settings),
    ):
        t0 = time.perf_counter()
        results = cross_validate(hp, labelled, ds.unlabelled, settings, args.folds, cache_dir=None)
        summary = summarise(results, labelled.classes)
        done(rnn_row("Greek", name, describe(hp, settings), cv, summary, time.perf_counter() - t0))

    vs = load_dataset(vaccine_settings)
    protocol = "train → valid"
    done(tfidf_row("Vaccine", [(vs.train, vs.valid)], protocol))
    t0 = time.perf_counter()
    result = evaluate_split(custom_hp, vs.train, vs.valid, (), vaccine_settings, cache_dir=None)
    summary = summarise([result], vs.train.classes)
    wall_s = time.perf_counter() - t0
    done(rnn_row("Vaccine", "(c) GRU + word vectors", describe(custom_hp, vaccine_settings), protocol, summary, wall_s))
    return rows


def _pm(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.3f} ± {pair[1]:.3f}"


def _cells(r: Row) -> list[str]:
    last = "-" if r.last_macro_f1 is None else f"{r.last_macro_f1:.3f}"
    return [r.dataset, r.model, r.protocol, _pm(r.macro_f1), _pm(r.auc), last, r.epochs, f"{r.wall_s:.0f}"]


HEADER = ("data", "model", "protocol", "macro-F1", "AUC", "last F1", "epochs (best)", "wall s")


def rich_table(rows: Sequence[Row]) -> Table:
    table = Table(title="Quality", caption="RNN score: best epoch's validation metrics; last F1: the last epoch's")
    for name in HEADER:
        table.add_column(name, justify="left" if name in ("data", "model", "protocol") else "right")
    for r in rows:
        table.add_row(*_cells(r))
    return table


def markdown(rows: Sequence[Row], args: argparse.Namespace, total_s: float) -> str:
    greek_cv = f"{args.folds}-fold stratified CV (seed {SEED}) of `valid_set.csv`"
    lines = [
        "## Quality",
        "",
        f"`python benchmarks/quality.py --epochs-original {args.epochs_original} --epochs-custom "
        f"{args.epochs_custom} --threads {args.threads}`, total {total_s / 60:.1f} min. Greek: {greek_cv}, "
        "every fold's Word2Vec trained on that fold's training texts + `test_set.csv`, never on the held-out "
        "fold. Vaccine: `vaccine_train_set.csv` → `vaccine_validation_set.csv`. Macro-F1 and macro one-vs-rest "
        "AUC as mean ± std (population) over folds. An RNN fold's score is its best epoch's validation "
        "metrics (the held-out fold also picks the epoch, so slightly optimistic); `last F1` is the last "
        "epoch's. Wall time includes Word2Vec. Greek texts carry the party prefix, as in the original work.",
        "",
        *markdown_table(HEADER, (_cells(r) for r in rows)),
        "",
        "Models:",
        "",
        *(f"- {m}: {c}" for m, c in dict.fromkeys((r.model, r.config) for r in rows)),
        *closing(args, args.threads),
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 folds, 1 epoch, 32-d vectors; writes only to --output")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs-original", type=int, default=5, help="epochs of (b) per fold (default: 5)")
    p.add_argument("--epochs-custom", type=int, default=8, help="epochs of (c) per fold (default: 8)")
    p.add_argument("--vector-size", type=int, default=300, help="Word2Vec dimension (default: 300)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default: 1; on a busy 2-core machine 2 threads ran 2-10x slower than 1)",
    )
    add_output_arguments(p, SECTION, "a paragraph added under the table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.folds, args.epochs_original, args.epochs_custom, args.vector_size = 2, 1, 1, 32
    console = Console(stderr=True)
    if data_folder_missing(args.data_dir, console):
        return 2
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = run(args, console)
    total = time.perf_counter() - t0
    Console(width=None if sys.stdout.isatty() else 160).print(rich_table(rows))
    console.print(f"total {total / 60:.1f} min")
    publish(SECTION, markdown(rows, args, total), args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
