"""Tests for trainables/preprocess.py: each switch on and off, stop words, bounds, errors, real tweets."""

import csv
import random
import unicodedata

import pytest

from trainables.preprocess import (
    CleanConfig,
    clean_corpus,
    clean_text,
    clean_tokens,
    load_stopwords,
    tokenize,
)

ACCENTED_GREEK = set("άέήίόύώϊϋΐΰΆΈΉΊΌΎΏΪΫ")


# -- one test per step: on, then off; the off output differs from the on output only in that aspect


@pytest.mark.parametrize(
    ("remove_urls", "expected"),
    [
        (True, "δες τωρα liberalgr"),
        (False, "δες https://t.co/hk1eox8nvq τωρα liberalgr https://www.liberal.gr/sh/257167"),
    ],
)
def test_urls(remove_urls, expected):
    text = "Δες https://t.co/Hk1EoX8NVQ τώρα! #LiberalGrhttps://www.liberal.gr/sh/257167"
    assert clean_text(text, CleanConfig(remove_urls=remove_urls)) == expected


def test_kept_urls_are_single_tokens_untouched_by_other_steps():
    cfg = CleanConfig(remove_urls=False, lowercase=False, min_token_len=1)
    tokens = clean_tokens("(δες: https://t.co/Ab1x).", cfg)
    assert tokens == ["δες", "https://t.co/Ab1x"]


@pytest.mark.parametrize(
    ("remove_mentions", "expected"),
    [(True, "λεει ο τσιπρας"), (False, "@glinard @atsipras λεει ο τσιπρας")],
)
def test_mentions(remove_mentions, expected):
    text = "@GLinard,@atsipras: λέει ο Τσίπρας"
    assert clean_text(text, CleanConfig(remove_mentions=remove_mentions)) == expected


def test_kept_url_keeps_its_at_sign_when_mentions_go():
    text = "@user δες https://medium.com/@user/post"
    assert clean_text(text, CleanConfig(remove_urls=False)) == "δες https://medium.com/@user/post"


def test_email_is_not_a_mention():
    assert clean_text("γράψτε στο info@syriza.gr") == "γραψτε στο info syriza gr"


@pytest.mark.parametrize(
    ("strip_hashtag_sign", "expected"),
    [(True, "εκλογες νδ ξεφτιλες"), (False, "#εκλογες #νδ ξεφτιλες")],
)
def test_hashtags_keep_the_word(strip_hashtag_sign, expected):
    text = "#εκλογές2019 #ΝΔ_ξεφτίλες #2019"
    assert clean_text(text, CleanConfig(strip_hashtag_sign=strip_hashtag_sign)) == expected


@pytest.mark.parametrize(
    ("remove_emojis", "expected"),
    [(True, ["χαχα", "ok"]), (False, ["χαχα", "😂😂", "🇬🇷", "👍🏽", "❤️", "ok", "™"])],
)
def test_emojis(remove_emojis, expected):
    cfg = CleanConfig(remove_emojis=remove_emojis, min_token_len=1)
    assert clean_tokens("χαχα😂😂 🇬🇷 👍🏽 ❤️ ok™", cfg) == expected


@pytest.mark.parametrize(
    ("remove_punctuation", "expected"),
    [
        (True, "μητσοτακης τωρα ναι γι αυτο πεφτει"),
        (False, "«μητσοτακης» | τωρα… (ναι) γι΄αυτο ¨πεφτει¨!"),
    ],
)
def test_punctuation(remove_punctuation, expected):
    text = "«Μητσοτάκης» | τώρα… (ναι) γι΄αυτό ¨πέφτει¨!"
    assert clean_text(text, CleanConfig(remove_punctuation=remove_punctuation)) == expected


@pytest.mark.parametrize(
    ("remove_numbers", "expected"),
    [(True, "εκλογες τεταρτη"), (False, "εκλογες2019 τεταρτη25 2019 12 5")],
)
def test_numbers(remove_numbers, expected):
    text = "εκλογές2019 Τετάρτη25 2019 12.5"
    assert clean_text(text, CleanConfig(remove_numbers=remove_numbers)) == expected


@pytest.mark.parametrize(("lowercase", "expected"), [(True, "οδος σ ς hello"), (False, "ΟΔΟΣ Σ ς Hello")])
def test_lowercase_and_final_sigma(lowercase, expected):
    # Lowercasing is str.lower(): a lone "Σ" becomes "σ", a word-final one "ς"; "ς" itself is never folded.
    assert clean_text("ΟΔΟΣ Σ ς Hello", CleanConfig(lowercase=lowercase)) == expected


@pytest.mark.parametrize(
    ("strip_accents", "expected"),
    [
        (True, "αεηιουω ιυιυ αεηιουω cafe naive"),
        (False, "άέήίόύώ ϊϋΐΰ άέήίόύώ café naïve"),
    ],
)
def test_accents_greek_dialytika_uppercase_and_latin(strip_accents, expected):
    text = "άέήίόύώ ϊϋΐΰ ΆΈΉΊΌΎΏ café naïve"
    assert clean_text(text, CleanConfig(strip_accents=strip_accents)) == expected


def test_accents_without_lowercase_keep_case():
    assert clean_text("Άρης ΪΫ", CleanConfig(lowercase=False)) == "Αρης ΙΥ"


