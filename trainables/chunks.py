"""Reading a large CSV file's texts in chunks of rows (for prediction), with the checks and messages of data.py.

Here: `read_text_chunks` and its `TextChunk`, and the stream that decodes the file block by block for pandas'
reader as `read_labelled` decodes a whole file. Not here: the whole-file readers, `DataSpec`, `DataError` and the
error messages shared with them (data.py), what is done with the chunks (study/predict.py, corpus.py).
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trainables.data import (
    BOM,
    CSV_OPTIONS,
    DataSpec,
    check_file,
    empty_file,
    no_rows,
    not_utf8,
    parsed,
    require_column,
    unreadable,
)


@dataclass(frozen=True, eq=False)
class TextChunk:
    """Consecutive data rows of a CSV file read by `read_text_chunks`."""

    texts: list[str]  # the text column, as read (no party prefix)
    parties: list[str] | None  # the party column, stripped; None when not asked for
    ids: pd.DataFrame  # the id columns asked for, as read (strings)
    start: int  # 0-based position of the chunk's first data row in the file
    bytes_read: int  # how far into the file the reader has got (for progress; pandas reads ahead)

    def __len__(self) -> int:
        return len(self.texts)


class _Utf8Text(io.TextIOBase):
    """A CSV file's bytes as the text data.py would parse, decoded block by block for pandas' reader.

    The BOM is dropped, CRLF becomes LF (also when a block ends between the two), and a byte that is not UTF-8
    raises the same DataError as data.py, with the same byte offset and line of the file.
    """

    def __init__(self, fh, path: Path):
        self._fh, self._path = fh, path
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.bytes_read = len(BOM) if fh.read(len(BOM)) == BOM else 0
        fh.seek(self.bytes_read)
        self._newlines = 0  # b"\n" in the bytes read so far
        self._cr = ""  # a block's trailing "\r", held back until the next block shows whether "\n" follows

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        """Up to `size` bytes' worth of text; "" only at the end of the file."""
        while True:
            block = self._fh.read(size if size is not None and size > 0 else -1)
            try:
                text = self._decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                # exc.object is the decoder's buffered bytes (never a newline) followed by `block`
                offset = self.bytes_read - len(exc.object) + len(block) + exc.start
                line = self._newlines + exc.object.count(b"\n", 0, exc.start) + 1
                raise not_utf8(self._path, exc.object[exc.start : exc.start + 1], offset, line) from exc
            self.bytes_read += len(block)
            self._newlines += block.count(b"\n")
            text, self._cr = self._cr + text, ""
            if block and text.endswith("\r"):
                text, self._cr = text[:-1], "\r"
            if text or not block:  # a block of only a held-back "\r" or a partial character: read on
                return text.replace("\r\n", "\n")


def read_text_chunks(
    path: str | Path, spec: DataSpec = DataSpec(), id_columns: Sequence[str] = (), chunk_size: int = 10_000
) -> Iterator[TextChunk]:
    """Reads the texts of a CSV file in chunks of rows, with the checks and messages of `read_labelled`.

    The first chunk is read, and the file and its columns checked, when the first chunk is asked for; a byte
    that is not UTF-8 or a row that cannot be parsed further on raises when its chunk is reached. Every row is
    kept, empty texts too.

    Args:
        path: The CSV file; the same formats as `read_labelled` accepts.
        spec: `text_column`, and `party_column` when `prepend_party` is set (else parties are not read).
        id_columns: Columns passed through as read, e.g. to identify the rows of a prediction.
        chunk_size: Data rows per chunk (the last may hold fewer).

    Yields:
        The chunks in file order.

    Raises:
        DataError: The file is missing, unreadable, empty, not UTF-8 or not parseable, has no data rows, or lacks
            a column asked for.
    """
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be >= 1, but got {chunk_size}.")
    path = Path(path)
    name = str(path)
    check_file(path)
    party = spec.party_column if spec.prepend_party else ""
    try:
        fh = open(path, "rb")  # closed by the `with` below, after the last chunk
    except OSError as exc:
        raise unreadable(name, exc) from exc
    with fh:
        head = fh.read(1 << 16)
        if not head.strip() and len(head) < 1 << 16:
            raise empty_file(name)
        fh.seek(0)
        stream = _Utf8Text(fh, path)  # skips the BOM
        reader = parsed(lambda: pd.read_csv(stream, chunksize=chunk_size, **CSV_OPTIONS), name)
        with reader:
            start = 0
            while (frame := parsed(lambda: next(reader, None), name)) is not None:
                if start == 0:
                    if frame.empty:
                        raise no_rows(name, frame)
                    require_column(frame, spec.text_column, "--text-column", name)
                    if party:
                        require_column(frame, party, "--party-column", name, extra=", or `--party-column ''` for none")
                    for column in id_columns:
                        require_column(frame, column, "--id-columns", name)
                frame = frame.fillna("")
                yield TextChunk(
                    texts=frame[spec.text_column].tolist(),
                    parties=frame[party].str.strip().tolist() if party else None,
                    ids=frame[list(id_columns)].reset_index(drop=True),
                    start=start,
                    bytes_read=stream.bytes_read,
                )
                start += len(frame)
