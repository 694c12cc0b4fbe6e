"""`python -m study.cache`: the cache of word vectors, token files and demo data, as `pip cache` shows its own.

Parsing and printing only; the entries, their last use, the bound and the locks live in trainables/cache.py.
What a command is asked for goes to stdout; errors to stderr (exit 2).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter

from study.cli import CommandParser, run_command
from trainables import cache
from trainables.settings import ConfigError

DESCRIPTION = """\
The cache of word vectors, cleaned unlabelled corpora and the demo data ($RNN_STUDY_CACHE, else
~/.cache/rnn-sentiment-studies). It is kept within $RNN_STUDY_CACHE_MAX (default 5GB; e.g. 500MB, 20GB, 0 for
no bound): when an entry is written, the least recently used entries go first. An entry that a running study
or command uses is never removed, by eviction or by `remove` and `purge`; everything else is safe to delete.
"""

EPILOG = """\
commands:
  list [PATTERN]    entries (default), least recently used first: name, size, last use, whether in use
  info              the folder, the bound, the number of entries and their size
  dir               the folder
  remove PATTERN    remove the entries whose name matches, e.g. 'word2vec/fasttext-*'
  purge             remove every entry

exit codes: 0 done, 2 bad input (a bad $RNN_STUDY_CACHE_MAX, no entry matches), 1 other errors
"""

COMMANDS = ("list", "info", "dir", "remove", "purge")


def human(n: float) -> str:
    """Bytes as text in decimal units: 512 B, 12.3 MB, 4.0 GB."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def parser() -> CommandParser:
    p = CommandParser("python -m study.cache", DESCRIPTION, EPILOG)
    p.add_argument("command", nargs="?", default="list", choices=COMMANDS, help="what to do (default: list)")
    p.add_argument("pattern", nargs="?", default=None, help="shell pattern of entry names (list, remove)")
    return p


def _remove(entries: list[cache.CacheEntry]) -> None:
    removed = [e for e in entries if cache.remove(e)]
    held = [e.name for e in entries if e not in removed]
    print(f"Removed {len(removed)} entries ({human(sum(e.size for e in removed))}).")
    if held:
        print(f"Kept {len(held)} in use by a running process: {', '.join(held)}.")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def work(console) -> None:
        root = cache.default_cache_dir()
        if args.command == "dir":
            print(root)
            return
        if args.command == "info":
            try:
                bound = cache.max_bytes()
            except ValueError as e:
                raise ConfigError(str(e)) from None
            found = cache.entries(root)
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(Counter(e.name.split("/")[0] for e in found).items()))
            print(f"Folder: {root}")
            print(f"Bound: {human(bound) if bound is not None else 'none'} (${cache.MAX_VARIABLE})")
            print(f"Entries: {len(found)}" + (f" ({kinds})" if kinds else ""))
            print(f"Size: {human(sum(e.size for e in found))}")
            return
        if args.command == "remove" and args.pattern is None:
            raise ConfigError(
                "`remove` needs a PATTERN of entry names, e.g. 'word2vec/*'; `purge` removes every entry."
            )
        found = cache.matching(args.pattern or "*", root)
        if args.command == "list":
            for e in found:
                when = dt.datetime.fromtimestamp(e.last_used).strftime("%Y-%m-%d %H:%M")
                print(f"{e.name}  {human(e.size)}  {when}" + ("  in use" if cache.is_held(e) else ""))
            return
        if args.pattern is not None and not found:
            names = ", ".join(e.name for e in cache.entries(root)[-5:])
            raise ConfigError(
                f"no cache entry matches {args.pattern!r}"
                + (f"; recently used ones: {names}." if names else " (the cache is empty).")
                + " List them with `python -m study.cache list`."
            )
        _remove(found)

    return run_command("cache", work)


if __name__ == "__main__":
    sys.exit(main())
