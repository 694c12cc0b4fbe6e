"""Reading labelled and unlabelled tweet CSV files, validated up front, plus seeded splits and subsets.

Here: `DataSpec` (which columns, how labels map to classes, what to do with bad rows), `read_labelled`,
`read_unlabelled`, `compose_texts` (the party prefix), `text_groups` (rows of the same cleaned text),
`group_stratified` / `stratified_split` (seeded splits that keep such rows together) and `subset`, and the `DataError`
messages every reader of a CSV file shares. Not here: a large file's texts in chunks of rows, for prediction
(chunks.py), text cleaning (preprocess.py), tokenising and vectorising (vectorize.py).

Every problem with an input file raises one `DataError` before any work is done. Its message names the file,
the column or rows at fault, and the fix (usually a command-line flag). Rows are reported as "data row N":
1-based, counting data records after the header, so a quoted multi-line tweet is one row. This differs from the
file's line numbers whenever a tweet spans several lines, which is why line numbers are not used.

Identifier columns such as `New_ID` are never read into labelled data: in the Greek election data the id
encodes the label.
"""

from __future__ import annotations

import difflib
import io
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from trainables.settings import setting

log = logging.getLogger(__name__)

EMPTY_TEXTS_CHOICES = ("refuse", "drop")
_MAX_LISTED = 5  # how many bad rows or values an error message lists
_T = TypeVar("_T")


class DataError(ValueError):
    """Bad input data; the message names the file, the row or column, and the fix."""


@dataclass(frozen=True)
class DataSpec:
    """How to read a tweet CSV file: which columns to use and how to treat labels and empty texts."""

    text_column: str = setting("data", "Text", "column with the tweet text")
    label_column: str = setting("data", "Sentiment", "column with the label")
    party_column: str = setting("data", "Party", "column with the party ('' for none)")
    label_map: tuple[tuple[str, str], ...] = setting(  # raw label value (as str) -> class name; (): labels as they are
        "data", (), "raw label to class name, e.g. '-1=NEGATIVE,0=NEUTRAL,1=POSITIVE' or '0=neutral,1=anti,2=pro'"
    )
    drop_unmapped: bool = setting(
        "data", False, "drop rows whose label is outside --label-map instead of refusing the file"
    )
    empty_texts: str = setting("data", "refuse", "what to do with empty or whitespace-only texts: refuse or drop")
    prepend_party: bool = setting("data", True, "put the party name before the text, as the original work did")

    def __post_init__(self) -> None:
        if self.empty_texts not in EMPTY_TEXTS_CHOICES:
            raise ValueError(f"`empty_texts` must be one of {EMPTY_TEXTS_CHOICES}, but got {self.empty_texts!r}.")
        for name in ("text_column", "label_column"):
            if not getattr(self, name):
                raise ValueError(f"`{name}` must be a non-empty column name, but got ''.")
        if self.party_column and self.party_column == self.text_column:
            raise ValueError(
                f"`party_column` must differ from `text_column`, but both are {self.text_column!r}; "
                "use party_column='' for no party column."
            )
        if not isinstance(self.label_map, tuple):
            raise ValueError(f"`label_map` must be a tuple of (raw, class) pairs, but got {self.label_map!r}.")
        for pair in self.label_map:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(s, str) and s for s in pair)):
                raise ValueError(f"`label_map` entries must be (raw, class) pairs of non-empty str, but got {pair!r}.")
        raws = [raw for raw, _ in self.label_map]
        repeated = sorted({raw for raw in raws if raws.count(raw) > 1})
        if repeated:
            raise ValueError(f"`label_map` raw labels must be unique, but {repeated} appear more than once.")


def parse_label_map(spec: str) -> tuple[tuple[str, str], ...]:
    """A command-line label map such as "-1=NEGATIVE,0=NEUTRAL,1=POSITIVE" as `DataSpec.label_map`'s (raw, class)
    pairs, in the order given.

    Args:
        spec: Comma-separated `raw=class` items; whitespace around items and names is ignored, and so are
            empty items (a trailing comma). The empty string means no map.

    Raises:
        ValueError: An item is not of the form `raw=class`, or a raw label appears twice.
    """
    pairs: list[tuple[str, str]] = []
    for item in spec.split(","):
        if not item.strip():
            continue
        raw, sep, name = (part.strip() for part in item.partition("="))
        if not sep or not raw or not name or "=" in name:
            raise ValueError(
                f"`--label-map` items must have the form raw=class (e.g. '0=neutral,1=anti,2=pro'), "
                f"but got the item {item.strip()!r} in {spec!r}."
            )
        if raw in (r for r, _ in pairs):
            raise ValueError(f"`--label-map` raw labels must be unique, but {raw!r} appears twice in {spec!r}.")
        pairs.append((raw, name))
    return tuple(pairs)


