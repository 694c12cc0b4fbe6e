"""`python -m study.predict`: label the tweets of a CSV file with a study's saved model, into CSV or Parquet.

Here: the command line, `resolve_model_folder` and `predict_file`, which streams the input in chunks of rows
through a LoadedModel into the output (written to a temporary file and renamed at the end, so a bad byte in a
late chunk leaves nothing behind). Not here: the model format and how a text becomes probabilities
(trainables/saved_model.py), reading and checking the CSV (trainables/chunks.py).

The output's columns and rows are DESCRIPTION's (`predicted`: the most probable class). Empty texts are classified
too (as a tweet with no known word), so every input row has an output row; the command says how many there were.

Exit codes: 0 done, 2 bad input or settings (nothing written), 130 interrupted (nothing written), 1 other.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from study.cli import EXIT_CODES_HELP, CommandParser, run_command
from trainables.chunks import TextChunk, read_text_chunks
from trainables.data import DataSpec
from trainables.files import atomic_write
from trainables.saved_model import MODEL_FOLDER, PREDICT_BATCH, LoadedModel, ModelError, load_model
from trainables.settings import ConfigError

log = logging.getLogger(__name__)

OUTPUT_FORMATS = (".csv", ".parquet")
PREDICTED, PROB_PREFIX = "predicted", "prob_"
DEFAULT_CHUNK = 10_000
STAGES = ("read", "clean", "encode", "forward", "write")

DESCRIPTION = """\
Label the tweets of a CSV file with the model a study saved (results/NAME/model), or any model folder
(--model). Texts are cleaned, party-prefixed and encoded exactly as in training. The output has the
--id-columns as read, `predicted` and one `prob_<class>` column per class, one row per input row in input
order, as CSV or Parquet by the extension of --out. Column defaults are the model's training settings.
"""

EPILOG = f"""\
examples:
  python -m study.predict results/greek --input test_set.csv --out labelled.csv --id-columns New_ID
  python -m study.predict --model results/greek/model --input tweets.csv --out labelled.parquet \\
      --text-column tweet --party-column '' --device cuda --batch-size 2048

{EXIT_CODES_HELP}
"""


@dataclass
class Summary:
    """What `predict_file` did: rows, empty texts, and the seconds spent in each stage."""

    rows: int = 0
    empty_texts: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    clock: Callable[[], float] = time.perf_counter  # wall time; time.process_time counts this process's CPU

    def timed(self, stage: str, start: float) -> float:
        now = self.clock()
        self.seconds[stage] += now - start
        return now


def resolve_model_folder(study: str | None, model: str | None) -> Path:
    """The model folder from the command line: STUDY/model, or --model DIR (exactly one of the two)."""
    if (study is None) == (model is None):
        raise ConfigError(
            "give the study folder (e.g. `python -m study.predict results/NAME ...`) or `--model DIR`, "
            f"exactly one of the two, but got {'both' if study else 'neither'}."
        )
    if model is not None:
        return Path(model)
    folder = Path(study)
    if not folder.is_dir():
        raise ConfigError(f"study folder {folder} does not exist; give a folder such as results/NAME.")
    if not (folder / MODEL_FOLDER).exists():
        raise ModelError(
            f"Study folder {folder} has no {MODEL_FOLDER}/ folder: the study saved no final model (it ran with "
            f"the final stage off, or before studies saved one). Rerun it with the final stage on, or give "
            "`--model DIR`."
        )
    return folder / MODEL_FOLDER


def check_output(out: Path, input_path: Path, overwrite: bool) -> None:
    """Refuse an output path that could not be written, or would be overwritten without `--overwrite`."""
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(
            f"`--out` must end in {' or '.join(OUTPUT_FORMATS)} (the format follows the extension), "
            f"but got {str(out)!r}."
        )
    if not out.parent.is_dir():
        raise ConfigError(f"`--out` {str(out)!r} is in a folder that does not exist ({out.parent}); create it first.")
    if out.is_dir():
        raise ConfigError(f"`--out` {str(out)!r} is a folder; give a file path ending in .csv or .parquet.")
    if out.exists() and input_path.exists() and out.resolve() == input_path.resolve():
        raise ConfigError(f"`--out` {str(out)!r} is the input file; write the predictions to another file.")
    if out.exists() and not overwrite:
        raise ConfigError(f"`--out` {str(out)!r} exists; pass `--overwrite` to replace it, or choose another path.")


def output_columns(classes: tuple[str, ...], id_columns: tuple[str, ...]) -> list[str]:
    """The output's columns: the id columns, `predicted`, one `prob_<class>` per class; names must not clash."""
    ours = [PREDICTED, *(f"{PROB_PREFIX}{c}" for c in classes)]
    if repeated := sorted({c for c in id_columns if id_columns.count(c) > 1}):
        raise ConfigError(f"`--id-columns` must name each column once, but {repeated} appear more than once.")
    if clash := [c for c in id_columns if c in ours]:
        raise ConfigError(
            f"`--id-columns` {clash} clash with the output's own columns {ours}; rename those columns in the input."
        )
    return [*id_columns, *ours]


