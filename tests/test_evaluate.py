"""`python -m study.evaluate` and study/final/cv.py: JSON output, exit codes for bad settings, folds that keep Word2Vec
honest, identical texts that never straddle a split, and an epoch the scored fold cannot choose."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study.evaluate import main, parse_overrides
from study.final.cv import score_fold
from trainables.data import LabelledData, read_labelled, stratified_split, subset, text_groups
from trainables.data_settings import DataSettings
from trainables.demo import write_demo
from trainables.folds import Fold, fold_indices, inner_split, plan_folds
from trainables.prepare import prepare
from trainables.preprocess import clean_corpus
from trainables.settings import ConfigError
from trainables.vectorize import OOV

SMALL = ["--demo-rows", "300", "--vector-size", "16", "--max-epochs", "1", "--set", "hidden_size=8"]
MARKER = "zzqmarkerword"


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch) -> Path:
    """One Word2Vec/demo cache for the whole module, never the user's ~/.cache."""
    path = tmp_path_factory.getbasetemp() / "evaluate-cache"
    monkeypatch.setenv("RNN_STUDY_CACHE", str(path))
    return path


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory) -> tuple[Path, Path]:
    return write_demo(tmp_path_factory.mktemp("demo"), n_rows=300, seed=0)


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())  # rich wraps long lines on stderr


@pytest.mark.slow  # Ray and two folds
def test_json_cross_validation_has_the_summary(capsys):
    import ray

    code, out, _ = _run(capsys, [*SMALL, "--folds", "2", "--json"])
    assert code == 0 and not ray.is_initialized()  # the folds ran as Ray tasks on a Ray of its own, shut down
    result = json.loads(out)  # the only thing on stdout
    for key in ("macro_f1_mean", "macro_f1_std", "auc_mean", "auc_std", "accuracy_mean", "settings", "per_fold"):
        assert key in result
    assert result["folds"] == 2 and len(result["per_fold"]) == 2
    assert set(result["recall_per_class_mean"]) == {"NEGATIVE", "NEUTRAL", "POSITIVE"}
    assert result["settings"]["hparams"]["hidden_size"] == 8
    assert result["settings"]["data"]["vector_size"] == 16
    assert sum(f["n_valid"] for f in result["per_fold"]) == 300  # CV uses every labelled row, not a split


@pytest.mark.slow  # Ray and one fold
def test_valid_file_is_one_fold(capsys, demo_files, tmp_path):
    frame = pd.read_csv(demo_files[0], dtype=str, keep_default_na=False)
    train, valid = tmp_path / "train.csv", tmp_path / "valid.csv"
    frame.iloc[:220].to_csv(train, index=False)
    frame.iloc[220:].to_csv(valid, index=False)
    code, out, _ = _run(capsys, [*SMALL, "--train", str(train), "--valid", str(valid), "--json"])
    assert code == 0
    result = json.loads(out)
    assert result["folds"] == 1 and result["mode"] == "train-valid"
    # 1/7 of the 220 training rows choose the epoch; the model trains on the rest
    assert result["per_fold"][0]["n_train"] == 188 and result["per_fold"][0]["n_valid"] == 80


@pytest.mark.parametrize(
    "items, named",
    [
        (["hidden_sise=8"], "hidden_sise"),
        (["dropout=1.5"], "dropout"),
        (["lr=abc"], "lr"),
        (["bidirectional=maybe"], "bidirectional"),
        (["vectorizer=tfidf"], "vectorizer"),
        (["hidden_size"], "hidden_size"),
        (["lr=1e-3", "lr=1e-2"], "lr"),
    ],
)
def test_bad_set_item_exits_2_naming_it(capsys, items, named):
    argv = [a for item in items for a in ("--set", item)]
    code, out, err = _run(capsys, argv)
    assert code == 2
    assert out == ""
    assert named in err and "error" in err


def test_missing_train_file_exits_2_naming_it(capsys, tmp_path):
    missing = tmp_path / "no-such-file.csv"
    code, _, err = _run(capsys, ["--train", str(missing)])
    assert code == 2
    assert "no-such-file.csv" in err and "does not exist" in err


def test_a_studys_config_file_gives_the_data_settings(capsys, tmp_path):
    config = tmp_path / "study.toml"
    config.write_text(f'train = "{tmp_path / "from-config.csv"}"\nnum-samples = 40\n')  # a study's own key too
    code, _, err = _run(capsys, ["--config", str(config)])
    assert code == 2 and "from-config.csv" in err and "does not exist" in err  # read, then refused before Ray


@pytest.mark.parametrize(
    "argv", [["--folds", "1"], ["--max-epochs", "0"], ["--max-epochs", "2", "--set", "max_epochs=3"]]
)
def test_bad_folds_or_epochs_exit_2(capsys, argv):
    assert _run(capsys, argv)[0] == 2


def test_overrides_are_typed_and_split():
    hp, data = parse_overrides(["cell=gru", "bidirectional=0", "skip=true", "lr=1e-3", "vector_size=32", "clean_off="])
    assert hp == {"cell": "gru", "bidirectional": False, "skip": True, "lr": 1e-3}
    assert data == {"vector_size": 32, "clean_off": ()}
    with pytest.raises(ConfigError, match="`hidden_size`.*integer.*'1.5'"):
        parse_overrides(["hidden_size=1.5"])


def _labelled(demo_files) -> LabelledData:
    return read_labelled(demo_files[0])


def test_folds_partition_the_data_stratified(demo_files):
    data = _labelled(demo_files)
    folds = fold_indices(data.labels, 3, seed=0)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held.tolist()) == list(range(len(data)))
    for train, held_out in folds:
        assert not set(train) & set(held_out)
        share = np.bincount(data.labels[held_out], minlength=3) / len(held_out)
        assert np.allclose(share, np.bincount(data.labels, minlength=3) / len(data), atol=0.02)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, fold_indices(data.labels, 3, seed=0), strict=True))
    with pytest.raises(ConfigError, match="`folds`"):
        fold_indices(data.labels, 1000, seed=0)


def _marker_ids(x: np.ndarray, part: LabelledData, settings: DataSettings) -> list[int]:
    """The encoded id of MARKER in every row of `part` whose text has it."""
    ids = []
    for row, tokens in enumerate(clean_corpus(part.texts, settings.clean_config())):
        if MARKER in tokens:
            ids.append(int(x[row, tokens.index(MARKER)]))
    return ids


def test_word2vec_never_sees_the_held_out_fold(demo_files):
    """A word only in fold 1's held-out texts is unknown to fold 1's vectors, known to fold 2's (which train on it)."""
    data = _labelled(demo_files)
    settings = DataSettings.from_settings(vector_size=8, w2v_min_count=1, max_len=64, w2v_epochs=1)
    folds = plan_folds(data.labels, text_groups(data), 2, settings.data_seed)
    held_by_fold_1 = folds[0].held_out[:4]
    texts = [f"{MARKER} {t}" if i in set(held_by_fold_1.tolist()) else t for i, t in enumerate(data.texts)]
    marked = LabelledData(tuple(texts), data.labels, data.classes, data.parties, data.source)

    encoded = []
    for fold in folds:
        train, held = subset(marked, fold.train), subset(marked, fold.held_out)
        encoded.append((prepare(train, held, (), settings.clean_config(), settings.vector_config, None), train, held))
    (enc_1, _, held_1), (enc_2, train_2, _) = encoded
    assert _marker_ids(enc_1.x_valid, held_1, settings) == [OOV] * 4
    in_training = _marker_ids(enc_2.x_train, train_2, settings)
    assert len(in_training) == 4 and len(set(in_training)) == 1 and in_training[0] > OOV


def _with_copies(data: LabelledData, copies: int = 40) -> LabelledData:
    """`data` with `copies` of its texts repeated once more, re-cased and re-punctuated (identical once cleaned)."""
    extra = [data.texts[i].upper() + " !!" for i in range(copies)]
    return LabelledData(
        data.texts + tuple(extra), np.concatenate([data.labels, data.labels[:copies]]), data.classes, None, data.source
    )


