"""Unlabelled text for word vectors: several CSV or .txt files, cleaned once, then streamed from disk.

Here: `file_fingerprint` (what the caches key a file by), `read_texts` (a file's texts in chunks: a CSV's text
column, or a .txt file's lines), `TokenCorpus` (cleaned texts as one byte array of token lines, iterated
afresh on every pass, never held as a list of lists) and `token_corpus` (cleans the files into the cache and
memory-maps the result). Not here: training vectors on it (vectorize.py), labelled files (data.py).

A TokenCorpus pickles as its bytes (about the size of the cleaned text), so one `ray.put` shares it with every
task on a node without a copy.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from trainables.cache import in_use, written
from trainables.chunks import read_text_chunks
from trainables.data import DataError, DataSpec, compose_texts
from trainables.files import atomic_write
from trainables.preprocess import CleanConfig, clean_corpus

log = logging.getLogger(__name__)

TEXT_SUFFIX = ".txt"  # a file with this suffix holds one text per line; any other is read as CSV
CHUNK_ROWS = 10_000  # texts cleaned at a time
CHUNK_BYTES = 1 << 24  # bytes of token lines decoded at a time when iterating
SAMPLE_BYTES = 1 << 20  # a fingerprint hashes this many bytes at the start, middle and end of a file


def file_fingerprint(path: str | Path) -> dict[str, object]:
    """What identifies a file's content for the caches: path, size, mtime and a hash of three 1 MiB samples.

    The samples are the first, middle and last MiB (the whole file when it is under 3 MiB), so a large corpus
    is not read whole on every start; an edit that changes neither the size, nor the mtime, nor a sample is
    not noticed (touching the file is enough to rebuild what depends on it).

    Raises:
        DataError: the path is missing or not a file.
    """
    p = Path(path)
    if not p.is_file():
        what = "does not exist" if not p.exists() else "is not a file"
        raise DataError(f"Unlabelled file {p} {what}; check the path given with `--unlabelled`.")
    stat = p.stat()
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for start in sorted({0, max(0, stat.st_size // 2 - SAMPLE_BYTES // 2), max(0, stat.st_size - SAMPLE_BYTES)}):
            fh.seek(start)
            h.update(fh.read(SAMPLE_BYTES))
    return {
        "path": str(p.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sample_sha256": h.hexdigest(),
    }


def _txt_chunks(path: Path) -> Iterator[list[str]]:
    """A .txt file's non-empty lines (one text each; BOM and CR dropped) in chunks, as UTF-8 or a DataError."""
    chunk: list[str] = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"Unlabelled file {path} is not UTF-8: byte {raw[e.start : e.start + 1]!r} on line {number} "
                    "cannot be decoded. Re-encode it as UTF-8, e.g. "
                    f"`iconv -f cp1253 -t utf-8 {path.name} > fixed.txt`."
                ) from None
            if text.strip():
                chunk.append(text)
            if len(chunk) == CHUNK_ROWS:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _csv_has_column(path: Path, column: str) -> bool:
    """Whether the CSV's header names `column` (the file's other problems are read_text_chunks' to report)."""
    with open(path, "rb") as fh:
        head = fh.readline().removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    import csv

    return column in next(csv.reader([head]), [])


def read_texts(path: str | Path, spec: DataSpec) -> Iterator[list[str]]:
    """The non-empty texts of one unlabelled file in chunks: a .txt file's lines, or a CSV's `spec.text_column`.

    A CSV's texts get their party prefix (as `read_labelled` gives them) when `spec` asks for it and the file has
    the party column; a file without it is read without the prefix, with a warning.

    Raises:
        DataError: the file is missing, unreadable, not UTF-8 or not parseable, or a CSV lacks the text column.
    """
    path = Path(path)
    if path.suffix.lower() == TEXT_SUFFIX:
        yield from _txt_chunks(path)
        return
    if spec.prepend_party and spec.party_column and not _csv_has_column(path, spec.party_column):
        log.warning("No column %r in %s; reading its texts without the party prefix", spec.party_column, path)
        spec = replace(spec, prepend_party=False)
    try:
        for chunk in read_text_chunks(path, spec, chunk_size=CHUNK_ROWS):
            composed = compose_texts(chunk.texts, chunk.parties)  # kept as `read_unlabelled` keeps them: by the text
            yield [c for c, text in zip(composed, chunk.texts, strict=True) if text.strip()]
    except DataError as e:
        raise DataError(str(e).replace("`--text-column`", "`--unlabelled-text-column`")) from None