def _writer(out: Path, columns: list[str], n_ids: int) -> tuple[Callable[[str], object], Callable]:
    """(open(tmp) -> handle, write(handle, frame, first)) for the output's format."""
    if out.suffix.lower() == ".csv":
        return (
            lambda tmp: open(tmp, "w", encoding="utf-8", newline=""),
            lambda fh, frame, first: frame.to_csv(fh, header=first, index=False, lineterminator="\n"),
        )
    schema = pa.schema(
        [(c, pa.string()) for c in columns[: n_ids + 1]] + [(c, pa.float32()) for c in columns[n_ids + 1 :]]
    )
    return (
        lambda tmp: pq.ParquetWriter(tmp, schema),
        lambda writer, frame, first: writer.write_table(
            pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        ),
    )


def predict_file(
    model: LoadedModel,
    chunks: Iterator[TextChunk],
    out: Path,
    id_columns: tuple[str, ...] = (),
    batch_size: int = PREDICT_BATCH,
    on_chunk: Callable[[TextChunk, Summary], None] | None = None,
    summary: Summary | None = None,
) -> Summary:
    """Classify every chunk of rows and write the output file (atomically: all of it, or nothing).

    Args:
        chunks: the input's chunks (`read_text_chunks`); a DataError raised by a late chunk leaves no output.
        out: the output file; .csv or .parquet.
        id_columns: the chunks' id columns, written first.
        batch_size: rows per forward pass.
        on_chunk: called after each chunk is written (a progress bar).
        summary: a summary to add to (e.g. holding the time it took to read the first chunk); None: a new one.

    Returns:
        Rows written, empty texts among them, and the seconds spent in each of STAGES.
    """
    columns = output_columns(model.classes, id_columns)
    open_output, write = _writer(out, columns, len(id_columns))
    summary = Summary() if summary is None else summary

    def write_all(tmp: str) -> None:
        with open_output(tmp) as handle:
            t = summary.clock()
            for chunk in chunks:
                t = summary.timed("read", t)
                tokens = model.tokens(model.compose(chunk.texts, chunk.parties))
                t = summary.timed("clean", t)
                encoded = model.encode(tokens)
                t = summary.timed("encode", t)
                probs = model.forward(encoded.x, encoded.lengths, batch_size, encoded.extra)  # (N, C)
                t = summary.timed("forward", t)
                frame = chunk.ids.copy()
                frame[PREDICTED] = np.asarray(model.classes, dtype=object)[probs.argmax(axis=1)]
                frame[columns[len(id_columns) + 1 :]] = probs
                write(handle, frame, summary.rows == 0)
                summary.rows += len(chunk)
                summary.empty_texts += sum(not text.strip() for text in chunk.texts)
                t = summary.timed("write", t)
                if on_chunk is not None:
                    on_chunk(chunk, summary)
                t = summary.clock()

    atomic_write(out, write_all)
    return summary