def test_identical_texts_never_straddle_a_split(demo_files):
    """Folds, the inner split of each fold's training part, and the validation split keep texts that are identical
    after cleaning on one side; without duplicates the folds are those of a plain stratified k-fold."""
    data = _with_copies(_labelled(demo_files))
    groups = text_groups(data)
    assert len(np.unique(groups)) < len(data)  # the copies are found

    def sides(a: np.ndarray, b: np.ndarray, g: np.ndarray) -> set:
        return set(g[a].tolist()) & set(g[b].tolist())

    folds = plan_folds(data.labels, groups, 3, seed=0)
    assert sorted(np.concatenate([f.held_out for f in folds]).tolist()) == list(range(len(data)))
    for f in folds:
        assert not sides(f.train, f.held_out, groups)
        assert not sides(f.inner_train, f.inner_valid, groups[f.train])
        assert sorted([*f.inner_train, *f.inner_valid]) == list(range(len(f.train)))
    train, valid = stratified_split(data, 0.2, seed=0, groups=groups)
    assert len(train) + len(valid) == len(data) and not {*train.texts} & {*valid.texts}
    assert not {" ".join(t) for t in clean_corpus(train.texts)} & {" ".join(t) for t in clean_corpus(valid.texts)}
    plain = subset(data, np.unique(groups, return_index=True)[1])  # one row per text
    ungrouped = fold_indices(plain.labels, 3, seed=0)
    grouped = plan_folds(plain.labels, text_groups(plain), 3, seed=0)
    assert all((a.held_out == b[1]).all() for a, b in zip(grouped, ungrouped, strict=True))


def test_the_scored_fold_cannot_change_the_chosen_epoch(demo_files):
    """Permuting the held-out fold's labels leaves training and the chosen epoch untouched; only its score moves."""
    from dataclasses import replace

    from trainables.hparams import HParams

    data = _labelled(demo_files)
    settings = DataSettings.from_settings(vector_size=8, w2v_epochs=1)
    fold = plan_folds(data.labels, text_groups(data), 2, seed=0)[0]
    train, held = subset(data, fold.train), subset(data, fold.held_out)
    encoded = prepare(train, held, (), settings.clean_config(), settings.vector_config, None)
    permuted = replace(encoded, y_valid=np.random.default_rng(0).permutation(encoded.y_valid[::-1]))
    hp = HParams(hidden_size=8, num_layers=1, max_epochs=4, num_threads=1, lr=3e-3)
    a, b = score_fold(hp, encoded, fold), score_fold(hp, permuted, fold)
    assert a["inner_curve"] == b["inner_curve"] and a["best_epoch"] == b["best_epoch"]
    assert a["best"]["macro_f1"] == a["curve"][a["best_epoch"] - 1] and a["held_out_best_macro_f1"] == max(a["curve"])
    assert a["best"]["auc"] != b["best"]["auc"]  # the held-out scores did change: they are read, only after training
    assert a["n_train"] == len(fold.inner_train) < len(fold.train)


def test_an_option_value_may_start_with_a_dash():
    """`--label-map -1=NEGATIVE,...` with a space, as most people type it (issue #14)."""
    from study.evaluate import build_settings, parser

    args = parser().parse_args(["--train", "numeric.csv", "--label-map", "-1=NEGATIVE,0=NEUTRAL,1=POSITIVE"])
    assert args.label_map == "-1=NEGATIVE,0=NEUTRAL,1=POSITIVE"
    flags = {k: v for k, v in vars(args).items() if k not in ("folds", "max_epochs", "overrides", "json", "config")}
    settings, _ = build_settings(flags, [], None)
    assert dict(settings.data_spec.label_map) == {"-1": "NEGATIVE", "0": "NEUTRAL", "1": "POSITIVE"}


def test_a_failed_fold_task_is_an_error_naming_the_fold():
    """A fold task's error row stops `study.evaluate`: a bad setting (ValueError) exits 2, anything else 1."""
    from study.final.evaluation import FoldFailed, fold_result

    with pytest.raises(ValueError, match="fold 2 failed: ValueError: `device`"):
        fold_result({"fold": 2, "error": "ValueError: `device` is 'cuda', but no CUDA device is available here"})
    with pytest.raises(FoldFailed, match="fold 1 failed: NonFiniteLossError"):
        fold_result({"fold": 1, "error": "NonFiniteLossError: the training loss became nan"})


def test_inner_split_takes_one_part_in_seven_stratified():
    labels = np.repeat([0, 1, 2], 70)
    inner_train, inner_valid = inner_split(labels, None, seed=0)
    assert len(inner_valid) == 30 and np.bincount(labels[inner_valid]).tolist() == [10, 10, 10]
    assert isinstance(Fold(1, np.arange(3), np.arange(3, 5), inner_train, inner_valid).number, int)
