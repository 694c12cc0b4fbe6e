"""Tweet cleaning and tokenising for Greek/Latin election tweets: CleanConfig and pure cleaning functions.

Every step is a CleanConfig switch. clean_text applies the character-level steps in a fixed order:
HTML entities and invisible format characters (always), lowercase, URLs, @mentions, accents, hashtag sign,
emojis and symbols, numbers, punctuation, whitespace. clean_tokens then tokenises and drops stop words and
tokens outside the length bounds.

Notes on how steps interact:
- URLs and mentions are removed first, so punctuation removal never turns "https://t.co/x" into words.
- URLs and @mentions that are kept (remove_urls / remove_mentions off) are atomic: they stay single tokens and
  only `lowercase` touches them (accents, emojis, numbers and punctuation steps skip them).
- With strip_hashtag_sign off, punctuation removal keeps the '#' that starts a hashtag; the hashtag's word is
  cleaned like any other word ("#Εκλογές_2019" -> "#εκλογες").
- Stop words are matched case- and accent-insensitively whatever `lowercase` and `strip_accents` say, so
  "είναι" in the list removes "Είναι", "ειναι" and "ΕΙΝΑΙ"; those two switches change only how kept tokens
  look.
- With remove_punctuation or remove_emojis off, runs of such characters become tokens of their own; with the
  default min_token_len=2 the single-character ones are then dropped by the length bound.

Vectorising and vocabulary building live in vectorize.py, not here.
"""

from __future__ import annotations

import functools
import html
import importlib.resources
import itertools
import re
import string
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

_STOPWORDS_DIR = importlib.resources.files(__package__) / "stopwords"

# Scheme or "www." then ASCII URL characters; the last character may not be trailing punctuation, so
# "(https://t.co/abc)." keeps ")." out of the URL, and a Greek word glued after a URL is not swallowed.
_URL_CHARS = r"A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%"
_URL = rf"(?:[hH][tT][tT][pP][sS]?://|[wW][wW][wW]\.)[{_URL_CHARS}]*[A-Za-z0-9/#=_\-~%&+]"
# Twitter usernames are ASCII [A-Za-z0-9_] and may not follow an ASCII word character (so no e-mails).
# Patterns start with their literal, not a lookbehind, so the regex engine can skip ahead to it (8x faster).
_MENTION = r"@(?<![A-Za-z0-9_]@)[A-Za-z0-9_]+"
_HASHTAG_SIGN = r"#(?<!\w#)(?=\w)"

_URL_RE = re.compile(_URL)
_MENTION_RE = re.compile(_MENTION)
_HASHTAG_SIGN_RE = re.compile(_HASHTAG_SIGN)
_TOKEN_RE = re.compile(rf"{_URL}|@[A-Za-z0-9_]+|#\w+|\w+|[^\w\s]+")
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")

# Spacing accents Greek tweets use as apostrophes or quotes ("γι΄αυτό", "¨πέφτει"): punctuation, not emoji.
_APOSTROPHE_LIKE = frozenset("\u00a8\u00b4\u02bc\u0384\u0385\u1fbd\u1fbf\u1fc0\u1fc1\u1fcd\u1fce\u1fcf\u1fdd")
_APOSTROPHE_LIKE |= frozenset("\u1fde\u1fdf\u1fed\u1fee\u1fef\u1ffd\u1ffe")
# Parts of emoji sequences: variation selectors, zero-width joiner, combining keycap, tag characters.
_EMOJI_JOINERS = (
    set(range(0xFE00, 0xFE10)) | set(range(0xE0100, 0xE01F0)) | {0x200D, 0x20E3} | set(range(0xE0020, 0xE0080))
)
_KEEP_FORMAT = {0x200C, 0x200D} | set(range(0xE0020, 0xE0080))


@dataclass(frozen=True)
class CleanConfig:
    """Which cleaning steps to apply; each switch changes only its own aspect of the output."""

    lowercase: bool = True
    strip_accents: bool = True  # Greek tonos/dialytika and Latin accents (NFD, drop combining marks, NFC)
    remove_urls: bool = True  # http(s)://... and www....
    remove_mentions: bool = True  # @user
    strip_hashtag_sign: bool = True  # "#εκλογές2019" -> "εκλογές2019"
    remove_emojis: bool = True  # emojis and other symbols (So, Sk, Cs, Co, variation selectors, ZWJ, ...)
    remove_punctuation: bool = True  # P* categories, math and currency symbols, ASCII specials like '|'
    remove_numbers: bool = True  # digit runs, also inside words ("εκλογές2019" -> "εκλογές")
    remove_stopwords: bool = True
    stopword_languages: tuple[str, ...] = ("el", "en")  # names of files in trainables/stopwords/
    min_token_len: int = 2  # characters; shorter tokens are dropped
    max_token_len: int = 30  # characters; longer tokens are dropped

    def __post_init__(self) -> None:
        if not isinstance(self.min_token_len, int) or self.min_token_len < 1:
            raise ValueError(f"`min_token_len` must be an int >= 1, but got {self.min_token_len!r}.")
        if not isinstance(self.max_token_len, int) or self.max_token_len < self.min_token_len:
            raise ValueError(
                f"`max_token_len` must be an int >= `min_token_len` ({self.min_token_len}), "
                f"but got {self.max_token_len!r}."
            )
        if not isinstance(self.stopword_languages, tuple):
            raise ValueError(
                f"`stopword_languages` must be a tuple of language codes, but got {self.stopword_languages!r}."
            )
        known = _stopword_languages()
        if not set(self.stopword_languages) <= set(known):
            raise ValueError(
                f"`stopword_languages` must be among {list(known)}, but got {list(self.stopword_languages)}."
            )