def parser() -> CommandParser:
    p = CommandParser("python -m study.predict", DESCRIPTION, EPILOG)
    p.add_argument("study", nargs="?", default=None, help="a study folder, results/NAME (its model/ is used)")
    p.add_argument("--model", metavar="DIR", default=None, help="a model folder instead of a study folder")
    p.add_argument("--input", metavar="FILE", required=True, help="CSV file of tweets to label")
    p.add_argument("--out", metavar="FILE", required=True, help="output file: .csv or .parquet")
    p.add_argument("--text-column", default=None, help="column with the tweet text (default: the model's)")
    p.add_argument(
        "--party-column",
        default=None,
        help="column with the party, put before the text when the model was trained so ('' for none; "
        "default: the model's)",
    )
    p.add_argument(
        "--id-columns", default="", metavar="A,B", help="comma-separated columns copied to the output as read"
    )
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK, help=f"rows read at a time ({DEFAULT_CHUNK})")
    p.add_argument("--batch-size", type=int, default=PREDICT_BATCH, help=f"rows per forward pass ({PREDICT_BATCH})")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the network runs (auto)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return p


def _reader_spec(model: LoadedModel, text_column: str | None, party_column: str | None) -> DataSpec:
    text = model.spec.text_column if text_column is None else text_column
    party = (model.spec.party_column if model.party_prefix else "") if party_column is None else party_column
    if party and not model.party_prefix:
        log.warning("The model was trained without the party prefix; ignoring `--party-column %s`", party)
        party = ""
    elif model.party_prefix and not party:
        log.warning("The model was trained with the party before each text; predicting without it")
    try:
        return DataSpec(text_column=text, party_column=party, prepend_party=bool(party))
    except ValueError as e:
        raise ConfigError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def work(console: Console) -> None:
        for name in ("chunk_size", "batch_size"):
            if getattr(args, name) < 1:
                raise ConfigError(f"`--{name.replace('_', '-')}` must be >= 1, but got {getattr(args, name)}.")
        folder = resolve_model_folder(args.study, args.model)
        input_path, out = Path(args.input), Path(args.out)
        check_output(out, input_path, args.overwrite)
        if args.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("`--device` is 'cuda', but no CUDA device is available here; use auto or cpu.")
        model = load_model(folder, device=args.device)
        id_columns = tuple(c.strip() for c in args.id_columns.split(",") if c.strip())
        output_columns(model.classes, id_columns)
        spec = _reader_spec(model, args.text_column, args.party_column)
        model.tokens(["warm-up"])  # builds the cleaner's tables once (about 0.5 s), so `clean` times tweets only
        chunks = read_text_chunks(input_path, spec, id_columns, args.chunk_size)
        summary = Summary()
        t = summary.clock()
        first = next(chunks)  # the file and its columns are checked here, before the output is opened
        summary.timed("read", t)
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"Labelling {input_path.name}", total=input_path.stat().st_size)

            def advance(chunk: TextChunk, summary: Summary) -> None:
                progress.update(task, completed=chunk.bytes_read, description=f"{summary.rows:,} rows")

            predict_file(model, itertools.chain([first], chunks), out, id_columns, args.batch_size, advance, summary)
        stages = ", ".join(f"{s} {summary.seconds[s]:.1f}" for s in STAGES)
        where = f"[bold]{escape(str(out))}[/] on {model.device}"
        console.print(f"Wrote {summary.rows:,} rows to {where} (seconds: {stages}).", soft_wrap=True)
        if summary.empty_texts:
            console.print(f"{summary.empty_texts:,} empty text(s) were labelled as tweets with no known word.")
        print(out)

    return run_command("predict", work, bad_input=(ModelError,), interrupted="nothing was written.")


if __name__ == "__main__":
    sys.exit(main())
