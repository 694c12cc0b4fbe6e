"""The cache on disk: its entries, their last use, a size bound kept by evicting the least recently used entries,
and the locks that keep an entry in use from being removed.

The cache folder (`default_cache_dir()`: `$RNN_STUDY_CACHE`, else ~/.cache/rnn-sentiment-studies) holds

    word2vec/<kind>-<fingerprint>.npz    trained word vectors (vectorize.py)
    corpus/<key>.tokens, <key>.counts    an unlabelled corpus cleaned into token lines (corpus.py), one entry
    demo/rows<N>-seed<S>/                the built-in demo data set's CSV files (demo.py), one entry

An entry is named by its subfolder and its file name up to the first dot (`word2vec/fasttext-3f2a...`). A process
that uses an entry holds a shared `fcntl` lock on the entry's lock file (`.<name>.lock` beside it) while it
reads or writes it (`in_use`), or for a whole study (`pinned`); touching that lock file records the entry's last
use (the entry's own files keep their times: a demo file's is part of a cache key). Whenever an entry is
written (`written`), the least recently used entries that no process holds are removed until the cache is within
its bound (`RNN_STUDY_CACHE_MAX`, default 5GB): the cache ends past the bound only by entries in use.

Only the cache folder is managed so; a folder that code passes explicitly elsewhere is left as it is.
Not here: what an entry holds (vectorize.py, corpus.py, demo.py), the `python -m study.cache` command.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CACHE_VARIABLE, MAX_VARIABLE = "RNN_STUDY_CACHE", "RNN_STUDY_CACHE_MAX"
DEFAULT_MAX = "5GB"
UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
         "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}  # fmt: skip
LOCK_SUFFIX = ".lock"

_pins: list[IO] | None = None  # the lock files held for the block of `pinned`, when one is active


def default_cache_dir() -> Path:
    """`$RNN_STUDY_CACHE`, else ~/.cache/rnn-sentiment-studies: word vectors, token files, the demo data."""
    env = os.environ.get(CACHE_VARIABLE)
    return Path(env) if env else Path.home() / ".cache" / "rnn-sentiment-studies"


def parse_size(text: str) -> int | None:
    """Bytes of a size such as "5GB", "500MB", "2.5G" or "1GiB" (decimal units, or binary with "i"); "0" or
    "none": no bound (None).

    Raises:
        ValueError: anything else, naming `$RNN_STUDY_CACHE_MAX`, the value and the fix.
    """
    value = text.strip().lower()
    if value in ("0", "none"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]i?)?b?", value)
    if not match or not match.group(2) and not value.endswith("b"):
        raise ValueError(
            f"`{MAX_VARIABLE}` must be a size with a unit such as 5GB, 500MB or 2.5GiB (0 or none: no bound), but "
            f"got {text!r}; set it to one, e.g. `export {MAX_VARIABLE}=5GB`."
        )
    return int(float(match.group(1)) * UNITS[match.group(2) or ""])


def max_bytes() -> int | None:
    """The cache's bound in bytes from `$RNN_STUDY_CACHE_MAX` (default 5GB); None: no bound. A value that
    `parse_size` refuses raises its ValueError."""
    return parse_size(os.environ.get(MAX_VARIABLE) or DEFAULT_MAX)


@dataclass(frozen=True)
class CacheEntry:
    name: str  # "<subfolder>/<file name up to its first dot>", e.g. word2vec/fasttext-3f2a91c0
    paths: tuple[Path, ...]  # its files and folders
    size: int  # bytes of its files
    last_used: float  # Unix time of its last use (`in_use`; else of its newest file)


def _key(path: Path) -> tuple[Path, str]:
    return path.parent, path.name.split(".", 1)[0]


def _lock_path(path: Path) -> Path:
    folder, stem = _key(path)
    return folder / f".{stem}{LOCK_SUFFIX}"


def managed(path: str | Path) -> Path | None:
    """The cache folder when `path` is an entry's file or folder inside it (`<cache>/<sub>/<item>`), else None."""
    root = default_cache_dir().absolute()
    return root if Path(path).absolute().parent.parent == root else None


def _size(path: Path) -> tuple[int, float]:
    """(bytes, newest mtime) of a file or of every file under a folder."""
    try:
        stats = [p.lstat() for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path.lstat()]
        return sum(st.st_size for st in stats), max([st.st_mtime for st in stats], default=path.lstat().st_mtime)
    except OSError:  # removed meanwhile
        return 0, 0.0