@functools.cache
def _stopword_languages() -> tuple[str, ...]:
    """Returns the language codes that have a stop-word file, sorted."""
    return tuple(sorted(p.name.removesuffix(".txt") for p in _STOPWORDS_DIR.iterdir() if p.name.endswith(".txt")))


@functools.cache
def load_stopwords(language: str) -> frozenset[str]:
    """Reads the stop words of one language, as written in the file (lowercase, with accents).

    Args:
        language: Code of a file in trainables/stopwords/, e.g. "el" or "en".

    Returns:
        The stop words; blank lines and lines starting with '#' are skipped.

    Raises:
        ValueError: If there is no stop-word file for `language`.
    """
    known = _stopword_languages()
    if language not in known:
        raise ValueError(f"`language` must be one of {list(known)}, but got {language!r}.")
    text = (_STOPWORDS_DIR / f"{language}.txt").read_text(encoding="utf-8")
    words = (line.strip() for line in text.splitlines())
    return frozenset(unicodedata.normalize("NFC", w) for w in words if w and not w.startswith("#"))


def tokenize(text: str) -> list[str]:
    """Splits cleaned text into tokens.

    Word tokens are runs of unicode word characters (Greek, Latin, digits, '_'). URLs, @mentions and #hashtags
    left in the text stay single tokens; any other run of non-space, non-word characters (punctuation, an
    emoji sequence) is one token. Meant for the output of clean_text (NFC text).
    """
    return _TOKEN_RE.findall(text)


