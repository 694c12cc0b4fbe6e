"""Prediction speed: `python -m study.predict` on the Greek `test_set.csv` (10,470 unlabelled tweets), one CPU core.

What it measures: a final model (`train_final_model`, the default configuration: bidirectional LSTM, 2 layers of
64, skip, attention; `sequence` vectoriser, 300-d Word2Vec on `valid_set.csv` + `test_set.csv`, max_len 48)
trained on every row of `valid_set.csv` and saved; then, each round in fresh processes pinned to one core with
one torch thread:
- the command itself, `python -m study.predict --model DIR --input test_set.csv --out OUT.csv --id-columns New_ID`:
  wall time from the process's start to its exit, and a check that every input row was written, in order;
- the same pipeline in a measuring process (`read_text_chunks` + `predict_file`, as the command runs them),
  timed stage by stage: start-up (imports, loading the model, the cleaner's tables), then read, clean, encode,
  forward, write;
- the forward pass alone with batches of one length (`train.predict_proba`, what the command and `fit` use) at
  batch sizes 128 / 512 / 2048, against batches of neighbours in length order (what `fit` used before).
Tweets per second end to end = rows / (read + clean + encode + forward + write), cleaning included, start-up
not (it does not grow with the file), in the process's CPU time (one thread: one core's work, however busy the
machine); wall time and the whole command's rate are shown beside it. Target: >= 2,000.

Run (not part of CI; needs ../shared/data):
    python benchmarks/predict.py              # 5 rounds; updates BENCHMARKS.md
    python benchmarks/predict.py --quick      # 1 round, 1 epoch; writes only to --output
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's packages, also when another one is installed

from sections import (  # noqa: E402 - benchmarks/ on sys.path
    add_output_arguments,
    closing,
    data_folder_missing,
    markdown_table,
    publish,
    run_for_json,
)

SECTION = "predict"
TARGET = 2000  # tweets per second, end to end, one core
GREEK = "greek-election-tweets-ys19-2023"
STAGES = ("read", "clean", "encode", "forward", "write")
BATCHES = (128, 512, 2048)


def _one_core(core: int) -> dict[str, str]:
    """Pin this process to `core` and return the environment for one-thread children."""
    os.sched_setaffinity(0, {core})
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> dict[str, float]:
    wall, cpu = _clocks()
    return {"wall": wall - start[0], "cpu": cpu - start[1]}


def measure(model_dir: str, input_csv: str, out: str, core: int) -> dict:
    """In a fresh process pinned to `core`: start-up phases, the command's stages, forward-pass variants.

    Stages are timed in this process's CPU time (one thread: the work of one core, whatever else the machine
    runs); start-up phases and the pipeline's total also in wall time.
    """
    t0 = _clocks()
    os.sched_setaffinity(0, {core})
    import torch

    from study.predict import STAGES as COMMAND_STAGES
    from study.predict import Summary, predict_file
    from trainables.chunks import read_text_chunks
    from trainables.data import DataSpec
    from trainables.saved_model import PREDICT_BATCH, load_model
    from trainables.train import predict_proba

    @torch.inference_mode()
    def neighbours(network, x, lengths, batch_size, device):
        """The batching `fit` used before: neighbours in length order, most batches mixing lengths (packed)."""
        order = torch.argsort(lengths, stable=True)
        for idx in order.split(batch_size):
            lb = lengths[idx]
            network(x[idx][:, : int(lb.max())].to(device), lb)  # each batch cut to its longest tweet

    assert COMMAND_STAGES == STAGES
    torch.set_num_threads(1)
    phases = {"imports": _since(t0)}
    t = _clocks()
    model = load_model(model_dir)
    phases["load"] = _since(t)
    t = _clocks()
    model.tokens(["warm-up"])  # what the command does before reading
    phases["cleaner_tables"] = _since(t)
    spec = DataSpec(text_column=model.spec.text_column, party_column=model.spec.party_column, prepend_party=True)
    t = _clocks()
    summary = Summary(clock=time.process_time)
    predict_file(model, read_text_chunks(input_csv, spec, ("New_ID",)), Path(out), ("New_ID",), summary=summary)
    pipeline = _since(t)

    chunk = next(read_text_chunks(input_csv, spec, chunk_size=10**9))
    x, lengths, _ = model.encode(model.tokens(model.compose(chunk.texts, chunk.parties)))  # a Word2Vec model
    xt, lt = torch.from_numpy(x), torch.from_numpy(lengths)
    forward = {}
    for name, run in [
        *((f"by_length_{b}", lambda b=b: predict_proba(model.network, xt, lt, b, True, model.device)) for b in BATCHES),
        ("neighbours_512", lambda: neighbours(model.network, xt, lt, PREDICT_BATCH, model.device)),
    ]:
        t = _clocks()
        run()
        forward[name] = _since(t)["cpu"]
    return {
        "phases": phases,
        "pipeline": pipeline,
        "stages_cpu": summary.seconds,
        "rows": summary.rows,
        "forward_cpu": forward,
        "mean_length": float(lengths.mean()),
        "threads": torch.get_num_threads(),
    }


def train_model(greek: Path, folder: Path, epochs: int) -> dict:
    """The final model of the default configuration on every row of valid_set.csv; returns what it took."""
    import torch

    from trainables.data import DataSpec, read_labelled, read_unlabelled
    from trainables.hparams import HParams
    from trainables.preprocess import CleanConfig
    from trainables.saved_model import save_model, train_final_model
    from trainables.vectorize import VectorConfig

    torch.set_num_threads(1)
    spec = DataSpec()
    labelled = read_labelled(greek / "valid_set.csv", spec)
    unlabelled = read_unlabelled(greek / "test_set.csv", spec)
    t = time.perf_counter()
    hp = HParams(device="cpu", num_threads=1)
    model = train_final_model(hp, labelled, unlabelled, spec, CleanConfig(), VectorConfig(), epochs)
    save_model(folder, model, {"study": "benchmarks/predict.py"})
    return {"rows": len(labelled), "epochs": epochs, "seconds": time.perf_counter() - t, "hp": hp}


def run_command(model_dir: Path, input_csv: Path, out: Path, env: dict[str, str]) -> dict[str, float]:
    """Wall and CPU seconds of `python -m study.predict` in a fresh process (it inherits this one's core)."""
    argv = ["-m", "study.predict", "--model", str(model_dir), "--input", str(input_csv), "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv, "--id-columns", "New_ID", "--overwrite"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"error: study.predict failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu}


def check_rows(input_csv: Path, out: Path) -> int:
    """Every input row written once, in order (by New_ID); returns the count."""
    import pandas as pd

    ids_in = pd.read_csv(input_csv, dtype=str, keep_default_na=False, usecols=["New_ID"])["New_ID"].tolist()
    ids_out = pd.read_csv(out, dtype=str, keep_default_na=False, usecols=["New_ID"])["New_ID"].tolist()
    if ids_in != ids_out:
        raise SystemExit(f"error: {out} has {len(ids_out)} rows, not the {len(ids_in)} of {input_csv} in order")
    return len(ids_out)


def markdown(rounds: list[dict], commands: list[dict], trained: dict, rows: int, args: argparse.Namespace) -> str:
    med = statistics.median
    stage = {s: med(r["stages_cpu"][s] for r in rounds) for s in STAGES}
    total = sum(stage.values())
    rate_cpu = med(rows / sum(r["stages_cpu"].values()) for r in rounds)
    rate_wall = med(rows / r["pipeline"]["wall"] for r in rounds)
    command = {k: med(c[k] for c in commands) for k in ("wall", "cpu")}
    phases = {p: {k: med(r["phases"][p][k] for r in rounds) for k in ("wall", "cpu")} for p in rounds[0]["phases"]}
    forward = {k: med(r["forward_cpu"][k] for r in rounds) for k in rounds[0]["forward_cpu"]}
    hp = trained["hp"]
    rows_table = [
        (
            "tweets/s end to end (read → write, cleaning included), one core's CPU time",
            f"{rate_cpu:,.0f}",
            f">= {TARGET:,}",
            "yes" if rate_cpu >= TARGET else "no",
        ),
        ("the same in wall time, on the shared machine", f"{rate_wall:,.0f}", "", ""),
        *((f"{s} (CPU s, share of end to end)", f"{stage[s]:.2f} ({stage[s] / total:.0%})", "", "") for s in STAGES),
        (
            "start-up (CPU s / wall s): imports; model load; cleaner tables",
            "; ".join(
                f"{phases[p]['cpu']:.2f} / {phases[p]['wall']:.2f}" for p in ("imports", "load", "cleaner_tables")
            ),
            "",
            "",
        ),
        (
            "whole command, process start to exit: CPU s / wall s",
            f"{command['cpu']:.2f} / {command['wall']:.2f}",
            "",
            "",
        ),
        (
            "tweets/s of the whole command, start-up included: CPU / wall",
            f"{rows / command['cpu']:,.0f} / {rows / command['wall']:,.0f}",
            "",
            "",
        ),
        *(
            (f"forward pass alone, one-length batches of {b} (CPU s)", f"{forward[f'by_length_{b}']:.2f}", "", "")
            for b in BATCHES
        ),
        (
            "forward pass, `train.predict_proba`'s neighbour batches of 512 (CPU s); one-length / neighbours",
            f"{forward['neighbours_512']:.2f}; {forward['by_length_512'] / forward['neighbours_512']:.2f}",
            "",
            "",
        ),
    ]
    lines = [
        "## Prediction speed (`python benchmarks/predict.py`)",
        "",
        f"`python benchmarks/predict.py --rounds {args.rounds} --epochs {args.epochs}`. Model: `train_final_model` on "
        f"all {trained['rows']:,} rows of `valid_set.csv` for {trained['epochs']} epochs ({trained['seconds']:.0f} s), "
        f"bidirectional {hp.cell.upper()}, {hp.num_layers} layers of {hp.hidden_size}, skip, attention; `sequence` "
        "vectoriser, 300-d Word2Vec on `valid_set.csv` + `test_set.csv`, max_len 48. Input: `test_set.csv` "
        f"({rows:,} tweets, mean {rounds[0]['mean_length']:.1f} tokens after cleaning), output CSV with `New_ID`. "
        f"Each of {args.rounds} rounds runs fresh processes pinned to one core (CPU {args.core}) with one torch "
        "thread: the command, timed from start to exit, and a measuring process that runs the same pipeline "
        "(`read_text_chunks` + `predict_file`) stage by stage. Stages are timed in the process's CPU time (with "
        "one thread, the work of one core whatever else runs on the machine); wall time is shown beside it. "
        "Medians over rounds. Every row was written, in input order (checked by `New_ID`), in every round.",
        "",
        *markdown_table(("figure", "value", "target", "met"), rows_table),
        *closing(args, rounds[0]["threads"], " (the benchmark pinned to one of them)"),
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round, a 1-epoch model; writes only to --output")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (default: 5)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the final model (default: 3)")
    p.add_argument("--core", type=int, default=0, help="the CPU every timed process is pinned to (default: 0)")
    p.add_argument("--measure", nargs=3, metavar=("MODEL", "INPUT", "OUT"), help=argparse.SUPPRESS)
    add_output_arguments(p, SECTION, "a paragraph added under the table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.measure:  # the measuring child: one JSON line on stdout
        print(json.dumps(measure(*args.measure, core=args.core)))
        return 0
    from rich.console import Console

    console = Console(stderr=True)
    if args.quick:
        args.rounds, args.epochs = 1, 1
    greek = args.data_dir / GREEK
    if data_folder_missing(greek, console):
        return 2
    input_csv = greek / "test_set.csv"
    with tempfile.TemporaryDirectory(prefix="predict-bench-") as tmp:
        model_dir, out = Path(tmp) / "model", Path(tmp) / "labelled.csv"
        console.log(f"Training the final model on {greek / 'valid_set.csv'} ({args.epochs} epochs)")
        trained = train_model(greek, model_dir, args.epochs)
        env = _one_core(args.core)  # children inherit the pinning
        rounds, commands = [], []
        for i in range(args.rounds):
            commands.append(run_command(model_dir, input_csv, out, env))
            rows = check_rows(input_csv, out)
            child = [str(Path(__file__).resolve()), "--measure", str(model_dir), str(input_csv), str(out)]
            rounds.append(run_for_json([*child, "--core", str(args.core)], "the measuring process", env))
            check_rows(input_csv, out)
            r = rounds[-1]
            stages = ", ".join(f"{s} {r['stages_cpu'][s]:.2f}" for s in STAGES)
            pipeline = sum(r["stages_cpu"].values())
            console.log(
                f"round {i + 1}/{args.rounds}: command {commands[-1]['cpu']:.2f} CPU s ({commands[-1]['wall']:.2f} "
                f"wall), pipeline {pipeline:.2f} CPU s ({stages})"
            )
    body = markdown(rounds, commands, trained, rows, args)
    print(body)
    publish(SECTION, body, args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