def test_accents_of_decomposed_input():
    decomposed = unicodedata.normalize("NFD", "είναι ΐ")
    assert clean_text(decomposed, CleanConfig(strip_accents=False)) == "είναι ΐ"
    assert clean_text(decomposed) == "ειναι ι"


def test_html_entities_and_invisible_characters_always_go():
    assert clean_text("a\u2066b\u2069 x\u00ady &amp; &gt;", CleanConfig(remove_punctuation=False)) == "ab xy & >"


# -- stop words


@pytest.mark.parametrize("word", ["είναι", "ειναι", "Είναι", "ΕΙΝΑΙ", "και", "του", "δεν", "the", "The", "don't"])
@pytest.mark.parametrize(("lowercase", "strip_accents"), [(True, True), (True, False), (False, True), (False, False)])
def test_stopwords_match_whatever_case_and_accent_settings(word, lowercase, strip_accents):
    cfg = CleanConfig(lowercase=lowercase, strip_accents=strip_accents)
    assert clean_tokens(f"κυβέρνηση {word} Κυβέρνηση", cfg) == clean_tokens("κυβέρνηση Κυβέρνηση", cfg)


@pytest.mark.parametrize(
    ("languages", "remove_stopwords", "expected"),
    [
        (("el", "en"), True, ["λεει", "truth"]),
        (("el",), True, ["λεει", "the", "truth"]),
        (("en",), True, ["δεν", "λεει", "την", "truth"]),
        ((), True, ["δεν", "λεει", "την", "the", "truth"]),
        (("el", "en"), False, ["δεν", "λεει", "την", "the", "truth"]),
    ],
)
def test_stopword_languages_and_switch(languages, remove_stopwords, expected):
    cfg = CleanConfig(stopword_languages=languages, remove_stopwords=remove_stopwords)
    assert clean_tokens("Δεν λέει την the truth", cfg) == expected


def test_load_stopwords_files():
    greek, english = load_stopwords("el"), load_stopwords("en")
    assert {"και", "του", "τη", "να", "είναι", "από", "για", "με", "δεν", "θα", "που", "στο", "στη"} <= greek
    assert {"the", "and", "is", "not", "don", "t"} <= english
    assert len(greek) >= 250 and len(english) >= 170
    assert not any(w.startswith("#") or w != w.strip() or not w for w in greek | english)
    assert load_stopwords("el") is greek  # cached


def test_load_stopwords_unknown_language():
    with pytest.raises(ValueError, match=r"`language` must be one of \['el', 'en'\], but got 'xx'"):
        load_stopwords("xx")


# -- tokens, bounds, config


def test_tokenize_greek_latin_and_symbols():
    assert tokenize("Ο Tsipras είπε: ok!! 😂😂 #ΝΔ @user") == [
        "Ο",
        "Tsipras",
        "είπε",
        ":",
        "ok",
        "!!",
        "😂😂",
        "#ΝΔ",
        "@user",
    ]


@pytest.mark.parametrize(
    ("min_len", "max_len", "expected"),
    [(2, 30, ["ab", "abc", "abcde"]), (1, 30, ["a", "ab", "abc", "abcde"]), (3, 4, ["abc"]), (2, 2, ["ab"])],
)
def test_token_length_bounds(min_len, max_len, expected):
    cfg = CleanConfig(min_token_len=min_len, max_token_len=max_len, remove_stopwords=False)
    assert clean_tokens("a ab abc abcde " + "x" * 31, cfg) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_token_len": 0}, r"`min_token_len` must be an int >= 1, but got 0\."),
        (
            {"min_token_len": 5, "max_token_len": 3},
            r"`max_token_len` must be an int >= `min_token_len` \(5\), but got 3\.",
        ),
        (
            {"stopword_languages": ("el", "de")},
            r"`stopword_languages` must be among \['el', 'en'\], but got \['el', 'de'\]\.",
        ),
        (
            {"stopword_languages": "el"},
            r"`stopword_languages` must be a tuple of language codes, but got 'el'\.",
        ),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CleanConfig(**kwargs)


def test_non_str_text_is_a_type_error():
    with pytest.raises(TypeError, match=r"`text` must be a str, but got float"):
        clean_text(float("nan"))


def test_clean_corpus_is_clean_tokens_per_text():
    texts = ["Καλημέρα Ελλάδα!", "", "https://t.co/x 😂"]
    assert clean_corpus(texts) == [clean_tokens(t) for t in texts] == [["καλημερα", "ελλαδα"], [], []]


# -- real tweets (../shared/data, read at run time, never copied)


@pytest.fixture(scope="module")
def real_tweets(shared_data_dir) -> list[str]:
    path = shared_data_dir / "greek-election-tweets-ys19-2023" / "valid_set.csv"
    with path.open(newline="", encoding="utf-8") as f:
        texts = [row["Text"] for row in csv.DictReader(f)]
    return random.Random(0).sample(texts, 200)


def test_real_tweets_are_clean(real_tweets):
    corpus = clean_corpus(real_tweets)
    tokens = [t for doc in corpus for t in doc]
    assert len(corpus) == 200 and len(tokens) > 1000
    for token in tokens:
        assert "http" not in token and "@" not in token and "#" not in token, token
        assert not any(c.isdigit() for c in token), token
        assert not any(unicodedata.category(c) in ("So", "Sk", "Cs", "Co") for c in token), token
        assert token == token.lower(), token
        assert not set(token) & ACCENTED_GREEK, token
        assert token.isalpha(), token
        assert 2 <= len(token) <= 30, token
