"""Shared by the benchmark scripts: rewrite one script's section of BENCHMARKS.md, atomically and under a lock.

Each script owns the text between `<!-- name:start -->` and `<!-- name:end -->`; the other sections stay as they
are, even when several scripts finish at the same time.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(name: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) the section `name` of `path` with `body`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        old = (
            path.read_text(encoding="utf-8")
            if path.exists()
            else "# Benchmarks\n\nEach section is written by its script.\n"
        )
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), flags=re.DOTALL)
        new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block + "\n"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(new)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        os.close(dir_fd)
