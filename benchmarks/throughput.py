"""Throughput benchmark: epoch time of `trainables.train.fit` against a bare hand-written PyTorch loop.

What it measures: on the Greek election tweets (`valid_set.csv`, a seeded 80/20 stratified split; Word2Vec on
the training texts + `test_set.csv`; `sequence` vectoriser), for a few hidden sizes of the default model
(bidirectional LSTM, 2 layers, skip, attention, batch 128):
- `fit`: a one-epoch call (model build, training pass, validation pass, metrics).
- bare loop: the same model from `build_model`, the same tensors, Adam, cross-entropy, gradient clipping, the
  same shuffling and per-batch trimming to the longest tweet, and the same validation forward pass (class
  probabilities), but no metrics, no loss bookkeeping and no state callbacks. Its training pass alone is
  shown too.
- ratio = fit / bare (target <= 1.05), as the median over pairs of runs that alternate which loop goes first,
  in wall time and in this process's CPU time (steadier on a shared machine; exact with 1 thread), and
  training tweets per second through `fit` (median wall time).
Both loops use the same torch thread count.

Run (not part of CI; needs ../shared/data):
    python benchmarks/throughput.py            # hidden 16, 64, 256; 4 pairs (~10 min, 2 cores); updates BENCHMARKS.md
    python benchmarks/throughput.py --quick    # hidden 16, 2 pairs; writes nothing
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
from rich.console import Console
from rich.table import Table
from sections import (  # benchmarks/ on sys.path
    add_output_arguments,
    closing,
    data_folder_missing,
    markdown_table,
    publish,
)

from trainables.data_settings import DataSettings
from trainables.hparams import HParams
from trainables.inputs import encode, load_dataset
from trainables.prepare import EncodedData
from trainables.train import build_model, fit

SECTION = "throughput"
TARGET = 1.05


@dataclass(frozen=True)
class Timing:
    hidden_size: int
    fit_wall_s: float  # median wall time of a one-epoch `fit` call
    bare_wall_s: float  # the same for the bare loop (training + validation forward pass)
    wall_ratio: float  # median over pairs of fit / bare wall time
    cpu_ratio: float  # median over pairs of fit / bare CPU time of this process
    bare_train_s: float  # median wall time of the bare loop's training pass alone
    pairs: int
    n_train: int

    @property
    def tweets_per_s(self) -> float:
        return self.n_train / self.fit_wall_s


def bare_epochs(hp: HParams, data: EncodedData, epochs: int) -> tuple[list[float], list[float]]:
    """Train with a plain loop for `epochs` epochs; (epoch times, training-pass times) in seconds."""
    torch.manual_seed(hp.seed)
    model = build_model(hp, data)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=hp.lr)
    loss_fn = nn.CrossEntropyLoss()
    shuffle = torch.Generator().manual_seed(hp.seed)
    x, lengths, y = (torch.from_numpy(a) for a in (data.x_train, data.len_train, data.y_train))
    x_va, l_va = torch.from_numpy(data.x_valid), torch.from_numpy(data.len_valid)
    epoch_s, train_s = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(y), generator=shuffle)
        for start in range(0, len(y), hp.batch_size):
            idx = order[start : start + hp.batch_size]
            lb = lengths[idx]
            xb = x[idx, : int(lb.max())]  # (B, T_batch): cut to the batch's longest tweet
            logits, _ = model(xb, lb)
            loss = loss_fn(logits, y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), hp.clip)
            optimizer.step()
        t1 = time.perf_counter()
        model.eval()
        with torch.no_grad():
            batch = max(hp.batch_size, 512)  # what fit's validation pass uses
            for start in range(0, len(x_va), batch):
                lb = l_va[start : start + batch]
                logits, _ = model(x_va[start : start + batch, : int(lb.max())], lb)
                torch.softmax(logits, dim=-1)
        epoch_s.append(time.perf_counter() - t0)
        train_s.append(t1 - t0)
    return epoch_s, train_s


def _timed(f) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = f()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def measure(hp: HParams, data: EncodedData, pairs: int, console: Console) -> Timing:
    """`pairs` one-epoch runs of each loop, alternating which goes first, so load drift hits both alike."""
    hp = replace(hp, max_epochs=1)
    fit_wall, bare_wall, wall_ratio, cpu_ratio, bare_train = [], [], [], [], []
    for i in range(pairs):
        runs = {}
        for which in ("fit", "bare") if i % 2 == 0 else ("bare", "fit"):
            runs[which] = _timed(lambda w=which: fit(hp, data) if w == "fit" else bare_epochs(hp, data, 1))
        (fw, fc, _), (bw, bc, (_, train_s)) = runs["fit"], runs["bare"]
        fit_wall.append(fw)
        bare_wall.append(bw)
        wall_ratio.append(fw / bw)
        cpu_ratio.append(fc / bc)
        bare_train.append(train_s[0])
        console.log(f"hidden {hp.hidden_size}, pair {i + 1}/{pairs}: fit {fw:.2f} s, bare {bw:.2f} s wall")
    med = statistics.median
    return Timing(
        hp.hidden_size,
        med(fit_wall),
        med(bare_wall),
        med(wall_ratio),
        med(cpu_ratio),
        med(bare_train),
        pairs,
        len(data.y_train),
    )


HEADER = (
    "hidden",
    "fit epoch s",
    "bare epoch s",
    "ratio (wall)",
    "ratio (CPU)",
    "bare train-only s",
    "train tweets/s (fit)",
    "pairs",
)


def _cells(t: Timing) -> list[str]:
    return [
        str(t.hidden_size),
        f"{t.fit_wall_s:.2f}",
        f"{t.bare_wall_s:.2f}",
        f"{t.wall_ratio:.3f}",
        f"{t.cpu_ratio:.3f} {'✓' if t.cpu_ratio <= TARGET else '✗'}",
        f"{t.bare_train_s:.2f}",
        f"{t.tweets_per_s:.0f}",
        str(t.pairs),
    ]


def rich_table(timings: list[Timing]) -> Table:
    table = Table(title="Throughput: fit vs a bare loop", caption=f"medians over pairs; target ratio <= {TARGET}")
    for name in HEADER:
        table.add_column(name, justify="right")
    for t in timings:
        table.add_row(*_cells(t))
    return table


def markdown(timings: list[Timing], args: argparse.Namespace, data: EncodedData, hp: HParams) -> str:
    lines = [
        "## Throughput",
        "",
        f"`python benchmarks/throughput.py --sizes {','.join(map(str, args.sizes))} --pairs {args.pairs} "
        f"--threads {args.threads}`. Greek `valid_set.csv`, seeded 80/20 stratified split "
        f"({len(data.y_train)} training, {len(data.y_valid)} validation tweets), `sequence` vectoriser "
        f"({data.input_size}-d Word2Vec, max_len {data.x_train.shape[1]}), bidirectional {hp.cell.upper()}, "
        f"{hp.num_layers} layers, skip, attention, batch {hp.batch_size}, lr {hp.lr:g}, clip {hp.clip}. "
        "`fit`: a one-epoch call (model build, training pass, validation pass, metrics). Bare loop: the same "
        "model (`build_model`), tensors, Adam, cross-entropy, clipping, shuffling and batch trimming (random "
        "batches, as a hand-written loop has them; `fit` groups tweets of similar length into a batch), and the "
        "same validation forward pass, but no metrics or bookkeeping. Ratio = fit / bare (target <= 1.05): the "
        "median over pairs of runs that alternate which loop goes first, in wall time and in this process's "
        "CPU time (steadier on a shared machine; exact with 1 thread). Epoch times and tweets/s: median wall.",
        "",
        *markdown_table(HEADER, (_cells(t) for t in timings)),
        *closing(args, args.threads),
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="hidden 16, 2 pairs; writes only to --output")
    p.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[16, 64, 256])
    p.add_argument("--pairs", type=int, default=4, help="one-epoch runs of each loop per size (default: 4)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for both loops (default: 1)")
    p.add_argument("--vector-size", type=int, default=300, help="Word2Vec dimension (default: 300)")
    add_output_arguments(p, SECTION, "a paragraph added under the table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.sizes, args.pairs = [16], 2
    console = Console(stderr=True)
    greek = args.data_dir / "greek-election-tweets-ys19-2023"
    if data_folder_missing(greek, console):
        return 2
    torch.set_num_threads(args.threads)
    settings = DataSettings.from_settings(
        train=str(greek / "valid_set.csv"), unlabelled=(str(greek / "test_set.csv"),), vector_size=args.vector_size
    )
    data = encode(load_dataset(settings), settings)
    base = HParams(device="cpu", num_threads=args.threads)
    warm = replace(base, hidden_size=min(args.sizes), max_epochs=1)
    fit(warm, data), bare_epochs(warm, data, 1)  # untimed: one-time costs of the process (lazy imports, allocator)
    timings = [measure(replace(base, hidden_size=h), data, args.pairs, console) for h in args.sizes]
    Console(width=None if sys.stdout.isatty() else 160).print(rich_table(timings))
    publish(SECTION, markdown(timings, args, data, base), args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