@dataclass(frozen=True, eq=False)
class TokenCorpus:
    """Cleaned texts as lines of space-separated tokens in one UTF-8 byte array; iterating reads it afresh.

    Iterating yields each non-empty text's tokens; it can be repeated (Word2Vec and FastText make several
    passes) and never builds the whole list.
    """

    data: np.ndarray  # (B,) uint8: "tok tok\n" per text; memory-mapped from the cache, or in memory
    n_texts: int  # non-empty texts read (some may have no token left after cleaning)
    n_tokens: int
    longest: int  # tokens in the longest text
    key: str  # hash of what the tokens came from: the files' fingerprints, columns and cleaning
    clean: CleanConfig  # the cleaning the tokens went through

    def __iter__(self) -> Iterator[list[str]]:
        return self.lines(skip_empty=True)

    def lines(self, skip_empty: bool = False) -> Iterator[list[str]]:
        """Each text's tokens in order; texts left with no token are [] unless `skip_empty`."""
        rest = b""
        for start in range(0, len(self.data), CHUNK_BYTES):
            lines = (rest + self.data[start : start + CHUNK_BYTES].tobytes()).split(b"\n")
            rest = lines.pop()  # "" after the last newline, or the start of a line the next block ends
            for line in lines:
                if line or not skip_empty:
                    yield line.decode("utf-8").split(" ") if line else []

    def words(self) -> set[str]:
        """Every distinct token (one pass)."""
        return {w for tokens in self for w in tokens}

    def __reduce__(self):  # a memory map pickles as its bytes, not as a path that another node may lack
        return (TokenCorpus, (np.asarray(self.data), self.n_texts, self.n_tokens, self.longest, self.key, self.clean))


def _encode_lines(tokens: Sequence[Sequence[str]]) -> bytes:
    return "".join(" ".join(t) + "\n" for t in tokens).encode("utf-8")


def tokens_corpus(tokens: Sequence[Sequence[str]], clean: CleanConfig) -> TokenCorpus:
    """A small in-memory TokenCorpus of tokenised texts (for texts that are already in memory)."""
    data = np.frombuffer(_encode_lines(tokens), dtype=np.uint8)
    h = hashlib.sha256(data.tobytes())
    h.update(repr(asdict(clean)).encode())
    lengths = [len(t) for t in tokens]
    return TokenCorpus(data, len(tokens), sum(lengths), max(lengths, default=0), h.hexdigest()[:20], clean)


def corpus_key(paths: Sequence[str | Path], spec: DataSpec, clean: CleanConfig) -> str:
    """The hash of what a TokenCorpus of `paths` depends on: each file's fingerprint, the columns, the cleaning."""
    h = hashlib.sha256()
    for path in paths:
        h.update(repr(sorted(file_fingerprint(path).items())).encode())
    h.update(repr((spec.text_column, spec.party_column, spec.prepend_party, asdict(clean))).encode())
    return h.hexdigest()[:20]


def token_corpus(
    paths: Sequence[str | Path], spec: DataSpec, clean: CleanConfig, cache_dir: Path | None
) -> TokenCorpus:
    """Clean the unlabelled files into token lines, file by file and chunk by chunk, and memory-map the result.

    The token file is kept in `cache_dir/corpus/` under `corpus_key` and reused while every file is unchanged;
    without a cache folder it goes to a temporary file.

    Args:
        paths: CSV files (their `spec.text_column`) and .txt files (one text per line), in order.
        spec: the text column, and the party prefix for CSV files that have the party column.
        clean: the cleaning of the training texts.

    Raises:
        DataError: a file is missing, unreadable, not UTF-8, not parseable, lacks the text column, or has no
            non-empty text.
    """
    import tempfile

    key = corpus_key(paths, spec, clean)
    folder = Path(cache_dir) / "corpus" if cache_dir is not None else Path(tempfile.mkdtemp(prefix="corpus-"))
    path, counts = folder / f"{key}.tokens", folder / f"{key}.counts"
    with in_use(path):  # the cache entry, held as in use (trainables/cache.py)
        if not (path.is_file() and counts.is_file()):
            folder.mkdir(parents=True, exist_ok=True)
            _clean_into(path, counts, paths, spec, clean)
            written(path)
        n_texts, n_tokens, longest = (int(v) for v in counts.read_text().split())
        data = np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)
        return TokenCorpus(data, n_texts, n_tokens, longest, key, clean)


def _clean_into(path: Path, counts: Path, paths: Sequence[str | Path], spec: DataSpec, clean: CleanConfig) -> None:
    """Clean the files' texts into token lines at `path`, and their counts (texts, tokens, longest) at `counts`."""
    totals = [0, 0, 0]  # texts, tokens, longest

    def write(tmp: str) -> None:
        with open(tmp, "wb") as out:
            for p in paths:
                texts_in_file = 0
                for chunk in read_texts(p, spec):
                    tokens = clean_corpus(chunk, clean)
                    out.write(_encode_lines(tokens))
                    texts_in_file += len(chunk)
                    totals[0] += len(tokens)
                    totals[1] += sum(len(t) for t in tokens)
                    totals[2] = max([totals[2], *(len(t) for t in tokens)])
                if not texts_in_file:
                    column = "its lines" if Path(p).suffix.lower() == TEXT_SUFFIX else f"column {spec.text_column!r}"
                    raise DataError(
                        f"Unlabelled file {p}: every text in {column} is empty; check the file and "
                        "`--unlabelled-text-column`."
                    )

    atomic_write(path, write)
    atomic_write(counts, lambda tmp: Path(tmp).write_text(" ".join(map(str, totals))))
