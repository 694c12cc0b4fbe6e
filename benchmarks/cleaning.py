"""Cleaning speed: `clean_corpus` on 50,000+ real tweets against a notebook-style cleaner, in one run.

The notebook-style baseline does what the original work's notebooks did, tweet by tweet: a chain of `re.sub`
calls, accents stripped character by character with `unicodedata`, stop words looked up in a list. Both clean
the same texts (`test_set.csv` of the Greek data, repeated to 50,000+ tweets); the table gives tweets per second
and the ratio. Not run in CI.

    python benchmarks/cleaning.py [--repeat 5]

Writes the `cleaning` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import unicodedata
from pathlib import Path

from sections import machine_line, write_section

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "greek-election-tweets-ys19-2023" / "test_set.csv"


def notebook_clean(texts: list[str], stopwords: list[str]) -> list[list[str]]:
    out = []
    for text in texts:
        text = text.lower()
        text = re.sub(r"https?://\S+|www\.\S+", " ", text)
        text = re.sub(r"@\w+", " ", text)
        text = text.replace("#", " ")
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        text = re.sub(r"[^\w\s]", " ", text)
        text = re.sub(r"\d+", " ", text)
        out.append([w for w in text.split() if w not in stopwords and 2 <= len(w) <= 30])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5, help="copies of test_set.csv's 10,470 tweets")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds of each cleaner; the median is reported")
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from trainables.data import DataSpec, read_unlabelled
    from trainables.preprocess import CleanConfig, clean_corpus, load_stopwords

    texts = read_unlabelled(DATA, DataSpec(party_column="")) * args.repeat
    stop = sorted(load_stopwords("el") | load_stopwords("en"))
    clean_corpus(texts[:100], CleanConfig())  # build the tables once, as any real run does
    ours, naive = [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        clean_corpus(texts, CleanConfig())
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        notebook_clean(texts, stop)
        naive.append(time.perf_counter() - t0)
    a, b = statistics.median(ours), statistics.median(naive)
    body = "\n".join(
        [
            "## Cleaning speed (`python benchmarks/cleaning.py`)",
            "",
            f"{len(texts):,} real tweets (`test_set.csv` × {args.repeat}), every cleaning step on, one core, median of "
            f"{args.rounds} rounds each, the two cleaners alternating.",
            "",
            "| cleaner | seconds | tweets/s |",
            "| --- | --- | --- |",
            f"| `trainables.preprocess.clean_corpus` | {a:.2f} | {len(texts) / a:,.0f} |",
            f"| notebook style (re.sub chain, per-char accents, stop list) | {b:.2f} | {len(texts) / b:,.0f} |",
            "",
            f"**clean_corpus / notebook style: {a / b:.2f} of the time** ({b / a:.1f}× faster).",
            "",
            f"Machine: {machine_line(1)}.",
        ]
    )
    print(body)
    write_section("cleaning", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
