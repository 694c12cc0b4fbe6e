"""What a study keeps on disk and what it costs in time: `default`, `wide` and FastText studies on the Greek data.

Each study runs as a user runs it (`python -m study.run` on `valid_set.csv`, `test_set.csv` as unlabelled text,
its final stage and model included), with a fresh word-vector cache so that every study pays for its vectors.
Measured: wall time, the results folder's size at the end (model included), the model folder's size, the
checkpoint folders left, and a checkpoint's bytes per trial-epoch (study.json's `disk` block; for a checkout
without it, the mean size of the checkpoint folders left). `--repo` runs another checkout (e.g. a `git worktree`
of an older commit) as the "before" side, with this machine's installed packages.

    python benchmarks/storage.py run after                      # the three studies with this checkout
    python benchmarks/storage.py run before --repo /tmp/old     # the same with another checkout
    python benchmarks/storage.py publish                        # the table of every side run (BENCHMARKS.md)
    python benchmarks/storage.py run after --quick              # 2 tiny studies; writes nothing
    python benchmarks/storage.py ratio --seeds 0,1,2             # wide / default wall time, a pair per seed
    python benchmarks/storage.py peak --repo /tmp/old            # Ray's storage at its largest during a study
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from sections import BENCHMARKS, add_output_arguments, closing, data_folder_missing, markdown_table, publish

SECTION = "storage"
REPO = BENCHMARKS.parent
RUNS = REPO / "benchmarks" / "runs" / "storage"  # one JSON per side and study (git-ignored)
STUDIES = {"default": ["--space", "default"], "wide": ["--space", "wide"], "fasttext": ["--vectorizer", "fasttext"]}


def tree_bytes(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern) if p.is_file() and not p.is_symlink())


def checkpoints(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("checkpoint_*") if p.is_dir()]


def run_study(kind: str, args: argparse.Namespace, repo: Path, greek: Path, work: Path) -> dict:
    """One study in `repo`, timed; what its folder holds at the end."""
    name, results = f"{kind}-{args.side}-{args.seed}", work / "results"
    cmd = [sys.executable, "-m", "study.run", "--train", str(greek / "valid_set.csv"),
           "--unlabelled", str(greek / "test_set.csv"), *STUDIES[kind], "--num-samples", str(args.num_samples),
           "--max-epochs", str(args.max_epochs), "--final-top", str(args.final_top), "--final-folds",
           str(args.final_folds), "--seed", str(args.seed), "--name", name, "--results-dir", str(results)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(repo), "RNN_STUDY_CACHE": str(work / f"cache-{kind}")}
    folder, peak = results / name, 0
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        while proc.poll() is None:  # Ray's storage of the trials (checkpoints, results), sampled twice a second
            try:
                peak = max(peak, tree_bytes(folder / "ray"))
            except OSError:  # a file removed while counted
                pass
            time.sleep(0.5)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read()[-4000:]}")
    info = json.loads((folder / "study.json").read_text())
    kept = checkpoints(folder)
    kept_bytes = sum(tree_bytes(c) for c in kept)
    disk = info.get("disk") or {}
    epochs = len(pd.read_parquet(folder / "epochs.parquet"))
    per_epoch = disk.get("checkpoint_bytes_per_trial_epoch") or (kept_bytes / len(kept) if kept else None)
    return {
        "side": args.side,
        "study": kind,
        "seed": args.seed,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
        ).stdout.strip(),  # fmt: skip
        "wall_s": wall,
        "trials": args.num_samples,
        "trial_epochs": epochs,
        "folder_bytes": tree_bytes(folder),
        "peak_storage_bytes": peak,
        "model_bytes": tree_bytes(folder / "model") if (folder / "model").is_dir() else 0,
        "checkpoints_left": len(kept),
        "checkpoint_bytes_left": kept_bytes,
        "checkpoint_bytes_per_trial_epoch": per_epoch,
        "per_epoch_source": "study.json" if disk.get("checkpoint_bytes_per_trial_epoch") else "folders left",
        "cache_bytes": tree_bytes(work / f"cache-{kind}"),
        "load": os.getloadavg(),
        "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def mb(b: float | None) -> str:
    return "—" if b is None else f"{b / 1e6:.1f} MB" if b >= 1e5 else f"{b / 1e3:.0f} kB"


def table(df: pd.DataFrame) -> list[str]:
    rows = []
    for _, r in df.sort_values(["study", "side"], key=lambda col: col.map(ORDER)).iterrows():
        rows.append((r.study, r.side, r.commit, str(r.trials), f"{r.wall_s / 60:.1f}", str(r.trial_epochs),
                     mb(r.folder_bytes), mb(r.model_bytes), f"{r.checkpoints_left} ({mb(r.checkpoint_bytes_left)})",
                     mb(r.checkpoint_bytes_per_trial_epoch), mb(r.cache_bytes)))  # fmt: skip
    header = ("study", "side", "commit", "trials", "wall min", "trial-epochs", "folder", "model", "checkpoints left",
              "checkpoint / trial-epoch", "vector cache")  # fmt: skip
    return markdown_table(header, rows)


ORDER = {"default": 0, "wide": 1, "fasttext": 2, "before": 0, "after": 1}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["run", "publish", "ratio", "peak"])
    p.add_argument("side", nargs="?", default="after", help="a label for this checkout: before | after")
    p.add_argument("--repo", type=Path, default=REPO, help="the checkout to run (default: this one)")
    p.add_argument(
        "--studies",
        default=None,
        help="run: the studies (default: all three); ratio: those to run again (default: both); peak: the studies "
        "(default: default,wide)",
    )
    p.add_argument("--num-samples", type=int, default=16)
    p.add_argument("--max-epochs", type=int, default=6)
    p.add_argument("--final-top", type=int, default=2)
    p.add_argument("--final-folds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="run: the studies' search seed")
    p.add_argument("--seeds", default="0,1,2", help="ratio: the search seeds, a default and a wide study each")
    p.add_argument("--quick", action="store_true", help="2 trials of 2 epochs, 2 folds; writes nothing")
    add_output_arguments(p, SECTION, "a paragraph added under the table")
    args = p.parse_args(argv)
    args.studies = args.studies or ("default,wide" if args.step == "peak" else ",".join(STUDIES))
    console = Console()
    if data_folder_missing(args.data_dir, console):
        return 2
    if args.quick:
        args.num_samples, args.max_epochs, args.final_top, args.final_folds = 2, 2, 2, 2
    if args.step == "run":
        greek = args.data_dir / "greek-election-tweets-ys19-2023"
        RUNS.mkdir(parents=True, exist_ok=True)
        for kind in args.studies.split(","):
            work = Path(tempfile.mkdtemp(prefix=f"storage-{kind}-"))
            try:
                row = run_study(kind, args, args.repo.resolve(), greek, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            console.print(row)
            if not args.quick:
                (RUNS / f"{args.side}-{kind}.json").write_text(json.dumps(row, indent=1))
        return 0
    if args.step == "ratio":
        return ratio(args, console)
    if args.step == "peak":
        return peak(args, console)
    df = pd.DataFrame([json.loads(f.read_text()) for f in sorted(RUNS.glob("[ab]*.json"))])
    if df.empty:
        console.print(f"[bold red]error:[/] no runs in {RUNS}; run `python benchmarks/storage.py run after` first.")
        return 2
    lines = [
        "## Storage and wall time: `default`, `wide` and FastText studies (`python benchmarks/storage.py`)",
        "",
        f"`python -m study.run --train valid_set.csv --unlabelled test_set.csv` with `--space default`, `--space "
        f"wide` or `--vectorizer fasttext` (trials as in the table, at most {args.max_epochs} epochs each), the "
        f"final stage (top {args.final_top}, {args.final_folds} folds) and its model, a fresh word-vector cache each. "
        "Before: the commit before issue 21 (every checkpoint of every trial kept, the embedding matrix and its "
        "optimiser state in each, float32 model vectors); after: this commit. Folder: the results folder at the "
        "end, model included. Checkpoint / trial-epoch: study.json's bytes written per trial-epoch (before: the "
        "mean checkpoint folder left).",
        "",
        *table(df),
        "",
    ]
    for kind in ("default", "wide", "fasttext"):
        sides = df[df.study == kind].set_index("side")
        if {"before", "after"} <= set(sides.index):
            b, a = sides.loc["before"], sides.loc["after"]
            lines.append(f"- `{kind}`: folder {mb(b.folder_bytes)} → {mb(a.folder_bytes)} "
                         f"({a.folder_bytes / b.folder_bytes:.3f} of before); wall time "
                         f"{a.wall_s / b.wall_s:.2f}x before.")  # fmt: skip
    for side in ("before", "after"):
        s = df[df.side == side].set_index("study")
        if {"default", "wide"} <= set(s.index):
            w, d = s.loc["wide"].wall_s, s.loc["default"].wall_s
            lines.append(f"- {side}: `wide` / `default` wall time **{w / d:.2f}x** ({w / 60:.1f} / {d / 60:.1f} min).")
    lines += closing(args, 1)
    console.print("\n".join(lines))
    publish(SECTION, "\n".join(lines), args, console)
    return 0


def ratio(args: argparse.Namespace, console: Console) -> int:
    """`default` and `wide` studies of this checkout, one of each per seed, timed one after the other; the
    section `storage-ratio` with each seed's wide / default wall time and their median."""
    greek, rows = args.data_dir / "greek-election-tweets-ys19-2023", []
    RUNS.mkdir(parents=True, exist_ok=True)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for kind in ("default", "wide"):
            if kind not in args.studies.split(","):  # this seed's earlier run of it (e.g. its space did not change)
                rows.append(json.loads((RUNS / f"ratio-{kind}-{seed}.json").read_text()))
                continue
            args.seed, args.side, work = seed, "ratio", Path(tempfile.mkdtemp(prefix=f"storage-{kind}-"))
            try:
                row = run_study(kind, args, REPO, greek, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            console.print({k: row[k] for k in ("study", "seed", "wall_s", "trial_epochs", "folder_bytes")})
            if not args.quick:
                (RUNS / f"ratio-{kind}-{seed}.json").write_text(json.dumps(row, indent=1))
            rows.append(row)
    df = pd.DataFrame(rows)
    by = df.pivot(index="seed", columns="study", values="wall_s")
    epochs = df.pivot(index="seed", columns="study", values="trial_epochs")
    size = df.pivot(index="seed", columns="study", values="folder_bytes")
    commit = df.pivot(index="seed", columns="study", values="commit")
    ratios = by["wide"] / by["default"]
    table_rows = [(str(seed), f"{by.loc[seed, 'default'] / 60:.2f}", f"{by.loc[seed, 'wide'] / 60:.2f}",
                   f"{ratios[seed]:.2f}", f"{epochs.loc[seed, 'default']} / {epochs.loc[seed, 'wide']}",
                   f"{mb(size.loc[seed, 'default'])} / {mb(size.loc[seed, 'wide'])}",
                   f"{commit.loc[seed, 'default']} / {commit.loc[seed, 'wide']}") for seed in by.index]  # fmt: skip
    lines = [
        "## Wall time: `wide` against `default`, a pair of studies per seed (`python benchmarks/storage.py ratio`)",
        "",
        f"The studies of the storage section (Greek data, {args.num_samples} trials of at most {args.max_epochs} "
        f"epochs, final stage top {args.final_top} on {args.final_folds} folds, model saved, a fresh word-vector "
        "cache each), with `--seed` set for both studies of a pair; one study at a time, wall time of "
        "`python -m study.run`.",
        "",
        *markdown_table(
            (
                "seed",
                "default min",
                "wide min",
                "wide / default",
                "trial-epochs (default / wide)",
                "folder (default / wide)",
                "commit (default / wide)",
            ),
            table_rows,
        ),  # fmt: skip
        "",
        f"Median wide / default: **{ratios.median():.2f}x** (goal: at most 1.5x); range {ratios.min():.2f}-"
        f"{ratios.max():.2f}; all {len(by)} wide studies took {by['wide'].sum() / by['default'].sum():.2f}x the time "
        "of the default ones.",
        *closing(args, 1),
    ]
    console.print("\n".join(lines))
    publish("storage-ratio", "\n".join(lines), args, console)
    return 0


def peak(args: argparse.Namespace, console: Console) -> int:
    """The `--studies` (default and wide unless set) of `--repo` ("before") and of this checkout ("after"), at one
    seed; the section `storage-peak`: the trials' storage (`results/<name>/ray`) at its largest while each ran."""
    greek, rows = args.data_dir / "greek-election-tweets-ys19-2023", []
    for side, repo in (("before", args.repo.resolve()), ("after", REPO)):
        for kind in args.studies.split(","):
            args.side, work = side, Path(tempfile.mkdtemp(prefix=f"storage-{kind}-"))
            try:
                rows.append(run_study(kind, args, repo, greek, work))
            finally:
                shutil.rmtree(work, ignore_errors=True)
            console.print({k: rows[-1][k] for k in ("study", "side", "wall_s", "peak_storage_bytes", "folder_bytes")})
    table_rows = [(r["study"], r["side"], r["commit"], f"{r['wall_s'] / 60:.1f}", str(r["trial_epochs"]),
                   mb(r["peak_storage_bytes"]), mb(r["folder_bytes"])) for r in rows]  # fmt: skip
    lines = [
        "## Ray's storage at its largest while a study runs (`python benchmarks/storage.py peak`)",
        "",
        f"The studies of the storage section ({args.num_samples} trials of at most {args.max_epochs} epochs, seed "
        f"{args.seed}), before and after a checkpoint change; `results/<name>/ray` (checkpoints and Ray's results) "
        "sampled twice a second while `python -m study.run` ran, and the results folder at the end.",
        "",
        *markdown_table(
            ("study", "side", "commit", "wall min", "trial-epochs", "storage peak", "folder at end"), table_rows
        ),  # fmt: skip
        *closing(args, 1),
    ]
    console.print("\n".join(lines))
    if not args.quick:
        publish("storage-peak", "\n".join(lines), args, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
