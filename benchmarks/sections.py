"""Shared by the benchmark scripts: rewrite one script's section of BENCHMARKS.md, atomically and under a lock;
the `--data-dir`, `--output` and `--notes` options and what they do.

Each script owns the text between `<!-- name:start -->` and `<!-- name:end -->`; the other sections stay as they
are, even when several scripts finish at the same time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from trainables.files import write_text

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
DATA = BENCHMARKS.parent.parent / "shared" / "data"  # the shared data, beside the repository


def add_output_arguments(p: argparse.ArgumentParser, section: str, notes_help: str) -> None:
    """`--data-dir`, `--output` (default BENCHMARKS.md; none with `--quick`) and `--notes`."""
    p.add_argument("--data-dir", type=Path, default=DATA, help=f"the shared data (default: {DATA})")
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"the Markdown file whose {section} section is updated (default: {BENCHMARKS}; with --quick: none)",
    )
    p.add_argument("--notes", default="", help=notes_help)


def data_folder_missing(folder: Path, console) -> bool:
    """Say so (and how to fix it) when the shared data folder is not there."""
    if folder.is_dir():
        return False
    console.print(f"[bold red]error:[/] the shared data folder {folder} does not exist; give --data-dir.")
    return True


def publish(section: str, body: str, args: argparse.Namespace, console) -> None:
    """Write `body` as `section` of `--output` (BENCHMARKS.md unless `--quick`, which writes only to --output)."""
    output = args.output or (None if args.quick else BENCHMARKS)
    if output is not None:
        write_section(section, body, output)
        console.print(f"Updated the {section} section of {output}")


def markdown_table(header: tuple[str, ...], rows) -> list[str]:
    """A Markdown table's lines: the header, its rule, then one line per row of cells."""
    body = ["| " + " | ".join(r) + " |" for r in rows]
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header), *body]


def closing(args: argparse.Namespace, threads: int, machine_note: str = "") -> list[str]:
    """The lines that end every section: the machine line, then the `--notes` paragraph if any."""
    lines = ["", f"Machine: {machine_line(threads)}{machine_note}."]
    return lines + (["", args.notes] if args.notes else [])


def run_for_json(args: list[str], what: str, env: dict[str, str] | None = None) -> dict:
    """Run `python ARGS` in a fresh process and read the JSON object its last line of output prints."""
    out = subprocess.run(
        [sys.executable, *args], cwd=BENCHMARKS.parent, capture_output=True, text=True, check=False, env=env
    )
    if out.returncode != 0:
        raise SystemExit(f"error: {what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


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
        write_text(path, new)
    finally:
        os.close(dir_fd)


def _torch_version() -> str:
    import torch

    return torch.__version__


def machine_line(threads: int) -> str:
    """CPU, torch threads, load average and commit: the context every timing needs."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCHMARKS.parent, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {_torch_version()} with "
        f"{threads} thread(s), load average {load} at the end, commit {commit}, "
        f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}"
    )
