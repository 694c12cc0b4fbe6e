"""From DataSettings to the study's data: read (or generate) the CSVs, split, then clean/vectors/encode.

Reading validates every input before any work starts (trainables/data.py raises DataError): the labelled files,
every unlabelled file (cleaned once into the token cache, trainables/corpus.py) and a pretrained vectors file
(trainables/pretrained.py; its coverage of the training texts is measured here). Every split keeps rows whose
texts are identical after cleaning together, and `account` counts what was read, dropped and repeated (study.json's
`data.accounting`). `encode` does the expensive part once in the driver; `study_data` bundles what the folds and
the final model read (the final stage, `study.evaluate`, `study.ablate`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from trainables.cache import default_cache_dir
from trainables.corpus import token_corpus
from trainables.data import DataSpec, LabelledData, concat, read_labelled, stratified_split, subset, text_groups
from trainables.data_settings import DataSettings
from trainables.demo import write_demo
from trainables.prepare import EncodedData, Unlabelled, prepare
from trainables.preprocess import CleanConfig, clean_corpus
from trainables.settings import ConfigError
from trainables.vectorize import VectorConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Dataset:
    train: LabelledData
    valid: LabelledData
    test: LabelledData | None  # held out from the search and the final stage; None without a test set
    unlabelled: Unlabelled  # the unlabelled texts (streamed) and pretrained vectors, for the word vectors only
    spec: DataSpec  # how the files were read (the demo data's own columns for the demo)
    train_path: str  # the CSV actually read (the generated demo file when no data was given)
    unlabelled_paths: tuple[str, ...]
    demo: bool
    vectors: dict[str, Any] | None = None  # the pretrained file: path, format, dimension, words kept, coverage
    accounting: dict[str, Any] | None = None  # rows read, dropped and why, identical texts (`account`)

    @property
    def labelled(self) -> LabelledData:
        """Every labelled row the search and the final stage may see: training and validation, never the test."""
        return concat(self.train, self.valid)


@dataclass(frozen=True, eq=False)
class StudyData:
    """What a study's folds and its final model read: the labelled rows and how texts become arrays."""

    labelled: LabelledData  # every row the folds split: training and validation, never the test rows
    unlabelled: Unlabelled  # unlabelled texts and pretrained vectors, for the word vectors only
    clean: CleanConfig
    vectors: VectorConfig  # the study's representation; a candidate's searched settings go on top
    cache_dir: Path | None  # the word-vector cache; None trains every fold's vectors afresh
    spec: DataSpec = DataSpec()  # how the files were read, saved with the final model
    test: LabelledData | None = None  # scored once, by the final model and the baselines; None without one


def study_data(ds: Dataset, s: DataSettings, cache_dir: Path | None = None) -> StudyData:
    """`ds` as its folds see it: every labelled row, `s`'s cleaning and vectors, the word-vector cache."""
    cache_dir = vector_cache_dir() if cache_dir is None else cache_dir
    return StudyData(ds.labelled, ds.unlabelled, s.clean_config(), s.vector_config, cache_dir, ds.spec, ds.test)


def _pretrained(vectors: VectorConfig, clean, train: LabelledData, valid: LabelledData, unlabelled: Unlabelled):
    """The vectors file read and checked, kept to the words of the labelled and unlabelled texts, and its coverage."""
    from trainables.pretrained import coverage, read_vectors_file, restrict

    vectors_file = read_vectors_file(vectors.pretrained, vectors.vector_size)
    tokens = clean_corpus(train.texts, clean)
    words = {w for t in tokens + clean_corpus(valid.texts, clean) for w in t}
    if unlabelled.corpus is not None:
        words |= unlabelled.corpus.words()
    table = restrict(vectors_file, words)
    cover = coverage(table, tokens)
    info = {
        "path": vectors.pretrained,
        "format": vectors_file.format,
        "dimension": vectors_file.dimension,
        "words_in_file": len(vectors_file.keyed.index_to_key),
        "words_kept": len(table.vocab),
        "ngram_buckets_kept": int(len(table.ngrams.ids)) if table.ngrams is not None else 0,
        "coverage": cover,
    }
    line = (
        f"Pretrained vectors {vectors.pretrained} ({vectors_file.format}, {vectors_file.dimension}-d): they cover "
        f"{cover['tokens_found']:.1%} of the training texts' tokens and {cover['types_found']:.1%} of their words"
    )
    if table.ngrams is not None:
        line += f" ({cover['tokens_with_ngrams']:.1%} and {cover['types_with_ngrams']:.1%} with n-gram vectors)"
    log.info(line)
    return Unlabelled(unlabelled.corpus, table, vectors_file.key), info


