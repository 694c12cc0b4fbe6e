"""A built-in, deterministic demo dataset shaped like the Greek election tweets, for trying the tool offline.

Here: `make_demo_frame` (a labelled DataFrame with the original's columns) and `write_demo` (train.csv
and unlabelled.csv on disk). The texts are synthetic: Greek filler words with accents and mixed case, party
leaders, election hashtags, @mentions, t.co links, numbers and a few emojis, so every cleaning step has work
to do. Sentiment comes from a few positive or negative words among many neutral ones, and part of the labels
are replaced at random, so a bag-of-words model learns it well above chance but far from perfectly. Not here:
reading the files back (data.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trainables.cache import in_use, written
from trainables.files import write_bytes

DEMO_CLASSES = ("NEGATIVE", "NEUTRAL", "POSITIVE")

# fmt: off
# Party shares follow the Party counts of the original test_set.csv.
_PARTIES = ("SYRIZA", "ND", "PASOK", "KKE", "DIEM", "ELL_LYSI")
_PARTY_SHARES = np.array([4180, 3272, 1470, 828, 471, 249], dtype=float) / 10470
_LEADERS = {
    "SYRIZA": ("Τσίπρας", "Τσίπρα", "ΤΣΙΠΡΑΣ", "τσιπρας", "ΣΥΡΙΖΑ", "Σύριζα"),
    "ND": ("Μητσοτάκης", "Μητσοτάκη", "ΜΗΤΣΟΤΑΚΗΣ", "μητσοτακης", "ΝΔ", "Νέα Δημοκρατία"),
    "PASOK": ("Γεννηματά", "ΓΕΝΝΗΜΑΤΑ", "ΚΙΝΑΛ", "ΠΑΣΟΚ", "Κίνημα Αλλαγής"),
    "KKE": ("Κουτσούμπας", "Κουτσούμπα", "ΚΚΕ", "κκε"),
    "DIEM": ("Βαρουφάκης", "Βαρουφάκη", "ΒΑΡΟΥΦΑΚΗΣ", "ΜέΡΑ25", "ΜΕΡΑ25"),
    "ELL_LYSI": ("Βελόπουλος", "Βελόπουλο", "ΒΕΛΟΠΟΥΛΟΣ", "Ελληνική Λύση"),
}
_MENTIONS = (
    "@atsipras", "@kmitsotakis", "@skaigr", "@ertnews", "@naftemporiki", "@avgi_gr", "@kathimerini_gr",
)
_HASHTAGS = (
    "#εκλογές2019", "#Εκλογές_2019", "#ekloges2019", "#εκλογες", "#debate", "#ΣΥΡΙΖΑ", "#ΝΔ", "#vouli",
)
_EMOJIS = ("😂", "😡", "👍", "🇬🇷", "🤔", "👏", "🙄")
_FILLER = (
    "και", "το", "να", "για", "της", "του", "που", "με", "στο", "στην", "από", "θα", "δεν", "είναι", "οι",
    "τα", "μια", "ένα", "αλλά", "όμως", "σήμερα", "αύριο", "χθες", "κυβέρνηση", "αντιπολίτευση", "εκλογές",
    "κάλπες", "ψήφος", "ψηφοφόροι", "βουλή", "πρόγραμμα", "οικονομία", "φόροι", "συντάξεις", "νέοι", "χώρα",
    "Ελλάδα", "Αθήνα", "Θεσσαλονίκη", "κόμμα", "υποψήφιος", "βουλευτής", "ομιλία", "συγκέντρωση", "περιοδεία",
    "τηλεόραση", "κανάλι", "ραδιόφωνο", "δημοσκόπηση", "ποσοστό", "Κυριακή", "Ιούλιο", "πρωθυπουργός",
    "υπουργός", "μέτρα", "ανεργία", "ανάπτυξη", "επενδύσεις", "μεταναστευτικό", "Μακεδονία", "συμφωνία",
    "Πρεσπών", "ΕΡΤ", "ΣΚΑΪ", "debate", "live", "τώρα", "ΤΩΡΑ", "είπε", "δήλωσε", "απάντησε", "ρώτησε",
)
_SENTIMENT = {
    "NEGATIVE": (
        "ψέματα", "ψεύτης", "ντροπή", "απαράδεκτο", "αίσχος", "καταστροφή", "χάλια", "ΝΤΡΟΠΗ", "απάτη",
        "προδοσία", "αηδία", "θλιβερό",
    ),
    "NEUTRAL": ("ανακοίνωση", "συνέντευξη", "δηλώσεις", "πρόγραμμα", "ενημέρωση", "ειδήσεις", "ερώτηση"),
    "POSITIVE": (
        "μπράβο", "εξαιρετικός", "ελπίδα", "νίκη", "δυνατά", "ΜΠΡΑΒΟ", "συγχαρητήρια", "υπέροχη", "επιτέλους",
        "σωστός", "ευχαριστούμε", "αξιόπιστος",
    ),
}
# fmt: on
_URL_CHARS = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _tweet(rng: np.random.Generator, party: str, label: str) -> str:
    words = [_pick(rng, _FILLER) for _ in range(int(rng.integers(6, 17)))]
    signal = [_pick(rng, _SENTIMENT[label]) for _ in range(int(rng.binomial(2, 0.5 if label == "NEUTRAL" else 0.6)))]
    if rng.random() < 0.3:  # a word of the wrong sentiment, as in sarcastic or quoted tweets
        signal.append(_pick(rng, _SENTIMENT[_pick(rng, DEMO_CLASSES)]))
    if rng.random() < 0.6:
        signal.append(_pick(rng, _LEADERS[party]))
    if rng.random() < 0.3:
        signal.append(_pick(rng, ("35%", "2019", "10.000", "3", "7/7", "41,5%", "300")))
    for word in signal:
        words.insert(int(rng.integers(len(words) + 1)), word)
    words[0] = words[0].capitalize()
    if rng.random() < 0.4:
        words.insert(0, _pick(rng, _MENTIONS))
    if rng.random() < 0.6:
        words.append(_pick(rng, _HASHTAGS))
    if rng.random() < 0.15:
        words.append(_pick(rng, _EMOJIS))
    text = " ".join(words)
    if rng.random() < 0.03:
        text = text.replace(" ", "\n", 1)
    for _ in range(int(rng.binomial(2, 0.3))):
        text += " https://t.co/" + "".join(rng.choice(_URL_CHARS, size=10))
    return text


def _frame(n_rows: int, rng: np.random.Generator, label_noise: float) -> pd.DataFrame:
    parties = rng.choice(len(_PARTIES), size=n_rows, p=_PARTY_SHARES)
    true = rng.integers(len(DEMO_CLASSES), size=n_rows)
    texts = [_tweet(rng, _PARTIES[p], DEMO_CLASSES[c]) for p, c in zip(parties, true, strict=True)]
    noisy = np.where(rng.random(n_rows) < label_noise, rng.integers(len(DEMO_CLASSES), size=n_rows), true)
    return pd.DataFrame(
        {
            "New_ID": rng.permutation(n_rows) + 1,  # unrelated to the label, unlike the original's ids
            "Text": texts,
            "Sentiment": [DEMO_CLASSES[c] for c in noisy],
            "Party": [_PARTIES[p] for p in parties],
        }
    )


def make_demo_frame(n_rows: int = 3000, seed: int = 0, label_noise: float = 0.25) -> pd.DataFrame:
    """Makes a labelled demo dataset with the columns of the Greek election tweets.

    Args:
        n_rows: Number of tweets.
        seed: Seed for `np.random.default_rng`; the same seed gives the same frame.
        label_noise: Share of rows whose label is replaced by a uniformly drawn class (which may be the same).

    Returns:
        A DataFrame with columns New_ID (shuffled 1..n_rows, unrelated to the label), Text, Sentiment
        (one of `DEMO_CLASSES`) and Party.

    Raises:
        ValueError: `n_rows` < 1 or `label_noise` outside [0, 1].
    """
    if n_rows < 1:
        raise ValueError(f"`n_rows` must be at least 1, but got {n_rows}.")
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"`label_noise` must be in [0, 1], but got {label_noise}.")
    return _frame(n_rows, np.random.default_rng(seed), label_noise)


def write_demo(directory: Path, n_rows: int = 3000, seed: int = 0) -> tuple[Path, Path]:
    """Writes the demo's train.csv and unlabelled.csv into `directory`, each atomically.

    train.csv is `make_demo_frame(n_rows, seed)`; unlabelled.csv has n_rows // 2 other tweets (drawn from a
    seed derived from `seed`) and no Sentiment column. A file that already holds the same bytes is left alone,
    so repeated calls are cheap and never change modification times.

    Args:
        directory: Where to write; created if missing.
        n_rows: Rows of train.csv.
        seed: Seed for both files.

    Returns:
        (path of train.csv, path of unlabelled.csv).
    """
    directory = Path(directory)
    train = make_demo_frame(n_rows, seed)
    unlabelled = _frame(max(n_rows // 2, 1), np.random.default_rng([seed, 1]), 0.0).drop(columns="Sentiment")
    paths = (directory / "train.csv", directory / "unlabelled.csv")
    with in_use(directory):  # in the cache folder: an entry of the cache (trainables/cache.py)
        directory.mkdir(parents=True, exist_ok=True)
        changed = False
        for path, frame in zip(paths, (train, unlabelled), strict=True):
            content = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
            if not (path.is_file() and path.read_bytes() == content):
                write_bytes(path, content)
                changed = True
        if changed:
            written(directory)
    return paths
