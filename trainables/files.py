"""Atomic file writing, the one place every file of the project is written through, and strict JSON text.

A file is written to a temporary name in its own folder, given the mode a plain `open()` would give it
(0666 less the umask, so a shared results folder on a cluster stays readable by the group), then renamed
onto its path. A reader sees the previous complete file or the new one, never half of one; a failed write
removes its temporary file and leaves the old file as it was.

Also here: `exclusive_lock`, the lock file that keeps a second process out of a folder being written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


def umask_mode(folder: bool = False) -> int:
    """The mode a new file (0o666) or folder (0o777) gets from `open()` or `mkdir()`: less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)`, then rename the temporary file onto `path`.

    Args:
        path: the file to (re)place; its folder must exist.
        write: writes the whole content to the path it is given.

    Raises:
        OSError: the folder is not writable, or the disk is full; `path` is then untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, umask_mode())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_file(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """`atomic_write` through a binary file object, for writers that change a path (np.save adds ".npy" to it)."""

    def to_file(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            write(fh)

    atomic_write(path, to_file)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically, as UTF-8."""
    write_bytes(path, text.encode("utf-8"))


def _plain(o: Any) -> Any:
    """NaN and infinities as None, numpy scalars as Python numbers, tuples and sets as lists, paths as strings."""
    if hasattr(o, "item") and not hasattr(o, "__len__"):  # numpy scalars
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items()}
    if isinstance(o, list | tuple | set | frozenset):
        return [_plain(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    return o


def json_text(obj: Any, indent: int | None = None) -> str:
    """Strict JSON of `obj`: NaN and infinities become null; numpy scalars, tuples, sets and paths are welcome.

    Raises:
        TypeError: a value JSON cannot hold (say, an object), naming its type.
    """

    def refuse(o: Any) -> Any:
        raise TypeError(f"JSON values only, but got {type(o).__name__}: {o!r}.")

    return json.dumps(_plain(obj), indent=indent, ensure_ascii=False, allow_nan=False, default=refuse)


@contextlib.contextmanager
def exclusive_lock(path: str | Path, busy: Callable[[], Exception]) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created when missing; it holds this process's id) for the block.

    Raises:
        The exception `busy()` returns, at once, when another process holds the lock.
    """
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy() from None
        fh.truncate(0)
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield
