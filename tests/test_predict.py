"""Tests for `python -m study.predict` and the chunked reader under it (trainables.chunks.read_text_chunks).

Real models trained on real Greek tweets, real CSV and Parquet files. The happy path: a CSV with a BOM, CRLF,
quoted multi-line texts, an empty text and extra id columns gives one output row per input row, in order, ids as
read, and the probabilities of the Python entry point. Each bad input is refused with exit 2, a message naming
the file or setting and the fix, and nothing written (also when the bad byte sits in a late chunk).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from study.predict import main
from trainables.chunks import read_text_chunks
from trainables.data import DataError, DataSpec, read_labelled, read_unlabelled, subset
from trainables.hparams import HParams
from trainables.preprocess import CleanConfig
from trainables.saved_model import CONFIG_FILE, MODEL_FOLDER, load_model, save_model, train_final_model
from trainables.vectorize import VectorConfig

REPO = Path(__file__).resolve().parents[1]
GREEK = "greek-election-tweets-ys19-2023/valid_set.csv"
CLASSES = ("NEGATIVE", "NEUTRAL", "POSITIVE")
PROBS = [f"prob_{c}" for c in CLASSES]


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # rich would wrap messages at 80 columns


@pytest.fixture(scope="module")
def greek_rows(shared_data_dir) -> pd.DataFrame:
    """40 seeded rows of the real file, read raw (texts and parties as a user has them)."""
    frame = pd.read_csv(shared_data_dir / GREEK, dtype=str, keep_default_na=False)
    return frame.iloc[np.random.default_rng(1).permutation(len(frame))[:40]].reset_index(drop=True)


@pytest.fixture(scope="module")
def studies(shared_data_dir, tmp_path_factory) -> dict[str, Path]:
    """Study folders whose model/ was trained (one epoch, 300 rows) in `sequence` (LSTM, attention) and `mean` mode."""
    data = read_labelled(shared_data_dir / GREEK)
    labelled = subset(data, np.random.default_rng(0).permutation(len(data))[:300])
    root = tmp_path_factory.mktemp("studies")
    folders = {}
    for mode, hp in (
        ("sequence", HParams(cell="lstm", hidden_size=8, num_layers=2, attention=True, num_threads=1)),
        ("mean", HParams(cell="gru", hidden_size=8, num_layers=1, attention=False, num_threads=1)),
    ):
        vectors = VectorConfig(mode=mode, vector_size=16, epochs=5, max_len=24)
        model = train_final_model(hp, labelled, (), DataSpec(), CleanConfig(), vectors, epochs=1)
        save_model(root / mode / MODEL_FOLDER, model, {"study": mode})
        folders[mode] = root / mode
    return folders


def _csv(path: Path, frame: pd.DataFrame, eol: str = "\n", bom: bool = False) -> Path:
    text = frame.to_csv(index=False, lineterminator=eol)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def _awkward_input(greek_rows: pd.DataFrame) -> pd.DataFrame:
    """Real tweets plus a quoted multi-line text (CRLF inside, commas, doubled quotes) and an empty text;
    id columns with leading zeros and text."""
    rows = greek_rows.iloc[:10][["Text", "Party"]].reset_index(drop=True)
    extra = pd.DataFrame(
        {
            "Text": ['Πρώτη γραμμή,\r\nδεύτερη "με εισαγωγικά", τρίτη\r\nΚΑΛΗ ΔΟΥΛΕΙΑ', ""],
            "Party": ["ND", "SYRIZA"],
        }
    )
    rows = pd.concat([rows.iloc[:5], extra, rows.iloc[5:]], ignore_index=True)
    rows.insert(0, "New_ID", [f"{i:03d}" for i in range(len(rows))])
    rows["source"] = [f"batch {i % 3}" for i in range(len(rows))]
    return rows


@pytest.mark.parametrize("mode", ["sequence", "mean"])
def test_predicts_a_csv_with_bom_crlf_multiline_texts_and_id_columns(studies, greek_rows, mode, tmp_path, capsys):
    rows = _awkward_input(greek_rows)
    src = _csv(tmp_path / "tweets.csv", rows, eol="\r\n", bom=True)
    out = tmp_path / "labelled.csv"
    argv = [studies[mode], "--input", src, "--out", out, "--id-columns", "New_ID,source"]
    code, stdout, stderr = _run([*argv, "--chunk-size", 4, "--batch-size", 3], capsys)
    assert code == 0, stderr
    assert stdout.strip() == str(out)
    assert "1 empty text(s)" in stderr

    got = pd.read_csv(out, dtype={"New_ID": str, "source": str}, keep_default_na=False)
    assert list(got.columns) == ["New_ID", "source", "predicted", *PROBS]
    assert got["New_ID"].tolist() == rows["New_ID"].tolist()  # every row, in order, "000" kept as read
    assert got["source"].tolist() == rows["source"].tolist()
    model = load_model(studies[mode] / MODEL_FOLDER)
    texts = [t.replace("\r\n", "\n") for t in rows["Text"]]
    expected = model.predict_proba(texts, rows["Party"].tolist())
    np.testing.assert_allclose(got[PROBS].to_numpy(), expected, rtol=0, atol=1e-6)
    assert got["predicted"].tolist() == [CLASSES[i] for i in expected.argmax(axis=1)]


def test_parquet_output_holds_what_the_csv_output_holds(studies, greek_rows, tmp_path, capsys):
    src = _csv(tmp_path / "tweets.csv", _awkward_input(greek_rows))
    for name in ("out.csv", "out.parquet"):
        code, _, stderr = _run(
            [studies["sequence"], "--input", src, "--out", tmp_path / name, "--id-columns", "New_ID"], capsys
        )
        assert code == 0, stderr
    csv = pd.read_csv(tmp_path / "out.csv", dtype={"New_ID": str})
    parquet = pd.read_parquet(tmp_path / "out.parquet")
    assert [str(t) for t in parquet.dtypes] == ["str", "str", "float32", "float32", "float32"]
    assert parquet["New_ID"].tolist() == csv["New_ID"].tolist()
    assert parquet["predicted"].tolist() == csv["predicted"].tolist()
    np.testing.assert_allclose(parquet[PROBS].to_numpy(), csv[PROBS].to_numpy(), rtol=0, atol=1e-7)


def test_column_flags_override_the_models_training_columns(studies, greek_rows, tmp_path, capsys):
    model_dir = studies["sequence"] / MODEL_FOLDER
    rows = greek_rows.rename(columns={"Text": "tweet", "Party": "side"})[["tweet", "side"]]
    src = _csv(tmp_path / "renamed.csv", rows)
    code, _, stderr = _run(
        [
            "--model",
            model_dir,
            "--input",
            src,
            "--out",
            tmp_path / "a.csv",
            "--text-column",
            "tweet",
            "--party-column",
            "side",
        ],
        capsys,
    )
    assert code == 0, stderr
    code, _, stderr = _run(
        [
            "--model",
            model_dir,
            "--input",
            src,
            "--out",
            tmp_path / "b.csv",
            "--text-column",
            "tweet",
            "--party-column",
            "",
        ],
        capsys,
    )
    assert code == 0, stderr
    assert "predicting without it" in stderr
    model = load_model(model_dir)
    with_party = model.predict_proba(rows["tweet"].tolist(), rows["side"].tolist())
    without = model.predict_proba(rows["tweet"].tolist())
    np.testing.assert_allclose(pd.read_csv(tmp_path / "a.csv")[PROBS].to_numpy(), with_party, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pd.read_csv(tmp_path / "b.csv")[PROBS].to_numpy(), without, rtol=0, atol=1e-6)
    assert not np.allclose(with_party, without, atol=1e-4)  # the party prefix matters, so the flag is tested


def test_overwrite_replaces_an_existing_output(studies, greek_rows, tmp_path, capsys):
    src = _csv(tmp_path / "tweets.csv", greek_rows)
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    code, _, stderr = _run([studies["sequence"], "--input", src, "--out", out, "--overwrite"], capsys)
    assert code == 0, stderr
    assert len(pd.read_csv(out)) == len(greek_rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "tweets.csv"]


def test_the_command_runs_as_a_fresh_process(studies, greek_rows, tmp_path):
    src = _csv(tmp_path / "tweets.csv", greek_rows)
    out = tmp_path / "out.parquet"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    argv = ["--model", studies["mean"] / MODEL_FOLDER, "--input", src, "--out", out, "--id-columns", "New_ID"]
    done = subprocess.run(
        [sys.executable, "-m", "study.predict", *map(str, argv)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = pd.read_parquet(out)
    assert got["New_ID"].tolist() == greek_rows["New_ID"].tolist()
    expected = load_model(studies["mean"] / MODEL_FOLDER).predict_proba(
        greek_rows["Text"].tolist(), greek_rows["Party"].tolist()
    )
    np.testing.assert_allclose(got[PROBS].to_numpy(), expected, rtol=0, atol=1e-6)


# -- bad input: exit 2, one message naming the file or setting and the fix, nothing written


def _bad_bytes_late(tmp: Path) -> Path:
    """30 good rows, then a row in Windows Greek (cp1253): the bad byte comes in the 8th chunk of 4 rows."""
    good = "".join(f"{i},Καλή μέρα {i},ND\n" for i in range(30))
    return _write(tmp / "cp1253.csv", ("New_ID,Text,Party\n" + good).encode() + "30,Κακή μέρα,ND\n".encode("cp1253"))


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


GOOD = "New_ID,Text,Party\n1,Καλή δουλειά μπράβο,ND\n2,Ντροπή σας,SYRIZA\n"


def _version(version: int) -> Callable[[Path, dict], list]:
    def make(tmp: Path, studies: dict) -> list:
        import shutil

        folder = Path(shutil.copytree(studies["sequence"] / MODEL_FOLDER, tmp / "old-model"))
        config = folder / CONFIG_FILE
        info = json.loads(config.read_text())
        config.write_text(json.dumps({**info, "format_version": version}))
        return ["--model", folder, "--input", _write(tmp / "in.csv", GOOD)]

    return make


def _study(make_input: Callable[[Path], Path], *extra) -> Callable[[Path, dict], list]:
    return lambda tmp, studies: [studies["sequence"], "--input", make_input(tmp), *extra]


@dataclass(frozen=True)
class Bad:
    id: str
    make: Callable[[Path, dict], list]  # (tmp, studies) -> argv without --out
    names: tuple[str, ...]  # what the message must name
    fix: str  # how the message says to fix it
    out: str = "out/labelled.csv"


BAD = [
    Bad("missing input", _study(lambda t: t / "nofile.csv"), ("nofile.csv", "does not exist"), "check the path"),
    Bad("empty file", _study(lambda t: _write(t / "empty.csv", "")), ("empty.csv", "is empty"), "header line"),
    Bad(
        "header only",
        _study(lambda t: _write(t / "header.csv", "New_ID,Text,Party\n")),
        ("header.csv", "no data rows"),
        "add rows",
    ),
    Bad(
        "missing text column",
        _study(lambda t: _write(t / "cols.csv", GOOD.replace("Text", "Tweet"))),
        ("cols.csv", "no column 'Text'"),
        "`--text-column`",
    ),
    Bad(
        "missing party column",
        _study(lambda t: _write(t / "cols.csv", GOOD.replace("Party", "Side"))),
        ("cols.csv", "no column 'Party'"),
        "`--party-column ''`",
    ),
    Bad(
        "missing id column",
        _study(lambda t: _write(t / "cols.csv", GOOD), "--id-columns", "New_ID,tweet_id"),
        ("cols.csv", "no column 'tweet_id'"),
        "`--id-columns`",
    ),
    Bad(
        "non-UTF-8 byte in a late chunk",
        _study(_bad_bytes_late, "--chunk-size", "4"),
        ("cp1253.csv", "not UTF-8", "line 32"),
        "iconv",
    ),
    Bad(
        "ragged row in a late chunk",
        _study(
            lambda t: _write(t / "ragged.csv", GOOD + "".join(f"{i},x,ND\n" for i in range(20)) + "9,a,b,ND\n"),
            "--chunk-size",
            "4",
        ),
        ("ragged.csv", "cannot be parsed as CSV"),
        "doubled",
    ),
    Bad("other format version", _version(3), ("old-model", "format version 3"), "reads format version(s) 4"),
    Bad(
        "unknown output extension",
        _study(lambda t: _write(t / "in.csv", GOOD)),
        ("labelled.txt",),
        ".csv or .parquet",
        "out/labelled.txt",
    ),
    Bad(
        "no extension",
        _study(lambda t: _write(t / "in.csv", GOOD)),
        ("out/labelled'",),
        ".csv or .parquet",
        "out/labelled",
    ),
    Bad(
        "output folder missing",
        _study(lambda t: _write(t / "in.csv", GOOD)),
        ("nowhere",),
        "create it first",
        "out/nowhere/x.csv",
    ),
    Bad(
        "study without a model",
        lambda t, s: [t, "--input", _write(t / "in.csv", GOOD)],
        ("has no model/ folder",),
        "--model DIR",
    ),
    Bad(
        "not a model folder",
        lambda t, s: ["--model", t, "--input", _write(t / "in.csv", GOOD)],
        ("no model.json",),
        "results/<name>/model",
    ),
    Bad(
        "study and --model",
        lambda t, s: [s["sequence"], "--model", s["mean"] / MODEL_FOLDER, "--input", _write(t / "in.csv", GOOD)],
        ("exactly one", "both"),
        "--model DIR",
    ),
    Bad("neither study nor --model", lambda t, s: ["--input", _write(t / "in.csv", GOOD)], ("neither",), "--model DIR"),
    Bad(
        "id column clashes with an output column",
        _study(lambda t: _write(t / "in.csv", GOOD.replace("New_ID", "predicted")), "--id-columns", "predicted"),
        ("['predicted']", "clash"),
        "rename",
    ),
    Bad("chunk size 0", _study(lambda t: _write(t / "in.csv", GOOD), "--chunk-size", "0"), ("--chunk-size",), ">= 1"),
    Bad(
        "text and party the same column",
        _study(lambda t: _write(t / "in.csv", GOOD), "--party-column", "Text"),
        ("`party_column`", "'Text'"),
        "party_column=''",
    ),
]
if not torch.cuda.is_available():
    BAD.append(
        Bad(
            "cuda without a GPU",
            _study(lambda t: _write(t / "in.csv", GOOD), "--device", "cuda"),
            ("'cuda'",),
            "auto or cpu",
        )
    )


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_bad_input_is_refused_with_exit_2_and_nothing_written(case, studies, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    argv = case.make(tmp_path, studies)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, stdout, stderr = _run([*argv, "--out", tmp_path / case.out], capsys)
    assert code == 2, stderr
    assert stderr.startswith("error:") and stderr.count("error:") == 1, stderr
    for name in case.names:
        assert name in stderr, (name, stderr)
    assert case.fix in stderr, stderr
    assert stdout == ""
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written, no temporary


def test_an_existing_output_is_kept_without_overwrite(studies, tmp_path, capsys):
    out = _write(tmp_path / "labelled.csv", "precious,results\n")
    code, _, stderr = _run([studies["sequence"], "--input", _write(tmp_path / "in.csv", GOOD), "--out", out], capsys)
    assert code == 2
    assert "labelled.csv" in stderr and "exists" in stderr and "--overwrite" in stderr
    assert out.read_text() == "precious,results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "labelled.csv"]


# -- the chunked reader: what read_unlabelled reads, chunk by chunk, with the same messages


def test_chunks_hold_what_the_whole_file_reader_reads_across_block_boundaries(tmp_path):
    # pandas asks for 262,144 characters at a time; put a CRLF and a two-byte Greek letter across that boundary
    block = 262_144
    head = "Text,Party\n"
    pad = block - len(head) - len(",ND") - 1
    rows = [f"{'x' * pad},ND\r\n", "α,KKE\r\n", *(f"Γειά {i} σου,ND\r\n" for i in range(50))]
    path = _write(tmp_path / "boundary.csv", head + "".join(rows))
    assert path.read_bytes()[block - 1 : block + 1] == b"\r\n"
    chunks = list(read_text_chunks(path, DataSpec(), (), chunk_size=7))
    assert [c.start for c in chunks] == list(range(0, 52, 7))
    texts = [t for c in chunks for t in c.texts]
    parties = [p for c in chunks for p in c.parties]
    whole = read_unlabelled(path, DataSpec())  # party-prefixed texts
    assert [f"{p} {t}" for p, t in zip(parties, texts)] == whole
    assert not any("\r" in t or "\r" in p for t, p in zip(texts, parties))
    # a 2-byte letter split between two blocks
    split = _write(tmp_path / "split.csv", head + "y" * (block - len(head) - 1) + "α,ND\n")
    assert [t for c in read_text_chunks(split, DataSpec()) for t in c.texts] == ["y" * (block - len(head) - 1) + "α"]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n \r\n",
        b"Text,Party\n",
        b"Tweet,Party\nx,ND\n",
        "Text,Party\nκαλή,ND\n".encode() + "κακή,ND\n".encode("cp1253"),
        b"\xef\xbb\xbfText,Party\n" + "καλή,ND\n".encode() * 30_000 + b"\xe1\n",
        b"Text,Party\na,b,c\n",
    ],
    ids=["empty", "whitespace", "header only", "no text column", "cp1253", "bad byte after the first block", "ragged"],
)
def test_chunked_reader_says_what_the_whole_file_reader_says(tmp_path, content):
    path = _write(tmp_path / "bad.csv", content)
    with pytest.raises(DataError) as whole:
        read_unlabelled(path, DataSpec())
    with pytest.raises(DataError) as chunked:
        list(read_text_chunks(path, DataSpec(), chunk_size=1000))
    assert str(chunked.value) == str(whole.value)


@pytest.mark.parametrize("block", [1, 2, 3, 5, 7, 64])
def test_the_decoded_stream_is_the_whole_file_decoded_whatever_the_block_size(tmp_path, block):
    from trainables.chunks import _Utf8Text  # the stream pandas reads; blocks of every size must join up

    raw = b"\xef\xbb\xbf" + 'Κείμενο,Party\r\n"α\r\nβ",ND\r\n€ γ\r\r\n,KKE\n'.encode()
    path = _write(tmp_path / "stream.csv", raw)
    with open(path, "rb") as fh:
        stream = _Utf8Text(fh, path)
        parts = iter(lambda: stream.read(block), "")
        assert "".join(parts) == raw[3:].decode().replace("\r\n", "\n")
        assert stream.bytes_read == len(raw)
