"""The bad-input catalogue: every case is refused with one clear message, exit code 2 and nothing written.

Each case builds its bad file in tmp_path, runs `study.run.main` (or `study.evaluate.main`) and checks that the
message names the file or the setting and says how to fix it, and that `--results-dir` gained no study folder.
Refusals happen before Ray starts: a guard turns any attempt to start Ray into a test failure.
The inputs that must simply work (BOM, CRLF, quoted multi-line tweets, a 1 MB tweet) are checked through
`load_dataset`/`encode`, plus one slow end-to-end study. docs/troubleshooting.md lists the same catalogue.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from study.config import StudyConfig
from study.run import main
from trainables.inputs import encode, load_dataset

GREEK = "valid_set.csv"  # in greek-election-tweets-ys19-2023/
HEADER = "Text,Sentiment,Party"
ROWS = [  # 4 rows per class, enough for a stratified split
    # a letter, not a number, tells the rows apart: cleaning drops numbers, and identical texts stay in one split
    *(f"Καλή δουλειά λέξη{chr(0x3B1 + i)} μπράβο,POSITIVE,ND" for i in range(4)),
    *(f"Κακή κυβέρνηση λέξη{chr(0x3B1 + i)} ντροπή,NEGATIVE,SYRIZA" for i in range(4)),
    *(f"Συνέντευξη λέξη{chr(0x3B1 + i)} στον ΣΚΑΪ,NEUTRAL,KKE" for i in range(4)),
]


class RayStarted(BaseException):
    """Raised by the guard; a BaseException so that main's last-resort `except Exception` cannot hide it."""


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("RNN_STUDY_CACHE", str(tmp_path / "cache"))  # demo data and Word2Vec, never ~/.cache
    monkeypatch.setenv("COLUMNS", "1000")  # rich would wrap (and fold long paths) at 80 columns


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if anything tries to start or join Ray."""
    import study.search.driver

    def refuse(cfg):
        raise RayStarted("Ray was started before the bad input was refused")

    monkeypatch.setattr(study.search.driver, "init_ray", refuse)


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def _csv(path: Path, rows: list[str] = ROWS, header: str = HEADER, eol: str = "\n") -> Path:
    return _write(path, eol.join([header, *rows]) + eol)


def _normalise(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Case:
    """One bad input: `make(tmp)` builds the files and returns the argv; the message must hold `names`
    (the file or the setting) and at least one of `fixes`."""

    id: str
    make: Callable[[Path], list[str]]
    names: tuple[str, ...]
    fixes: tuple[str, ...]
    command: str = "study.run"  # or "study.evaluate"
    pending: str = ""  # a known bug whose fix is pending: the case is a strict xfail until then


def _train(make_file: Callable[[Path], Path], *extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["--train", str(make_file(tmp)), *extra]


def _toml(text: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["--config", str(_write(tmp / "study.toml", text))]


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


CASES = [
    # -- input files
    Case("missing file", _train(lambda t: t / "nofile.csv"), ("nofile.csv", "does not exist"), ("check the path",)),
    Case(
        "directory, not a file",
        _train(lambda t: _mkdir(t / "tweets")),
        ("tweets", "is a directory"),
        ("CSV file inside it",),
    ),
    Case(
        "empty file",
        _train(lambda t: _write(t / "empty.csv", "")),
        ("empty.csv", "is empty"),
        ("header line and at least one data row",),
    ),
    Case(
        "whitespace-only file",
        _train(lambda t: _write(t / "blank.csv", "\n\n  \r\n")),
        ("blank.csv", "is empty"),
        ("header line",),
    ),
    Case(
        "header only",
        _train(lambda t: _write(t / "header.csv", HEADER + "\n")),
        ("header.csv", "no data rows"),
        ("add rows",),
    ),
    Case(
        "missing text column",
        _train(lambda t: _csv(t / "cols.csv", header="Tweet,Sentiment,Party")),
        ("cols.csv", "'Text'"),
        ("--text-column",),
    ),
    Case(
        "missing label column",
        _train(lambda t: _csv(t / "cols.csv", header="Text,Label,Party")),
        ("cols.csv", "'Sentiment'"),
        ("--label-column",),
    ),
    Case(
        "missing party column",
        _train(lambda t: _csv(t / "cols.csv", header="Text,Sentiment,Side")),
        ("cols.csv", "'Party'"),
        ("--party-column ''",),
    ),
    Case(
        "unknown label values",
        _train(
            lambda t: _csv(t / "labels.csv", [*ROWS, "Τι λες,2,ND"]),
            "--label-map",
            "NEGATIVE=neg,NEUTRAL=neu,POSITIVE=pos",
        ),
        ("labels.csv", "'2'", "label map"),
        ("--label-map", "--drop-unmapped"),
    ),
    Case(
        "empty labels",
        _train(lambda t: _csv(t / "labels.csv", [*ROWS, "Τι λες,,ND"])),
        ("labels.csv", "empty label", "data row(s) 13"),
        ("Fill them in",),
    ),
    Case(
        "one class only",
        _train(lambda t: _csv(t / "one.csv", ROWS[:4])),
        ("one.csv", "1 class(es)"),
        ("--label-column", "--label-map"),
    ),
    Case(
        "empty texts",
        _train(lambda t: _csv(t / "texts.csv", [*ROWS, ",POSITIVE,ND", '"   ",NEUTRAL,ND'])),
        ("texts.csv", "data row(s) 13, 14"),
        ("--empty-texts drop",),
    ),
    Case(
        "non-UTF-8 bytes",
        _train(lambda t: _write(t / "cp1253.csv", "\n".join([HEADER, *ROWS]).encode("cp1253"))),
        ("cp1253.csv", "not UTF-8", "line 2"),
        ("Re-encode", "iconv"),
    ),
    Case(
        "ragged CSV row",
        _train(lambda t: _csv(t / "ragged.csv", [*ROWS, "a,b,POSITIVE,ND"])),
        ("ragged.csv", "cannot be parsed as CSV"),
        ("doubled",),
    ),
    Case(
        "too few rows to split",
        _train(lambda t: _csv(t / "small.csv", [ROWS[0], ROWS[4], ROWS[8], ROWS[9]])),
        ("small.csv", "stratified"),
        ("--valid-fraction",),
    ),
    Case(
        "validation labels unlike training",
        lambda t: ["--train", str(_csv(t / "train.csv")), "--valid", str(_csv(t / "valid.csv", [*ROWS, "x,MIXED,ND"]))],
        ("valid.csv", "'MIXED'"),
        ("--label-map",),
    ),
    Case(
        "missing unlabelled file",
        _train(lambda t: _csv(t / "train.csv"), "--unlabelled", "extra.csv"),
        ("extra.csv", "does not exist"),
        ("check the path",),
    ),
    Case(
        "unlabelled file without the text column",
        lambda t: [
            *("--train", str(_csv(t / "train.csv")), "--unlabelled", str(_csv(t / "u.csv"))),
            *("--unlabelled-text-column", "body"),
        ],
        ("'body'",),
        ("--unlabelled-text-column",),
    ),
    Case(
        "unlabelled .txt not UTF-8",
        lambda t: [
            "--train",
            str(_csv(t / "train.csv")),
            "--unlabelled",
            str(_write(t / "u.txt", "κακή\n".encode("cp1253"))),
        ],
        ("u.txt", "not UTF-8", "line 1"),
        ("Re-encode",),
    ),
    Case(
        "missing vectors file",
        _train(lambda t: _csv(t / "train.csv"), "--vectors", "cc.el.300.vec"),
        ("cc.el.300.vec", "does not exist"),
        ("--vectors",),
    ),
    Case(
        "vectors header says more words than the file has",
        lambda t: ["--train", str(_csv(t / "train.csv")), "--vectors", str(_write(t / "v.vec", "5 2\nκαλη 1 2\n"))],
        ("v.vec", "word2vec-text"),
        ("truncated download",),
    ),
    Case(
        "vectors header says fewer words than the file has",
        lambda t: ["--train", str(_csv(t / "train.csv")), "--vectors", str(_write(t / "v.vec", "1 2\nα 1 2\nβ 3 4\n"))],
        ("v.vec", "header says 1 words, but the file has 2 vector lines"),
        ("fix the first line",),
    ),
    Case(
        "vector size unlike the file's",
        lambda t: [
            "--train",
            str(_csv(t / "train.csv")),
            "--vectors",
            str(_write(t / "v.vec", "1 2\nκαλη 1 2\n")),
            "--vector-size",
            "300",
        ],
        ("`vector_size` is 300", "dimension 2"),
        ("--vector-size 2",),
    ),
    Case(
        "pretrained vectors with a space that trains them",
        lambda t: ["--train", str(_csv(t / "train.csv")), "--vectors", "v.vec", "--space", "wide"],
        ("`space` 'wide'", "vectors"),
        ("leave out `--vectors`",),
    ),
    Case(
        "an encoding given as the vectorizer",
        lambda t: ["--vectorizer", "mean"],
        ("`vectorizer`", "'mean'"),
        ("word2vec", "fasttext"),
    ),
    Case("valid without train", lambda t: ["--valid", str(_csv(t / "valid.csv"))], ("`valid`",), ("--train FILE",)),
    # -- settings
    Case(
        "missing config file",
        lambda t: ["--config", str(t / "nope.toml")],
        ("nope.toml",),
        ("give an existing TOML file",),
    ),
    Case(
        "malformed TOML",
        _toml("num-samples = \nspace = default\n"),
        ("study.toml", "not valid TOML"),
        ("Fix the file's syntax",),
    ),
    Case("unknown setting in TOML", _toml("vectorsize = 16\n"), ("study.toml", "'vectorsize'"), ("vector-size",)),
    Case("wrong type in TOML", _toml('num-samples = "many"\n'), ("num_samples", "study.toml"), ("must be a",)),
    Case("resume in TOML", _toml('resume = "old"\n'), ("study.toml", "resume"), ("known settings", "--resume NAME")),
    Case(
        "wrong type of a list in TOML",
        _toml("clean-off = 5\n"),
        ("clean_off", "study.toml"),
        ("must be",),
    ),
    Case("not a number", lambda t: ["--vector-size", "big"], ("vector_size", "--vector-size"), ("must be a",)),
    Case("negative vector size", lambda t: ["--vector-size", "-5"], ("vector_size",), (">= 0",)),
    Case("zero max-len", lambda t: ["--max-len", "0"], ("max_len",), (">= 1",)),
    Case("zero num-samples", lambda t: ["--num-samples", "0"], ("num_samples",), (">= 1",)),
    Case("zero max-epochs", lambda t: ["--max-epochs", "0"], ("max_epochs",), (">= 1",)),
    Case("zero cpus per trial", lambda t: ["--cpus-per-trial", "0"], ("cpus_per_trial",), ("> 0",)),
    Case("negative gpus per trial", lambda t: ["--gpus-per-trial", "-1"], ("gpus_per_trial",), (">= 0",)),
    Case("gpus per trial 1.5", lambda t: ["--gpus-per-trial", "1.5"], ("gpus_per_trial",), ("whole number",)),
    Case(
        "infinite cpus per trial",
        lambda t: ["--train", str(_csv(t / "train.csv")), "--cpus-per-trial", "inf"],
        ("cpus_per_trial",),
        ("finite",),
    ),
    Case("valid fraction 1", lambda t: ["--valid-fraction", "1"], ("valid_fraction",), ("(0, 1)",)),
    Case("test fraction 1.5", lambda t: ["--test-fraction", "1.5"], ("test_fraction",), ("[0, 1)",)),
    Case(
        "test file and test fraction",
        lambda t: [
            "--train",
            str(_csv(t / "train.csv")),
            "--test",
            str(_csv(t / "test.csv")),
            "--test-fraction",
            "0.2",
        ],
        ("test_fraction", "`test`"),
        ("give one of them",),
    ),
    Case("test without train", lambda t: ["--test", str(_csv(t / "test.csv"))], ("`test`",), ("--train FILE",)),
    Case(
        "test labels unlike training",
        lambda t: ["--train", str(_csv(t / "train.csv")), "--test", str(_csv(t / "test.csv", [*ROWS, "x,MIXED,ND"]))],
        ("test.csv", "'MIXED'"),
        ("--label-map",),
    ),
    Case("one final fold", lambda t: ["--final-folds", "1"], ("final_folds",), (">= 2",)),
    Case("negative final top", lambda t: ["--final-top", "-1"], ("final_top",), (">= 0",)),
    Case("malformed label map", lambda t: ["--label-map", "0:neg"], ("--label-map", "'0:neg'"), ("raw=class",)),
    Case(
        "unknown cleaning step",
        lambda t: ["--clean-off", "stemming"],
        ("clean_off", "'stemming'"),
        ("remove_stopwords",),
    ),
    Case("unknown search space", lambda t: ["--space", "huge"], ("huge",), ("default",)),
    Case("bad empty-texts policy", lambda t: ["--empty-texts", "keep"], ("empty_texts", "'keep'"), ("drop",)),
    Case("unknown ASHA metric", lambda t: ["--asha-metric", "val_f1"], ("asha_metric", "'val_f1'"), ("val_loss",)),
    Case(
        "column names that look like rich markup",
        _train(lambda t: _csv(t / "brackets.csv", header="Text,[/label],Party")),
        ("brackets.csv", "'[/label]'"),
        ("--label-column",),
    ),
    # -- study names and resuming
    Case(
        "results dir is a file",
        lambda t: ["--train", str(_csv(t / "train.csv")), "--results-dir", str(_csv(t / "results.csv"))],
        ("results_dir", "results.csv"),
        ("--results-dir",),
    ),
    Case("resume of an unknown name", lambda t: ["--resume", "nope"], ("`resume`", "'nope'"), ("--results-dir",)),
    Case("name escaping results (../)", lambda t: ["--name", "../x"], ("`name`", "'../x'"), ("letters, digits",)),
    Case("absolute name", lambda t: ["--name", str(t / "abs")], ("`name`", "/abs'"), ("letters, digits",)),
    Case("resume escaping results (../)", lambda t: ["--resume", "../x"], ("`resume`", "'../x'"), ("letters, digits",)),
    Case("name with odd characters", lambda t: ["--name", "a b;rm"], ("`name`",), ("letters, digits",)),
    # -- hyperparameters given directly (study.evaluate --set); in a study they come from the search space
    Case(
        "dropout >= 1",
        lambda t: ["--train", str(_csv(t / "train.csv")), "--set", "dropout=1.5"],
        ("`dropout`", "1.5"),
        ("[0, 1)",),
        command="study.evaluate",
    ),
    Case(
        "dropout = 1",
        lambda t: ["--train", str(_csv(t / "train.csv")), "--set", "dropout=1"],
        ("`dropout`",),
        ("[0, 1)",),
        command="study.evaluate",
    ),
    Case(
        "lr = 0",
        lambda t: ["--train", str(_csv(t / "train.csv")), "--set", "lr=0"],
        ("`lr`",),
        ("> 0",),
        command="study.evaluate",
    ),
    Case(
        "lr < 0",
        lambda t: ["--train", str(_csv(t / "train.csv")), "--set", "lr=-1"],
        ("`lr`", "-1"),
        ("> 0",),
        command="study.evaluate",
    ),
    Case(
        "unknown --set name",
        lambda t: ["--set", "dropuot=0.1"],
        ("`dropuot`",),
        ("Did you mean `dropout`",),
        command="study.evaluate",
    ),
]


def run_case(case: Case, tmp: Path) -> int:
    """Run one case's command (study.run with `--results-dir tmp/results` unless given); returns its exit code."""
    import study.evaluate
    import study.run

    argv = case.make(tmp)
    if case.command == "study.run":
        given = "--results-dir" in argv
        code = study.run.main(argv if given else [*argv, "--results-dir", str(tmp / "results")])
    else:
        code = study.evaluate.main(argv)
    return code


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.pending)] if c.pending else [])
        for c in CASES
    ],
)
def test_bad_input_is_refused(case, tmp_path, capsys, no_ray):
    results = tmp_path / "results"
    results.mkdir()
    (results / "earlier").mkdir()  # an earlier study: it must be left alone, and no new folder may appear
    (results / "earlier" / "study.json").write_text("{}")
    before = sorted(p.relative_to(results) for p in results.rglob("*"))

    code = run_case(case, tmp_path)
    message = _normalise(capsys.readouterr().err)

    assert code == 2, message
    assert message.startswith("error:") and message.count("error:") == 1, message
    for name in case.names:
        assert name in message, f"{name!r} not in: {message}"
    assert any(fix in message for fix in case.fixes), f"none of {case.fixes} in: {message}"
    assert sorted(p.relative_to(results) for p in results.rglob("*")) == before
    assert not (tmp_path / "x").exists() and not (tmp_path / "abs").exists()  # the path-escape cases


def test_unknown_flag_exits_2_through_argparse(tmp_path, capsys, no_ray):
    with pytest.raises(SystemExit) as exc:
        main(["--vectro-size", "16", "--results-dir", str(tmp_path / "results")])
    assert exc.value.code == 2
    message = _normalise(capsys.readouterr().err)
    assert "unrecognized arguments: --vectro-size" in message and message.startswith("usage:")
    assert not (tmp_path / "results").exists()


def test_gpus_per_trial_larger_than_any_node_is_refused():
    from study.resources import check_resources
    from trainables.settings import ConfigError

    nodes = [{"CPU": 16.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 2.0}]
    with pytest.raises(ConfigError, match=r"`gpus_per_trial` is 4, but the largest node has 2 GPU\(s\)"):
        check_resources(StudyConfig.from_settings(gpus_per_trial=4), nodes)
    with pytest.raises(ConfigError, match=r"no node of this Ray cluster has a GPU\. Use `--gpus-per-trial 0`"):
        check_resources(StudyConfig.from_settings(gpus_per_trial=0.5), [{"CPU": 4.0}])
    with pytest.raises(ConfigError, match=r"`cpus_per_trial` is 32, but the largest node has 16 CPU"):
        check_resources(StudyConfig.from_settings(cpus_per_trial=32), nodes)
    check_resources(StudyConfig.from_settings(gpus_per_trial=2), nodes)  # fits the second node


@pytest.mark.slow
def test_gpus_per_trial_larger_than_the_cluster_end_to_end(tmp_path, capsys):
    import ray

    results = str(tmp_path / "results")
    ray.init(num_cpus=1, num_gpus=0, include_dashboard=False, logging_level="WARNING")
    try:
        train = _csv(tmp_path / "train.csv")
        code = main(
            ["--train", str(train), *"--gpus-per-trial 2 --smoke --name gpus".split(), "--results-dir", results]
        )
    finally:
        ray.shutdown()
    message = _normalise(capsys.readouterr().err)
    assert code == 2, message
    assert "`gpus_per_trial` is 2.0" in message and "--gpus-per-trial 0" in message
    assert not (tmp_path / "results" / "gpus").exists()


# ---------------------------------------------------------------------------------------------------------------
# inputs that must simply work


@pytest.fixture(scope="module")
def greek_slice(shared_data_dir) -> pd.DataFrame:
    """A seeded slice of the real data, stratified by label (120 rows); never written into the repository."""
    full = pd.read_csv(shared_data_dir / "greek-election-tweets-ys19-2023" / GREEK, dtype=str, keep_default_na=False)
    return full.groupby("Sentiment", group_keys=False).sample(n=40, random_state=0).reset_index(drop=True)


def _awkward(frame: pd.DataFrame) -> pd.DataFrame:
    """Every third tweet spans several lines, some with quotes and commas inside."""
    frame = frame.copy()
    frame.loc[::3, "Text"] = frame.loc[::3, "Text"] + '\nδεύτερη γραμμή, με "εισαγωγικά"\r\nτρίτη'
    return frame


def _write_frame(frame: pd.DataFrame, path: Path, encoding: str = "utf-8", eol: str = "\n") -> Path:
    frame.to_csv(path, index=False, encoding=encoding, lineterminator=eol)
    return path


def _settings(path: Path, **kw) -> StudyConfig:
    return StudyConfig.from_settings(train=str(path), **kw)


@pytest.mark.parametrize(
    ("encoding", "eol"), [("utf-8-sig", "\n"), ("utf-8", "\r\n"), ("utf-8-sig", "\r\n")], ids=["bom", "crlf", "both"]
)
def test_bom_and_crlf_load_like_plain_files(greek_slice, tmp_path, encoding, eol):
    plain = load_dataset(_settings(_write_frame(greek_slice, tmp_path / "plain.csv")))
    odd = load_dataset(_settings(_write_frame(greek_slice, tmp_path / "odd.csv", encoding, eol)))
    assert odd.train.texts == plain.train.texts and (odd.train.labels == plain.train.labels).all()
    assert odd.valid.texts == plain.valid.texts and odd.train.classes == ("NEGATIVE", "NEUTRAL", "POSITIVE")
    assert not any("\r" in t or "\ufeff" in t for t in odd.train.texts + odd.valid.texts)


def test_quoted_multi_line_tweets_are_one_row_each(greek_slice, tmp_path):
    frame = _awkward(greek_slice)
    ds = load_dataset(_settings(_write_frame(frame, tmp_path / "multi.csv", "utf-8-sig", "\r\n")))
    texts = sorted(ds.train.texts + ds.valid.texts)
    expected = sorted(f"{p} {t}".replace("\r\n", "\n") for p, t in zip(frame["Party"], frame["Text"]))
    assert len(texts) == len(frame) and texts == expected
    assert sum("\nτρίτη" in t for t in texts) == len(frame.loc[::3])


