"""Which of the `wide` space's representation settings matter, and what FastText costs, on the Greek data.

For every representation of the `wide` grid (vectorizer x vector_size x window x sg x min_count), vectors are
trained as a study trains them (the labelled and the unlabelled tweets, cleaned by the default CleanConfig)
and timed; each is then scored the cheap way: a logistic regression on the tweets' mean vectors, 5-fold
stratified CV macro-F1 on the 5,232 labelled tweets (the same folds for every representation). A setting's
effect is the mean paired difference between its two values over the rest of the grid. FastText is also timed
with the n-gram table and passes the study uses against the old ones (2^19 buckets, Word2Vec's passes).

    python benchmarks/representations.py            # updates BENCHMARKS.md (representations section)
    python benchmarks/representations.py --quick    # 4 representations; writes nothing
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import pandas as pd
from rich.console import Console
from sections import add_output_arguments, closing, data_folder_missing, markdown_table, publish

SECTION = "representations"
GRID = {"vectorizer": ("word2vec", "fasttext"), "vector_size": (100, 300), "window": (3, 5), "sg": (False, True),
        "min_count": (1, 2)}  # fmt: skip


def score(x: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> float:
    """Mean macro-F1 of a logistic regression on `x` (N, D) over stratified folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = []
    for tr, ho in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, labels):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[tr], labels[tr])
        scores.append(f1_score(labels[ho], clf.predict(x[ho]), average="macro"))
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="4 representations (100-d, window 5, CBOW); writes nothing")
    p.add_argument("--folds", type=int, default=5)
    add_output_arguments(p, SECTION, "a paragraph added under the tables")
    args = p.parse_args(argv)
    console = Console()
    if data_folder_missing(args.data_dir, console):
        return 2

    import trainables.vectorize as vz
    from trainables.data import DataSpec, read_labelled
    from trainables.preprocess import CleanConfig, clean_corpus

    greek = args.data_dir / "greek-election-tweets-ys19-2023"
    labelled = read_labelled(greek / "valid_set.csv", DataSpec())
    unlabelled = pd.read_csv(greek / "test_set.csv", dtype=str)["Text"].fillna("").tolist()
    tokens = clean_corpus(list(labelled.texts), CleanConfig())
    corpus = tokens + clean_corpus(unlabelled, CleanConfig())
    n_tokens = sum(map(len, corpus))
    grid = dict(GRID)
    if args.quick:
        grid |= {"vector_size": (100,), "window": (5,), "sg": (False,)}
    rows = []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        cfg = vz.with_params(vz.VectorConfig(mode="mean"), point)
        t0 = time.perf_counter()
        wv = vz.train_vectors(corpus, cfg)
        seconds = time.perf_counter() - t0
        f1 = score(vz.encode_mean(tokens, wv), labelled.labels, args.folds, 0)
        rows.append({**point, "seconds": seconds, "macro_f1": f1})
        console.print(f"{point}: {seconds:.1f} s, macro-F1 {f1:.4f}")
    df = pd.DataFrame(rows)

    effects = []
    for name, levels in grid.items():
        if len(levels) < 2:
            continue
        rest = [k for k in grid if k != name]
        wide = df.pivot_table(index=rest, columns=name, values="macro_f1")
        diff = wide[levels[1]] - wide[levels[0]]  # paired over the rest of the grid
        times = df.groupby(name)["seconds"].mean()
        effects.append(
            (f"`{name}`", f"{levels[0]} → {levels[1]}", f"{diff.mean():+.4f}", f"{diff.std():.4f}",
             f"{(diff > 0).sum()} / {len(diff)}", f"{times[levels[1]] / times[levels[0]]:.2f}")
        )  # fmt: skip

    # FastText's cost: the study's n-gram table and passes against the old 2^19 buckets and Word2Vec's passes
    cost = []
    base = vz.with_params(vz.VectorConfig(mode="mean"), {"vectorizer": "fasttext", "vector_size": 100})
    old = vz.VectorConfig(**{**base.__dict__, "epochs": vz.auto_epochs(n_tokens)})
    for label, cfg, buckets in (("old: 2^19 buckets, Word2Vec's passes", old, 1 << 19), ("now", base, None)):
        t0 = time.perf_counter()
        wv = vz.train_vectors(corpus, cfg, buckets=buckets)
        seconds = time.perf_counter() - t0
        f1 = score(vz.encode_mean(tokens, wv), labelled.labels, args.folds, 0)
        cost.append((label, str(wv.ngrams.buckets), str(cfg.epochs or vz.auto_epochs(n_tokens, cfg.kind)),
                     f"{seconds:.1f}", f"{f1:.4f}"))  # fmt: skip
        console.print(f"FastText {label}: {seconds:.1f} s, macro-F1 {f1:.4f}")

    lines = [
        "## Representations: which settings matter, what FastText costs (`python benchmarks/representations.py`)",
        "",
        f"Every representation of the `wide` grid ({len(df)}) trained as a study trains it, on the 5,232 labelled "
        f"and 10,470 unlabelled Greek tweets ({n_tokens:,} tokens after cleaning), then scored by a logistic "
        f"regression on the mean vectors ({args.folds}-fold stratified CV macro-F1, the same folds for all): a "
        "cheap probe of what the vectors carry, not a study. Effect: the mean paired difference between a "
        "setting's two values over the rest of the grid (its std; how often the second value was better); time: "
        "the second value's mean training time over the first's.",
        "",
        *markdown_table(("setting", "values", "effect on macro-F1", "std", "better", "time ×"), effects),
        "",
        f"Macro-F1 over the grid: {df.macro_f1.min():.4f} to {df.macro_f1.max():.4f}; training time "
        f"{df.seconds.min():.1f} to {df.seconds.max():.1f} s (mean by vectorizer: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in df.groupby("vectorizer")["seconds"].mean().items())
        + ").",
        "",
        "FastText, 100-d, window 5, CBOW, min_count 2:",
        "",
        *markdown_table(("n-gram table and passes", "buckets", "passes", "seconds", "macro-F1"), cost),
        "",
        *closing(args, 1),
    ]
    console.print("\n".join(lines))
    publish(SECTION, "\n".join(lines), args, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
