"""Tests for trainables/data.py: CSV reading, error messages, label maps, splits; real files when present."""

from pathlib import Path

import numpy as np
import pytest

from trainables.data import (
    DataError,
    DataSpec,
    LabelledData,
    parse_label_map,
    read_labelled,
    read_unlabelled,
    stratified_split,
    subset,
)

GOOD = "New_ID,Text,Sentiment,Party\n1,καλό,POSITIVE,ND\n2,κακό,NEGATIVE,SYRIZA\n3,τίποτα,NEUTRAL,KKE\n"


def _write(tmp_path: Path, content: str | bytes, name: str = "tweets.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


# -- bad input: one DataError naming the file and the fix


@pytest.mark.parametrize(
    ("content", "spec", "expected"),
    [
        pytest.param(b"", DataSpec(), ["is empty"], id="empty-file"),
        pytest.param("New_ID,Text,Sentiment,Party\n", DataSpec(), ["no data rows"], id="header-only"),
        pytest.param(
            GOOD.replace("Text", "Tweet"),
            DataSpec(),
            ["no column 'Text'", "'New_ID', 'Tweet', 'Sentiment', 'Party'", "`--text-column`", "'Tweet'"],
            id="missing-text-column",
        ),
        pytest.param(
            GOOD.replace("Sentiment", "label"),
            DataSpec(),
            ["no column 'Sentiment'", "`--label-column`"],
            id="no-label",
        ),
        pytest.param(
            GOOD.replace(",Party", ",Side"),
            DataSpec(),
            ["no column 'Party'", "`--party-column ''`"],
            id="no-party",
        ),
        pytest.param(
            "Text,Sentiment\n" + "".join(f"t{i},{lab}\n" for i, lab in enumerate("0 1 2 x y 7 8 9 z 0".split())),
            DataSpec(party_column="", label_map=parse_label_map("0=a,1=b,2=c")),
            [
                "6 label(s)",
                "'x' (data row 4)",
                "'y' (data row 5)",
                "'8' (data row 7)",
                "'9' (data row 8)",
                "and 1 more",
                "`--label-map`",
                "`--drop-unmapped`",
            ],
            id="unmapped-labels",
        ),
        pytest.param(
            'Text,Sentiment\na,P\n ,N\nb,P\n\t,N\n"",P\n',
            DataSpec(party_column=""),
            ["3 text(s)", "data row(s) 2, 4, 5", "`--empty-texts drop`"],
            id="empty-texts",
        ),
        pytest.param(
            "Text,Sentiment\na,P\nb,P\n",
            DataSpec(party_column=""),
            ["1 class(es) ['P']", "two classes"],
            id="one-class",
        ),
        pytest.param(
            "Text,Sentiment\na,P\n,N\n",
            DataSpec(party_column="", empty_texts="drop"),
            ["after dropping 1 row(s)", "two classes"],
            id="one-class-after-drop",
        ),
        pytest.param(
            "Text,Sentiment\na,P\nb,\n",
            DataSpec(party_column=""),
            ["empty label", "data row(s) 2"],
            id="empty-label",
        ),
        pytest.param(
            "Text,Sentiment\nκαλό,P\n".encode("cp1253"),
            DataSpec(party_column=""),
            ["not UTF-8", "byte offset 15", "line 2", "Re-encode the file as UTF-8"],
            id="not-utf8",
        ),
        pytest.param(
            'Text,Sentiment\n"never closed,P\nb,N\n',
            DataSpec(party_column=""),
            ["cannot be parsed"],
            id="bad-quote",
        ),
        pytest.param(
            "Text,Sentiment\na,P\nb,N,extra\n",
            DataSpec(party_column=""),
            ["cannot be parsed"],
            id="too-many-fields",
        ),
        pytest.param(
            "Text,Sentiment\na,P,extra\nb,N\n",
            DataSpec(party_column=""),
            ["cannot be parsed"],
            id="long-first-row",
        ),
    ],
)
def test_bad_input_raises_one_clear_error(tmp_path, content, spec, expected):
    path = _write(tmp_path, content)
    with pytest.raises(DataError) as info:
        read_labelled(path, spec)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, (part, message)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist; check the path") as info:
        read_labelled(tmp_path / "nope.csv")
    assert "nope.csv" in str(info.value)
    with pytest.raises(DataError, match="is a directory, not a file"):
        read_labelled(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        read_unlabelled(tmp_path / "nope.csv")


def test_unknown_labels_against_given_classes(tmp_path):
    path = _write(tmp_path, "Text,Sentiment\na,POSITIVE\nb,MIXED\nc,meh\n")
    with pytest.raises(DataError) as info:
        read_labelled(path, DataSpec(party_column=""), classes=("NEGATIVE", "NEUTRAL", "POSITIVE"))
    message = str(info.value)
    for part in (str(path), "['MIXED', 'meh']", "data row(s) 2, 3", "['NEGATIVE', 'NEUTRAL', 'POSITIVE']"):
        assert part in message


# -- formats and options


def test_bom_crlf_and_quoted_multiline(tmp_path):
    content = (
        'Text,Sentiment,Party\r\n"γραμμή ένα\r\ngrammi dyo, με κόμμα",POSITIVE,ND\r\n"λέει ""όχι""",NEGATIVE,KKE\r\n'
    )
    data = read_labelled(_write(tmp_path, b"\xef\xbb\xbf" + content.encode("utf-8")))
    assert data.texts == ("ND γραμμή ένα\ngrammi dyo, με κόμμα", 'KKE λέει "όχι"')
    assert data.classes == ("NEGATIVE", "POSITIVE")
    assert data.labels.tolist() == [1, 0] and data.labels.dtype == np.int64
    assert data.parties == ("ND", "KKE") and len(data) == 2 and data.dropped == 0


def test_label_map_on_string_labels_keeps_map_order(tmp_path):
    path = _write(tmp_path, "Text,Sentiment\na,-1\nb,1\nc,0\nd, 1 \n")
    spec = DataSpec(party_column="", label_map=parse_label_map("-1=NEGATIVE, 0=NEUTRAL ,1=POSITIVE"))
    data = read_labelled(path, spec)
    assert data.classes == ("NEGATIVE", "NEUTRAL", "POSITIVE")
    assert data.labels.tolist() == [0, 2, 1, 2]
    assert data.parties is None


def test_label_map_merging_raw_values_and_drop_unmapped(tmp_path):
    path = _write(tmp_path, "Text,Sentiment\na,2\nb,0\nc,9\nd,1\ne,\n")
    spec = DataSpec(party_column="", label_map=parse_label_map("2=pos,1=neg,0=neg"), drop_unmapped=True)
    data = read_labelled(path, spec)
    assert data.classes == ("pos", "neg")
    assert data.texts == ("a", "b", "d") and data.labels.tolist() == [0, 1, 1] and data.dropped == 2


def test_labels_without_map_are_sorted(tmp_path):
    data = read_labelled(_write(tmp_path, "Text,Sentiment\na,b\nb,10\nc,2\nd,a\n"), DataSpec(party_column=""))
    assert data.classes == ("10", "2", "a", "b")
    assert data.labels.tolist() == [3, 0, 1, 2]


def test_empty_texts_drop(tmp_path):
    path = _write(tmp_path, "Text,Sentiment,Party\na,P,ND\n  ,N,ND\nb,N,KKE\n")
    data = read_labelled(path, DataSpec(empty_texts="drop"))
    assert data.texts == ("ND a", "KKE b") and data.parties == ("ND", "KKE") and data.dropped == 1


def test_prepend_party_on_and_off(tmp_path):
    path = _write(tmp_path, GOOD)
    assert read_labelled(path).texts == ("ND καλό", "SYRIZA κακό", "KKE τίποτα")
    off = read_labelled(path, DataSpec(prepend_party=False))
    assert off.texts == ("καλό", "κακό", "τίποτα") and off.parties == ("ND", "SYRIZA", "KKE")
    assert read_labelled(path, DataSpec(party_column="")).texts == off.texts


def test_classes_passed_for_a_validation_file(tmp_path):
    train = read_labelled(_write(tmp_path, GOOD))
    valid = read_labelled(
        _write(tmp_path, GOOD.splitlines()[0] + "\n9,άλλο,POSITIVE,ND\n", "v.csv"), classes=train.classes
    )
    assert valid.classes == train.classes and valid.labels.tolist() == [2]


def test_read_unlabelled(tmp_path):
    path = _write(tmp_path, "New_ID,Text,Party\n1,ένα,ND\n2, ,KKE\n3,δύο,\n")
    assert read_unlabelled(path) == ["ND ένα", "δύο"]
    assert read_unlabelled(path, DataSpec(prepend_party=False)) == ["ένα", "δύο"]
    no_party = _write(tmp_path, "Text\nένα\n", "np.csv")
    assert read_unlabelled(no_party) == ["ένα"]
    with pytest.raises(DataError, match="`--text-column`"):
        read_unlabelled(path, DataSpec(text_column="tweet"))


# -- label maps and specs


def test_parse_label_map():
    assert parse_label_map("") == ()
    assert parse_label_map("0=neutral,1=anti,2=pro,") == (("0", "neutral"), ("1", "anti"), ("2", "pro"))
    for bad in ("0neutral", "0=", "=x", "0=a=b"):
        with pytest.raises(ValueError, match="`--label-map` items must have the form raw=class"):
            parse_label_map(f"1=y,{bad}")
    with pytest.raises(ValueError, match="'1' appears twice"):
        parse_label_map("1=a,1=b")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"empty_texts": "keep"}, "`empty_texts` must be one of"),
        ({"text_column": ""}, "`text_column` must be a non-empty"),
        ({"label_column": ""}, "`label_column` must be a non-empty"),
        ({"label_map": (("0", "a"), ("0", "b"))}, "raw labels must be unique"),
        ({"label_map": (("0", ""),)}, "pairs of non-empty str"),
    ],
)
def test_data_spec_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataSpec(**kwargs)


# -- splits and subsets


def _toy(n_per_class: tuple[int, ...] = (60, 30, 10)) -> LabelledData:
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class).astype(np.int64)
    return LabelledData(
        texts=tuple(f"t{i}" for i in range(len(labels))),
        labels=labels,
        classes=tuple("abc"[: len(n_per_class)]),
        parties=tuple("p" for _ in labels),
        source="toy.csv",
    )


def test_stratified_split_proportions_and_determinism():
    data = _toy()
    train, valid = stratified_split(data, 0.2, seed=0)
    assert np.bincount(valid.labels).tolist() == [12, 6, 2]
    assert np.bincount(train.labels).tolist() == [48, 24, 8]
    assert sorted(train.texts + valid.texts) == sorted(data.texts)
    again, _ = stratified_split(data, 0.2, seed=0)
    other, _ = stratified_split(data, 0.2, seed=1)
    assert again.texts == train.texts and other.texts != train.texts
    assert train.classes == data.classes and train.source == "toy.csv"


def test_stratified_split_errors():
    for fraction in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="`valid_fraction` must be in"):
            stratified_split(_toy(), fraction, seed=0)
    with pytest.raises(DataError, match="toy.csv.*'c': 1"):
        stratified_split(_toy((5, 5, 1)), 0.3, seed=0)