def test_a_1_mb_tweet_loads_and_encodes_to_max_len(greek_slice, tmp_path):
    """Decision: a huge tweet works; the sequence encoding keeps its first `max_len` tokens."""
    frame = greek_slice.copy()
    words = " ".join(frame["Text"]).split()
    huge = " ".join(words[i % len(words)] for i in range(200_000))[:1_000_000]
    frame.loc[0, "Text"] = huge
    cfg = _settings(_write_frame(frame, tmp_path / "huge.csv"), vector_size=8, max_len=16, w2v_epochs=1)
    ds = load_dataset(cfg)
    assert max(len(t) for t in ds.train.texts + ds.valid.texts) >= 1_000_000
    data = encode(ds, cfg, cache_dir=tmp_path / "w2v")
    assert data.x_train.shape == (len(ds.train), 16) and data.x_valid.shape == (len(ds.valid), 16)
    assert data.len_train.max() <= 16 and data.len_valid.max() <= 16
    assert data.nbytes < 2_000_000  # the arrays stay small: the tweet is truncated, the vocabulary bounded


@pytest.mark.slow
def test_a_study_runs_on_a_bom_crlf_multi_line_file(greek_slice, tmp_path, capsys):
    import ray

    path = _write_frame(_awkward(greek_slice), tmp_path / "odd.csv", "utf-8-sig", "\r\n")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        tiny = "--smoke --num-samples 2 --max-epochs 1 --vector-size 16 --name odd".split()
        code = main(["--train", str(path), *tiny, "--results-dir", str(tmp_path / "results")])
    finally:
        ray.shutdown()
    assert code == 0, capsys.readouterr().err
    trials = pd.read_parquet(tmp_path / "results" / "odd" / "trials.parquet")
    assert len(trials) == 2 and set(trials["status"]) <= {"completed", "stopped_early"}
    study = json.loads((tmp_path / "results" / "odd" / "study.json").read_text())
    assert study["data"]["n_train"] + study["data"]["n_valid"] == len(greek_slice)  # one row per tweet