def clean_text(text: str, cfg: CleanConfig = CleanConfig()) -> str:
    """Applies the character-level cleaning steps that `cfg` switches on.

    HTML entities from the Twitter API ("&amp;") are always unescaped, invisible format characters (bidi
    marks, zero-width spaces, soft hyphens) always dropped, and the text always NFC-normalised.

    Returns:
        The cleaned text, tokens separated by single spaces, no leading or trailing space.

    Raises:
        TypeError: If `text` is not a str (e.g. a NaN from pandas).
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str, but got {type(text).__name__}: {text!r}.")
    if "&" in text:
        text = html.unescape(text)
    text = unicodedata.normalize("NFC", text)
    astral = _ASTRAL_RE.search(text) is not None  # most tweets have no emoji: use the faster BMP-only regexes
    text = _classes().invisible.sub("", text, astral)
    if cfg.lowercase:
        text = text.lower()
    if cfg.remove_urls:
        text = _URL_RE.sub(" ", text)
    entity_re = _entity_re(keep_urls=not cfg.remove_urls, keep_mentions=not cfg.remove_mentions)
    if entity_re is None:
        text = _clean_words(text, cfg, astral)
    else:
        # re.split with one capturing group alternates [words, entity, words, entity, ..., words].
        parts = entity_re.split(text)
        parts[::2] = [_clean_words(part, cfg, astral) for part in parts[::2]]
        text = " ".join(parts)
    return " ".join(text.split())


def clean_tokens(text: str, cfg: CleanConfig = CleanConfig()) -> list[str]:
    """Cleans one tweet and returns its tokens in order, without stop words and out-of-bounds lengths."""
    tokens = tokenize(clean_text(text, cfg))
    lo, hi = cfg.min_token_len, cfg.max_token_len
    if not cfg.remove_stopwords:
        return [t for t in tokens if lo <= len(t) <= hi]
    stop = _folded_stopwords(cfg.stopword_languages)
    if cfg.lowercase and cfg.strip_accents:  # tokens are already folded: skip the per-token fold
        return [t for t in tokens if lo <= len(t) <= hi and t not in stop]
    return [t for t in tokens if lo <= len(t) <= hi and _fold(t) not in stop]


def clean_corpus(texts: Sequence[str], cfg: CleanConfig = CleanConfig()) -> list[list[str]]:
    """Cleans many tweets with one config: one token list per tweet (`clean_tokens`), in the input order."""
    return [clean_tokens(text, cfg) for text in texts]


def _clean_words(text: str, cfg: CleanConfig, astral: bool) -> str:
    """Mention, accent, hashtag, emoji, number and punctuation steps on text without kept URLs or mentions."""
    classes = _classes()
    if cfg.remove_mentions:  # here, not before the split, so an "@" inside a kept URL stays
        text = _MENTION_RE.sub(" ", text)
    if cfg.strip_accents:
        text = _strip_accents(text, astral)
    if cfg.strip_hashtag_sign:
        text = _HASHTAG_SIGN_RE.sub("", text)
    if cfg.remove_emojis:
        text = classes.emoji.sub(" ", text, astral)
    if cfg.remove_numbers:
        # Digits go before punctuation so a hashtag left as a bare "#" ("#2019") then goes as punctuation.
        text = classes.number.sub("", text, astral)
    if cfg.remove_punctuation:
        punctuation = classes.punctuation if cfg.strip_hashtag_sign else classes.punctuation_keep_hashtag
        text = punctuation.sub(" ", text, astral)
    return text


def _strip_accents(text: str, astral: bool = True) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", _classes().combining.sub("", decomposed, astral))


@functools.lru_cache(maxsize=2**16)
def _fold(token: str) -> str:
    """The form stop words are compared in: lowercase, no accents."""
    return _strip_accents(token.lower())


@functools.cache
def _folded_stopwords(languages: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_fold(w) for lang in languages for w in load_stopwords(lang))


@functools.cache
def _entity_re(keep_urls: bool, keep_mentions: bool) -> re.Pattern[str] | None:
    """Pattern that splits out the URLs and mentions that are kept, or None when none are kept."""
    kept = [p for p, keep in ((_URL, keep_urls), (_MENTION, keep_mentions)) if keep]
    return re.compile(f"({'|'.join(kept)})") if kept else None


@dataclass(frozen=True)
class _CharClass:
    """Matches runs of a set of characters.

    One character class holding astral (> U+FFFF) ranges is slow: the engine tests those ranges one after
    another for every character that misses the BMP part. So `bmp` holds the BMP part only, for text known to
    have no astral characters, and `full` puts the astral part behind a lookbehind (3x faster than one class).
    """

    bmp: re.Pattern[str]
    full: re.Pattern[str]

    def sub(self, repl: str, text: str, astral: bool) -> str:
        return (self.full if astral else self.bmp).sub(repl, text)


@dataclass(frozen=True)
class _CharClasses:
    combining: _CharClass
    emoji: _CharClass
    number: _CharClass
    punctuation: _CharClass
    punctuation_keep_hashtag: _CharClass
    invisible: _CharClass


@functools.cache
def _classes() -> _CharClasses:
    """Compiles the unicode character-class regexes (one scan of all code points, about 0.3 s, done once)."""
    combining, emoji, number, punct, invisible = [], [], [], [], []
    ascii_punct = {ord(c) for c in string.punctuation}
    apostrophes = {ord(c) for c in _APOSTROPHE_LIKE}
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat == "Cn":  # unassigned (three code points in four): in no class
            continue
        if unicodedata.combining(ch):
            combining.append(cp)
        if cp in ascii_punct or cp in apostrophes or cat[0] == "P" or cat in ("Sm", "Sc"):
            punct.append(cp)
        elif cat in ("So", "Sk", "Cs", "Co") or cp in _EMOJI_JOINERS:
            emoji.append(cp)
        elif cat[0] == "N":
            number.append(cp)
        elif (cat == "Cc" and not ch.isspace()) or (cat == "Cf" and cp not in _KEEP_FORMAT):
            invisible.append(cp)
    punct_no_hash = [cp for cp in punct if cp != ord("#")]
    return _CharClasses(
        combining=_class_re(combining),
        emoji=_class_re(emoji),
        number=_class_re(number),
        punctuation=_class_re(punct),
        # A '#' is punctuation unless it starts a hashtag.
        punctuation_keep_hashtag=_class_re(punct_no_hash, extra=f"|(?!{_HASHTAG_SIGN})#"),
        invisible=_class_re(invisible),
    )


def _class_re(codepoints: list[int], extra: str = "") -> _CharClass:
    """Regexes for runs of the given code points, plus an `extra` alternative."""
    bmp = f"[{_ranges([cp for cp in codepoints if cp <= 0xFFFF])}]"
    astral = [cp for cp in codepoints if cp > 0xFFFF]
    full = f"(?:{bmp}|[\\U00010000-\\U0010ffff](?<=[{_ranges(astral)}]))+" if astral else f"{bmp}+"
    return _CharClass(bmp=re.compile(f"{bmp}+{extra}"), full=re.compile(f"{full}{extra}"))


def _ranges(codepoints: list[int]) -> str:
    """Regex character-class body for sorted code points, as escaped ranges."""
    # The code points of a run of consecutive ones all lie the same distance from their position in the list.
    runs = [[cp for _, cp in run] for _, run in itertools.groupby(enumerate(codepoints), lambda p: p[1] - p[0])]
    return "".join(f"\\U{r[0]:08x}" if len(r) == 1 else f"\\U{r[0]:08x}-\\U{r[-1]:08x}" for r in runs)