def test_subset_by_positions_and_mask():
    data = _toy((2, 2, 2))
    picked = subset(data, np.array([5, 0]))
    assert picked.texts == ("t5", "t0") and picked.labels.tolist() == [2, 0] and picked.parties == ("p", "p")
    masked = subset(data, data.labels == 1)
    assert masked.texts == ("t2", "t3") and len(subset(data, np.array([], dtype=np.int64))) == 0


# -- real data (../shared/data, read at run time, never copied)


def test_real_vaccine_train_set(shared_data_dir):
    spec = DataSpec(
        text_column="tweet",
        label_column="label",
        party_column="",
        label_map=parse_label_map("0=neutral,1=anti,2=pro"),
    )
    data = read_labelled(shared_data_dir / "vaccine-sentiment-ys19" / "vaccine_train_set.csv", spec)
    assert data.classes == ("neutral", "anti", "pro")
    assert np.bincount(data.labels).tolist() == [7458, 2073, 6445]
    assert data.parties is None and data.dropped == 0
    assert not any("\r" in t for t in data.texts) and any("\n" in t for t in data.texts)


def test_real_greek_valid_set(shared_data_dir):
    data = read_labelled(shared_data_dir / "greek-election-tweets-ys19-2023" / "valid_set.csv")
    assert len(data) == 5232 and data.classes == ("NEGATIVE", "NEUTRAL", "POSITIVE")
    assert np.bincount(data.labels).tolist() == [1744, 1744, 1744]
    assert set(data.parties) == {"SYRIZA", "ND", "PASOK", "KKE", "DIEM", "ELL_LYSI"}
    assert all(t.startswith(p + " ") for t, p in zip(data.texts, data.parties, strict=True))