def load_dataset(s: DataSettings, cache_dir: Path | None = None) -> Dataset:
    """Read and validate every input file (or generate the demo data), then split.

    The test set comes first (`test`, or `test_fraction` of the training file), then the validation split of
    what remains when no `valid` file is given. The unlabelled files are cleaned into the token cache
    (`cache_dir`, default `default_cache_dir()`), unless it holds them already.
    """
    demo = not s.train
    if demo and (s.valid or s.unlabelled or s.test):
        raise ConfigError("`valid`, `unlabelled` and `test` need `train`; give `--train FILE` too, or none of them.")
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    spec, unlabelled_spec, clean = s.data_spec, s.unlabelled_spec(), s.clean_config()
    if demo:
        folder = default_cache_dir() / "demo" / f"rows{s.demo_rows}-seed{s.data_seed}"
        train_path, unlabelled_path = write_demo(folder, n_rows=s.demo_rows, seed=s.data_seed)
        spec = unlabelled_spec = type(spec)()  # the demo data has the original's columns and labels
        unlabelled_paths = (str(unlabelled_path),)
    else:
        train_path, unlabelled_paths = Path(s.train), tuple(s.unlabelled)
    full = read_labelled(train_path, spec)
    test = read_labelled(s.test, spec, classes=full.classes) if s.test else None
    files = {"train": full}
    if s.test_fraction:  # identical texts (after cleaning) stay on one side of every split
        full, test = stratified_split(full, s.test_fraction, seed=s.data_seed, groups=text_groups(full, clean))
    if s.valid:
        valid = read_labelled(s.valid, spec, classes=full.classes)
        files["valid"], train = valid, full
    else:
        train, valid = stratified_split(full, s.valid_fraction, seed=s.data_seed, groups=text_groups(full, clean))
    if s.test:
        files["test"] = test
    test, accounting = account(files, train, valid, test, clean)
    corpus = token_corpus(unlabelled_paths, unlabelled_spec, clean, cache_dir) if unlabelled_paths else None
    unlabelled, vectors = Unlabelled(corpus), None
    if s.vector_config.pretrained:
        unlabelled, vectors = _pretrained(s.vector_config, clean, train, valid, unlabelled)
    return Dataset(train, valid, test, unlabelled, spec, str(train_path), unlabelled_paths, demo, vectors, accounting)


def account(
    files: dict[str, LabelledData], train: LabelledData, valid: LabelledData, test: LabelledData | None, clean
) -> tuple[LabelledData | None, dict[str, Any]]:
    """What was read and dropped, and identical texts (after `clean`) within and across the parts; logged.

    Test rows whose text is also a labelled row's are left out of the test set (the final model trains on every
    labelled row, so they would be scored having been trained on).

    Returns:
        The test set left, and study.json's `data.accounting` block.
    """
    read = [
        {
            "part": part,
            "path": data.source,
            "rows_read": len(data) + data.dropped,
            "dropped_unmapped": data.dropped_unmapped,
            "dropped_empty": data.dropped_empty,
            "rows_kept": len(data),
        }
        for part, data in files.items()
    ]
    for r in read:
        if dropped := r["dropped_unmapped"] + r["dropped_empty"]:
            log.info(
                "Data file %(path)s: %(rows_read)d rows read, %(dropped)d dropped (%(dropped_unmapped)d with a label "
                "outside the label map, %(dropped_empty)d with an empty text), %(rows_kept)d kept",
                r | {"dropped": dropped},
            )
    parts = {"train": train, "valid": valid, **({"test": test} if test is not None else {})}
    texts = {name: [" ".join(t) for t in clean_corpus(d.texts, clean)] for name, d in parts.items()}
    within = {name: len(t) - len(set(t)) for name, t in texts.items()}
    across = {f"{a}/{b}": len(set(texts[a]) & set(texts[b])) for a, b in combinations(parts, 2)}
    left_out = 0
    if test is not None:
        seen = set(texts["train"]) | set(texts["valid"])
        keep = np.array([t not in seen for t in texts["test"]], dtype=bool)
        left_out = int((~keep).sum())
        if left_out:
            log.warning(
                "%d test row(s) have a text (after cleaning) that is also a labelled row's; they are left out of "
                "the test set, which would score them having trained on them",
                left_out,
            )
            test = subset(test, keep)
    if any(within.values()):
        repeated = ", ".join(f"{n} in {part}" for part, n in within.items() if n)
        log.info("Identical texts after cleaning: %s repeated row(s); kept in one fold in every split", repeated)
    if across.get("train/valid"):  # a given `--valid` file; the final stage's folds still keep them together
        log.warning(
            "%d text(s) (after cleaning) are in both the training and the validation file", across["train/valid"]
        )
    accounting = {
        "files": read,
        "sizes": {name: len(d) for name, d in parts.items()} | ({"test": len(test)} if test is not None else {}),
        "duplicates": {"within": within, "across": across},
        "test_rows_left_out": left_out,
    }
    return test, accounting


def encode(ds: Dataset, s: DataSettings, cache_dir: Path | None = None) -> EncodedData:
    """Clean, train (or reuse) the word vectors on training + unlabelled texts, and encode both splits."""
    cache_dir = vector_cache_dir() if cache_dir is None else cache_dir
    return prepare(ds.train, ds.valid, ds.unlabelled, s.clean_config(), s.vector_config, cache_dir)


def vector_cache_dir() -> Path:
    """Where trained word vectors are cached (the token files of unlabelled corpora live beside it)."""
    return default_cache_dir() / "word2vec"