def format_label_map(pairs: tuple[tuple[str, str], ...]) -> str:
    """The command-line form of a label map: `parse_label_map`'s inverse."""
    return ",".join(f"{raw}={name}" for raw, name in pairs)


@dataclass(frozen=True, eq=False)  # eq=False: a generated __eq__ would compare numpy arrays ambiguously
class LabelledData:
    """Texts with integer labels; `labels[i]` indexes `classes`."""

    texts: tuple[str, ...]  # after the optional party prefix
    labels: np.ndarray  # (N,) int64, indices into classes
    classes: tuple[str, ...]
    parties: tuple[str, ...] | None  # None when the spec has no party column
    source: str  # the file path, for messages and fingerprints
    dropped_unmapped: int = 0  # rows dropped while reading the source: a label outside the label map
    dropped_empty: int = 0  # rows dropped while reading the source: an empty or whitespace-only text

    def __post_init__(self) -> None:
        assert self.labels.ndim == 1 and self.labels.dtype == np.int64, self.labels.dtype
        assert len(self.texts) == len(self.labels), (len(self.texts), len(self.labels))
        assert self.parties is None or len(self.parties) == len(self.texts)
        assert len(self.labels) == 0 or 0 <= self.labels.min() <= self.labels.max() < len(self.classes)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def dropped(self) -> int:
        """Rows of the source dropped while reading it, for any reason."""
        return self.dropped_unmapped + self.dropped_empty


def _rows(positions: np.ndarray) -> str:
    """Formats 0-based row positions as '2, 5, 9 (and 3 more)' using 1-based data row numbers."""
    shown = ", ".join(str(int(p) + 1) for p in positions[:_MAX_LISTED])
    more = len(positions) - _MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")


def check_file(path: Path) -> None:
    """Raises the DataError for a path that is missing or a directory."""
    if not path.exists():
        raise DataError(f"Data file {path} does not exist; check the path (relative paths start at {Path.cwd()}).")
    if path.is_dir():
        raise DataError(f"Data file {path} is a directory, not a file; give the path of a CSV file inside it.")


def unreadable(name: str, exc: OSError) -> DataError:
    """The error for a file that exists but cannot be read."""
    return DataError(f"Data file {name} cannot be read ({exc}); check its permissions.")


def empty_file(name: str) -> DataError:
    """The error for a file with nothing but whitespace in it."""
    return DataError(f"Data file {name} is empty; it needs a header line and at least one data row.")


def not_utf8(path: Path, bad: bytes, offset: int, line: int) -> DataError:
    """The error for the byte `bad` at byte `offset` (on 1-based `line` of the file) that is not UTF-8."""
    return DataError(
        f"Data file {path} is not UTF-8: byte {bad!r} at byte offset {offset} "
        f"(line {line} of the file) cannot be decoded. Re-encode the file as UTF-8, "
        f"e.g. `iconv -f cp1253 -t utf-8 {path.name} > fixed.csv` for Greek Windows text."
    )


def no_rows(name: str, frame: pd.DataFrame) -> DataError:
    """The error for a file with a header but no data rows."""
    return DataError(
        f"Data file {name} has a header ({', '.join(map(str, frame.columns))}) but no data rows; "
        "add rows or pick another file."
    )


CSV_OPTIONS = {"dtype": str, "keep_default_na": False, "index_col": False}  # strings only, never NaN
BOM = b"\xef\xbb\xbf"