def entries(root: str | Path | None = None) -> list[CacheEntry]:
    """Every entry of the cache folder `root` (default: `default_cache_dir()`), the least recently used first."""
    root = Path(root) if root is not None else default_cache_dir()
    groups: dict[tuple[Path, str], list[Path]] = {}
    for item in sorted(root.glob("[!.]*/[!.]*")):  # <sub>/<item>; hidden ones (locks, files being written) left out
        groups.setdefault(_key(item), []).append(item)
    out = []
    for (folder, stem), paths in groups.items():
        sizes = [_size(p) for p in paths]
        try:
            last = _lock_path(paths[0]).stat().st_mtime
        except OSError:  # never used through `in_use`
            last = max(t for _, t in sizes)
        out.append(CacheEntry(f"{folder.name}/{stem}", tuple(paths), sum(s for s, _ in sizes), last))
    return sorted(out, key=lambda e: (e.last_used, e.name))


def _open_lock(path: Path, flags: int) -> IO | None:
    """The entry's lock file, opened and locked (`flags`), or None where LOCK_NB finds it held."""
    lock = _lock_path(path)
    while True:
        fh = open(lock, "a+")  # noqa: SIM115 - returned open, closed by the caller
        try:
            fcntl.flock(fh, flags)
        except BlockingIOError:
            fh.close()
            return None
        with contextlib.suppress(FileNotFoundError):  # removed with its entry while this process waited for it
            if os.fstat(fh.fileno()).st_ino == os.stat(lock).st_ino:
                return fh
        fh.close()


@contextlib.contextmanager
def in_use(path: str | Path) -> Iterator[None]:
    """Hold the entry of `path` (a file or folder of the cache) as in use for the block, and record its use.

    Eviction and `remove` pass over it meanwhile. Inside `pinned`, the entry stays held until that block ends.
    Outside the cache folder, nothing happens.
    """
    path, fh = Path(path), None
    if managed(path) is not None:
        with contextlib.suppress(OSError):  # a cache folder this process may read but not write: nothing to hold
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = _open_lock(path, fcntl.LOCK_SH)
    if fh is None:
        yield
        return
    now = time.time_ns()  # not the file system's clock, which may tick every few milliseconds
    os.utime(fh.fileno(), ns=(now, now))  # the last use
    try:
        yield
    finally:
        if _pins is not None:
            _pins.append(fh)
        else:
            fh.close()


@contextlib.contextmanager
def pinned() -> Iterator[None]:
    """Keep every entry this process uses in the block (`in_use`) held until the block ends: a running study's."""
    global _pins
    outer, _pins = _pins, []
    try:
        yield
    finally:
        held, _pins = _pins, outer
        for fh in held:
            if outer is not None:
                outer.append(fh)
            else:
                fh.close()


def remove(entry: CacheEntry) -> bool:
    """Remove an entry unless a process holds it (`in_use`). Returns whether it was removed."""
    fh = _open_lock(entry.paths[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
    if fh is None:
        return False
    with fh:
        for p in entry.paths:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        _lock_path(entry.paths[0]).unlink(missing_ok=True)
    return True


def written(path: str | Path) -> list[CacheEntry]:
    """Keep the cache within its bound after an entry at `path` was written: remove the least recently used entries
    that no process holds until it is (call it while that entry is `in_use`, so that it stays). Outside the cache
    folder, or without a bound, nothing happens.

    Returns:
        The entries removed, in order.
    """
    root = managed(path)
    limit = max_bytes() if root is not None else None
    if limit is None:
        return []
    found = entries(root)
    total = sum(e.size for e in found)
    removed = []
    for entry in found:
        if total <= limit:
            break
        if remove(entry):
            total -= entry.size
            removed.append(entry)
    return removed


def matching(pattern: str, root: str | Path | None = None) -> list[CacheEntry]:
    """The entries whose name matches the shell pattern (e.g. `word2vec/fasttext-*`, or `*` for all)."""
    return [e for e in entries(root) if fnmatch.fnmatchcase(e.name, pattern)]


def is_held(entry: CacheEntry) -> bool:
    """Whether a process holds the entry as in use now."""
    if not _lock_path(entry.paths[0]).exists():
        return False
    if (fh := _open_lock(entry.paths[0], fcntl.LOCK_EX | fcntl.LOCK_NB)) is not None:
        fh.close()
    return fh is None
