"""From DataSettings to the study's data: read (or generate) the CSVs, split, then clean/Word2Vec/encode.

Reading validates every file before any work starts (trainables/data.py raises DataError); `encode` does the
expensive part once in the driver.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from study.config import ConfigError, DataSettings
from trainables.data import DataSpec, LabelledData, concat, read_labelled, read_unlabelled, stratified_split
from trainables.demo import write_demo
from trainables.prepare import EncodedData, prepare
from trainables.vectorize import default_cache_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Dataset:
    train: LabelledData
    valid: LabelledData
    test: LabelledData | None  # held out from the search and the final stage; None without a test set
    unlabelled: tuple[str, ...]
    spec: DataSpec  # how the files were read (the demo data's own columns for the demo)
    train_path: str  # the CSV actually read (the generated demo file when no data was given)
    unlabelled_path: str
    demo: bool

    @property
    def labelled(self) -> LabelledData:
        """Every labelled row the search and the final stage may see: training and validation, never the test."""
        return concat(self.train, self.valid)


def load_dataset(s: DataSettings) -> Dataset:
    """Read and validate every input file (or generate the demo data), then split.

    The test set comes first (`test`, or `test_fraction` of the training file), then the validation split of
    what remains when no `valid` file is given.
    """
    demo = not s.train
    if demo and (s.valid or s.unlabelled or s.test):
        raise ConfigError("`valid`, `unlabelled` and `test` need `train`; give `--train FILE` too, or none of them.")
    spec = s.data_spec()
    if demo:
        folder = default_cache_dir() / "demo" / f"rows{s.demo_rows}-seed{s.data_seed}"
        train_path, unlabelled_path = write_demo(folder, n_rows=s.demo_rows, seed=s.data_seed)
        spec = type(spec)()  # the demo data has the original's columns and labels
    else:
        train_path, unlabelled_path = Path(s.train), Path(s.unlabelled) if s.unlabelled else None
    full = read_labelled(train_path, spec)
    test = read_labelled(s.test, spec, classes=full.classes) if s.test else None
    if s.test_fraction:
        full, test = stratified_split(full, s.test_fraction, seed=s.data_seed)
    if s.valid:
        valid = read_labelled(s.valid, spec, classes=full.classes)
        train = full
    else:
        train, valid = stratified_split(full, s.valid_fraction, seed=s.data_seed)
    unlabelled = tuple(read_unlabelled(unlabelled_path, spec)) if unlabelled_path else ()
    return Dataset(train, valid, test, unlabelled, spec, str(train_path), str(unlabelled_path or ""), demo)


def encode(ds: Dataset, s: DataSettings, cache_dir: Path | None = None) -> EncodedData:
    """Clean, train (or reuse) Word2Vec on training + unlabelled texts, and encode both splits."""
    cache_dir = default_cache_dir() / "word2vec" if cache_dir is None else cache_dir
    return prepare(ds.train, ds.valid, ds.unlabelled, s.clean_config(), s.vector_config(), cache_dir)