def parsed(parse: Callable[[], _T], name: str) -> _T:
    """`parse()` with pandas' parse failures turned into the DataError for file `name`.

    A row longer than the header counts as a failure: pandas would otherwise drop its extra fields silently.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return parse()
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError) as exc:
        detail = str(exc).strip().removeprefix("Error tokenizing data. C error: ")  # pandas' own prefix
        raise DataError(
            f"Data file {name} cannot be parsed as CSV: {detail}. Check that it is "
            "comma-separated, that every row has as many fields as the header, and that quotes inside texts "
            'are doubled ("").'
        ) from exc


def _read_frame(path: str | Path) -> tuple[pd.DataFrame, str]:
    """Reads a CSV file as strings only (no NaN), turning every read or parse failure into a `DataError`."""
    path = Path(path)
    name = str(path)
    check_file(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise unreadable(name, exc) from exc
    if not raw.strip():
        raise empty_file(name)
    skip = len(BOM) if raw.startswith(BOM) else 0
    try:
        text = raw[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + skip
        raise not_utf8(path, raw[offset : offset + 1], offset, raw.count(b"\n", 0, offset) + 1) from exc
    text = text.replace("\r\n", "\n")  # CRLF files and CRLF inside quoted tweets read like LF ones
    frame = parsed(lambda: pd.read_csv(io.StringIO(text), **CSV_OPTIONS), name)
    if frame.empty:
        raise no_rows(name, frame)
    return frame.fillna(""), name  # fields missing at the end of a short row


def require_column(frame: pd.DataFrame, column: str, flag: str, name: str, extra: str = "") -> None:
    """Raise a DataError naming the columns present (and a close match) when `frame` has no `column`."""
    if column in frame.columns:
        return
    present = [str(c) for c in frame.columns]
    close = difflib.get_close_matches(column, present, n=1, cutoff=0.6) or [
        c for c in present if c.strip().lower() == column.strip().lower()
    ]
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise DataError(
        f"Data file {name} has no column {column!r}; the columns present are {present}.{hint} "
        f"Name the right one with `{flag}`{extra}."
    )


def compose_texts(texts: Sequence[str], parties: Sequence[str] | None) -> list[str]:
    """The texts a model reads, in order: f"{party} {text}" where a row has a (non-empty) party, else the text.

    `parties` holds one party per text (already stripped), or is None for no prefix.
    """
    if parties is None:
        return list(texts)
    return [f"{p} {t}" if p else t for p, t in zip(parties, texts, strict=True)]


def read_labelled(
    path: str | Path, spec: DataSpec = DataSpec(), classes: tuple[str, ...] | None = None
) -> LabelledData:
    """Reads a labelled tweet CSV file and checks it before returning anything.

    Labels are read as strings, so "0" and "-1" match a label map's raw values exactly (surrounding
    whitespace is ignored). Class order: with a label map, the map's class names in map order (deduplicated);
    without one, the sorted unique label values; with `classes` given, exactly those.

    Args:
        path: The CSV file; UTF-8 with or without a BOM, LF or CRLF, quoted multi-line texts allowed (CRLF
            inside texts becomes LF).
        spec: Columns and policies for labels and empty texts.
        classes: The class names to use, e.g. the training file's when reading a validation file; every label
            (after mapping) must be among them.

    Returns:
        The texts (party-prefixed when `spec.prepend_party` and a party column is set), integer labels,
        classes, parties and how many rows were dropped.

    Raises:
        DataError: The file is missing, unreadable, not UTF-8, not parseable, has no data rows or lacks a
            needed column; labels fall outside the label map (unless `spec.drop_unmapped`) or outside
            `classes`; texts are empty (unless `spec.empty_texts == "drop"`); no rows remain; or fewer than
            two classes remain (checked only when `classes` is not given).
    """
    frame, name = _read_frame(path)
    require_column(frame, spec.text_column, "--text-column", name)
    require_column(frame, spec.label_column, "--label-column", name)
    if spec.party_column:
        require_column(frame, spec.party_column, "--party-column", name, extra=", or `--party-column ''` for none")
    if classes is not None:
        classes = tuple(classes)
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"`classes` must hold at least two distinct names, but got {classes}.")

    raw_labels = frame[spec.label_column].str.strip()
    keep = np.ones(len(frame), dtype=bool)
    if spec.label_map:
        mapping = dict(spec.label_map)
        mapped = raw_labels.map(mapping)
        unmapped = np.flatnonzero(mapped.isna().to_numpy())
        if len(unmapped) and not spec.drop_unmapped:
            listed = ", ".join(f"{raw_labels.iloc[i]!r} (data row {i + 1})" for i in unmapped[:_MAX_LISTED])
            more = f" and {len(unmapped) - _MAX_LISTED} more" if len(unmapped) > _MAX_LISTED else ""
            raise DataError(
                f"Data file {name}: {len(unmapped)} label(s) in column {spec.label_column!r} are not in the "
                f"label map {list(mapping)}: {listed}{more}. Extend `--label-map`, or pass `--drop-unmapped` "
                "to drop those rows."
            )
        keep[unmapped] = False
        labels_str = mapped.fillna("")
    else:
        missing = np.flatnonzero((raw_labels == "").to_numpy())
        if len(missing):
            raise DataError(
                f"Data file {name}: {len(missing)} row(s) have an empty label in column "
                f"{spec.label_column!r}, at data row(s) {_rows(missing)}. Fill them in, or give "
                "`--label-map` with `--drop-unmapped` to drop rows whose label is not in the map."
            )
        labels_str = raw_labels

    if classes is not None:
        unknown_mask = keep & ~labels_str.isin(classes).to_numpy()
        if unknown_mask.any():
            unknown = sorted(set(labels_str[unknown_mask]))
            raise DataError(
                f"Data file {name}: labels {unknown} (at data row(s) {_rows(np.flatnonzero(unknown_mask))}) "
                f"are not among the known classes {list(classes)}. Make the file use the same labels as the "
                "training data, or give the same `--label-map` for both files."
            )

    dropped_unmapped = int((~keep).sum())
    empty = keep & (frame[spec.text_column].str.strip() == "").to_numpy()
    if empty.any() and spec.empty_texts == "refuse":
        positions = np.flatnonzero(empty)
        raise DataError(
            f"Data file {name}: {len(positions)} text(s) in column {spec.text_column!r} are empty or "
            f"whitespace only, at data row(s) {_rows(positions)}. Remove those rows, or pass "
            "`--empty-texts drop` to drop them."
        )
    keep &= ~empty

    present = sorted(set(labels_str[keep]))
    dropped = int((~keep).sum())
    if not keep.any() or (len(present) < 2 and classes is None):
        raise DataError(
            f"Data file {name}: {f'after dropping {dropped} row(s), ' if dropped else ''}{int(keep.sum())} "
            f"row(s) remain with {len(present)} class(es) {present}; at least two classes are needed. "
            "Check `--label-column` and `--label-map`, or use a larger file."
        )
    if classes is None:  # a label map's class names in map order, else the labels present
        classes = tuple(dict.fromkeys(c for _, c in spec.label_map)) or tuple(present)
        absent = [c for c in classes if c not in present]  # only a label map's classes can be absent
        if absent:
            log.warning("No rows of class(es) %s in %s", absent, name)

    kept = frame.loc[keep]
    parties = kept[spec.party_column].str.strip().tolist() if spec.party_column else None
    return LabelledData(
        texts=tuple(compose_texts(kept[spec.text_column].tolist(), parties if spec.prepend_party else None)),
        labels=labels_str[keep].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64),
        classes=classes,
        parties=tuple(parties) if parties is not None else None,
        source=name,
        dropped_unmapped=dropped_unmapped,
        dropped_empty=dropped - dropped_unmapped,
    )


def read_unlabelled(path: str | Path, spec: DataSpec = DataSpec()) -> list[str]:
    """Reads the texts of a CSV file without labels, e.g. extra text for training word vectors.

    Only the text column is needed. When `spec` names a party column, `spec.prepend_party` is set and the file
    has that column, texts get the party prefix as in `read_labelled`; a file without it is read without the
    prefix (with a warning). Empty and whitespace-only texts are dropped silently.

    Args:
        path: The CSV file; the same formats as `read_labelled` accepts.
        spec: Columns to use; its label settings are ignored.

    Returns:
        The texts in file order.

    Raises:
        DataError: The file is missing, unreadable, not UTF-8, not parseable, has no data rows, lacks the text
            column, or has only empty texts.
    """
    frame, name = _read_frame(path)
    require_column(frame, spec.text_column, "--text-column", name)
    texts = frame[spec.text_column]
    keep = (texts.str.strip() != "").to_numpy()
    if not keep.any():
        raise DataError(
            f"Data file {name}: all {len(frame)} text(s) in column {spec.text_column!r} are empty; "
            "check `--text-column`."
        )
    parties = None
    if spec.party_column and spec.prepend_party:
        if spec.party_column in frame.columns:
            parties = frame.loc[keep, spec.party_column].str.strip().tolist()
        else:
            log.warning("No column %r in %s; reading its texts without the party prefix", spec.party_column, name)
    return compose_texts(texts[keep].tolist(), parties)


def concat(a: LabelledData, b: LabelledData) -> LabelledData:
    """The rows of `a` followed by those of `b` (same classes), e.g. to undo a train/valid split."""
    if a.classes != b.classes:
        raise ValueError(f"classes {a.classes} and {b.classes} differ; they must be the same to concatenate.")
    return replace(
        a,
        texts=a.texts + b.texts,
        labels=np.concatenate([a.labels, b.labels]),
        parties=a.parties + b.parties if a.parties is not None and b.parties is not None else None,
        dropped_unmapped=a.dropped_unmapped + b.dropped_unmapped,
        dropped_empty=a.dropped_empty + b.dropped_empty,
    )


def subset(data: LabelledData, index: np.ndarray) -> LabelledData:
    """Selects rows of `data` by (K,) integer positions (any order, repeats allowed) or an (N,) boolean mask.

    The rows keep the classes, source and `dropped_*` (which describe reading the source).
    """
    index = np.asarray(index)
    if index.dtype == bool:
        if index.shape != (len(data),):
            raise ValueError(f"A boolean `index` must have shape ({len(data)},), but got {index.shape}.")
        index = np.flatnonzero(index)
    if index.ndim != 1 or not (index.size == 0 or np.issubdtype(index.dtype, np.integer)):
        raise ValueError(
            f"`index` must be 1-D integer positions or a boolean mask, but got {index.dtype} with shape {index.shape}."
        )
    return replace(
        data,
        texts=tuple(data.texts[i] for i in index.tolist()),
        labels=data.labels[index.astype(np.int64)],
        parties=tuple(data.parties[i] for i in index.tolist()) if data.parties is not None else None,
    )


def text_groups(data: LabelledData, clean=None) -> np.ndarray:
    """(N,) int64 group ids, numbered in order of first appearance: rows whose texts are identical after
    cleaning (`clean`, a CleanConfig) share one, so data without such rows gets 0, 1, 2, ..."""
    from trainables.preprocess import CleanConfig, clean_corpus

    cleaned = [" ".join(t) for t in clean_corpus(data.texts, clean or CleanConfig())]
    return pd.factorize(pd.Series(cleaned, dtype=object))[0].astype(np.int64)


def group_stratified(
    labels: np.ndarray, groups: np.ndarray | None, split: Callable[[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A stratified `split` of the groups' first rows, spread to every row: no group straddles two parts.

    A group is labelled by its first row (identical texts with different labels are noise the split cannot
    mend); without `groups` every row is its own group, so the split is `split(labels)` itself.

    Args:
        labels: (N,) class indices.
        groups: (N,) group ids (`text_groups`), or None.
        split: stratified positions of the given (G,) group labels: a list of (part_a, part_b) position pairs.

    Returns:
        The (part_a, part_b) pairs as sorted row positions.
    """
    if groups is None:
        groups = np.arange(len(labels))
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)  # group i's first row, row -> i
    inverse = inverse.reshape(-1)
    return [(np.flatnonzero(np.isin(inverse, a)), np.flatnonzero(np.isin(inverse, b))) for a, b in split(labels[first])]


