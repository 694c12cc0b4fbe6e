"""Atomic file writing: the one place every file of the project is written through.

A file is written to a temporary name in its own folder, given the mode a plain `open()` would give it
(0666 less the umask, so a shared results folder on a cluster stays readable by the group), then renamed
onto its path. A reader sees the previous complete file or the new one, never half of one; a failed write
removes its temporary file and leaves the old file as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def umask_mode() -> int:
    """The mode `open()` gives a new file: 0o666 less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


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


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically, as UTF-8."""
    write_bytes(path, text.encode("utf-8"))