def test_concat_undoes_a_split(tmp_path):
    from trainables.data import concat

    path = _write(tmp_path, GOOD + "4,καλά,POSITIVE,ND\n5,κακά,NEGATIVE,ND\n6,ουδέτερο,NEUTRAL,ND\n")
    full = read_labelled(path)
    a, b = stratified_split(full, 0.5, seed=0)
    both = concat(a, b)
    assert sorted(both.texts) == sorted(full.texts) and len(both) == len(full)
    assert sorted(both.labels.tolist()) == sorted(full.labels.tolist())
    other = subset(full, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="differ"):
        concat(a, type(other)(other.texts, other.labels, ("x", "y", "z"), other.parties, other.source))


def test_a_study_accounts_for_rows_read_dropped_and_repeated(tmp_path, caplog):
    """Rows dropped by `--drop-unmapped` and `--empty-texts drop` are counted with their reason; identical texts
    (after cleaning) are counted within and across parts; a test row whose text is a labelled row's is left out."""
    import logging

    from trainables.data_settings import DataSettings
    from trainables.inputs import load_dataset

    rows = ["New_ID,Text,Sentiment,Party"]
    for i in range(60):
        label = ("-1", "0", "1")[i % 3]
        rows.append(f"{i},λέξη{chr(0x3B1 + i % 24)}{chr(0x3B1 + i // 24)} και,{label},ND")
    rows += ["60,ΛΈΞΗαα ΚΑΙ!!,-1,ND", "61,κάτι,7,ND", "62,   ,1,ND", "63,άλλο,9,ND"]  # a copy, 2 unmapped, 1 empty
    train = _write(tmp_path, "\n".join(rows) + "\n")
    test = _write(tmp_path, "New_ID,Text,Sentiment,Party\n70,λέξηαα και,-1,ND\n71,καινούργιο,1,ND\n", "test.csv")
    settings = DataSettings.from_settings(
        train=str(train),
        test=str(test),
        label_map="-1=NEGATIVE,0=NEUTRAL,1=POSITIVE",
        drop_unmapped=True,
        empty_texts="drop",
    )
    with caplog.at_level(logging.INFO, logger="trainables.inputs"):
        ds = load_dataset(settings, cache_dir=tmp_path / "cache")
    a = ds.accounting
    assert a["files"][0] == {
        "part": "train",
        "path": str(train),
        "rows_read": 64,
        "dropped_unmapped": 2,
        "dropped_empty": 1,
        "rows_kept": 61,
    }
    assert sum(a["duplicates"]["within"].values()) == 1  # the copy sits beside its twin, in one part
    assert (
        a["duplicates"]["across"]["train/valid"] == 0
        and a["duplicates"]["across"]["train/test"] + a["duplicates"]["across"]["valid/test"] == 1
    )
    assert a["test_rows_left_out"] == 1 and ds.test.texts == ("ND καινούργιο",) and a["sizes"]["test"] == 1
    assert "2 with a label outside the label map, 1 with an empty text" in caplog.text
    assert "left out of the test set" in caplog.text