def stratified_split(
    data: LabelledData, valid_fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[LabelledData, LabelledData]:
    """Splits `data` into training and validation parts with the same class proportions.

    Args:
        valid_fraction: Share of rows (of groups, with `groups`) that go to the validation part, in (0, 1).
        seed: Seed for the shuffle; the same seed gives the same split.
        groups: (N,) group ids (`text_groups`): rows of one group land in the same part. None: every row alone.

    Returns:
        (train, valid).

    Raises:
        ValueError: `valid_fraction` is outside (0, 1).
        DataError: Some class has too few rows, or the data too few rows, for a stratified split.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"`valid_fraction` must be in (0, 1), but got {valid_fraction}.")
    from sklearn.model_selection import train_test_split  # here, not at the top: trial processes never need it

    def split(labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        return [train_test_split(np.arange(len(labels)), test_size=valid_fraction, random_state=seed, stratify=labels)]

    try:
        [(train, valid)] = group_stratified(data.labels, groups, split)
    except ValueError as exc:
        first = np.unique(groups, return_index=True)[1] if groups is not None else np.arange(len(data))
        counts = dict(
            zip(data.classes, np.bincount(data.labels[first], minlength=len(data.classes)).tolist(), strict=True)
        )
        few = [c for c, n in counts.items() if n < 2]
        reason = f"class(es) {few} have fewer than two rows" if few else str(exc)  # sklearn's names indices
        if len(first) < len(data):
            reason += f"; identical texts after cleaning count once and stay on one side: {len(first)} distinct"
        raise DataError(
            f"Data file {data.source}: cannot split {len(data)} rows with class counts {counts} into a "
            f"stratified validation fraction of {valid_fraction} ({reason}). Every class needs at least two "
            "rows and the validation part at least one row per class; use more data or another "
            "`--valid-fraction`."
        ) from exc
    return subset(data, train), subset(data, valid)
