"""The cache folder (trainables/cache.py, `python -m study.cache`): filled past its bound it ends within it, least
recently used entries first, and an entry a running process holds is never removed."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from study.cache import main
from trainables import cache
from trainables.corpus import token_corpus
from trainables.data import DataSpec
from trainables.preprocess import CleanConfig
from trainables.vectorize import VectorConfig, train_vectors

REPO = Path(__file__).resolve().parents[1]
CORPUS = [["καλη", "μερα", "ελλαδα"], ["κακη", "μερα"], ["καλη", "ψηφος", "ελλαδα"]] * 20
SMALL = VectorConfig(vector_size=32, min_count=1, epochs=1)


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """A cache folder of this test's own, as `$RNN_STUDY_CACHE` names it (never the user's ~/.cache)."""
    root = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_VARIABLE, str(root))
    return root


def _vectors(seed: int) -> str:
    """Train (or read) a small cache entry of word vectors; its entry name."""
    train_vectors(CORPUS, replace(SMALL, seed=seed), cache.default_cache_dir() / "word2vec")
    return max(cache.entries(), key=lambda e: e.last_used).name


def _total(root: Path) -> int:
    return sum(e.size for e in cache.entries(root))


@pytest.mark.parametrize(
    ("text", "size"),
    [("5GB", 5 * 10**9), ("500mb", 5 * 10**8), ("2.5G", 25 * 10**8), ("1GiB", 2**30), ("100B", 100), ("0", None)],
)
def test_the_bound_is_a_size_with_a_unit(text, size):
    assert cache.parse_size(text) == size


@pytest.mark.parametrize("text", ["5", "five GB", "-1GB", "5XB"])
def test_a_bound_without_a_unit_is_refused_naming_the_variable_and_the_fix(text):
    with pytest.raises(
        ValueError, match=r"`RNN_STUDY_CACHE_MAX` must be a size .* but got .*`export RNN_STUDY_CACHE_MAX=5GB`"
    ):
        cache.parse_size(text)


def test_filled_past_its_bound_the_cache_ends_within_it_least_recently_used_first(root, monkeypatch):
    first = _vectors(0)
    size = _total(root)
    monkeypatch.setenv(cache.MAX_VARIABLE, f"{int(3.5 * size)}B")  # room for three entries
    names = [first, _vectors(1), _vectors(2)]
    assert [e.name for e in cache.entries(root)] == names  # the least recently used first
    _vectors(0)  # read again: now the most recently used
    names = [names[1], names[2], first]
    for seed in range(3, 8):
        names = [*names[1:], _vectors(seed)]  # the least recently used one goes
        assert [e.name for e in cache.entries(root)] == names
        assert _total(root) <= 3.5 * size  # after every write
    assert len(list((root / "word2vec").glob("*.npz"))) == 3 and not list((root / "word2vec").glob(".*.tmp"))


HOLD = """
import sys
from trainables import cache
with cache.in_use(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it
"""


def test_an_entry_a_running_process_holds_is_never_removed(root, monkeypatch):
    held = _vectors(0)
    (path,) = cache.matching(held)[0].paths
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        monkeypatch.setenv(cache.MAX_VARIABLE, "1B")  # every entry is past the bound
        for seed in (1, 2, 3):
            _vectors(seed)
            assert [e.name for e in cache.entries(root)][0] == held  # evicted entries are those not held
        assert main(["purge"]) == 0
        assert [e.name for e in cache.entries(root)] == [held] and path.is_file()
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert main(["remove", "word2vec/*"]) == 0  # let go: it can go now
    assert cache.entries(root) == []


def test_a_study_holds_its_entries_until_it_ends(root, monkeypatch):
    """`pinned` (what `run_study` runs in) keeps every entry used in the block held, in this process too."""
    monkeypatch.setenv(cache.MAX_VARIABLE, "1B")
    with cache.pinned():
        used = _vectors(0)
        _vectors(1)  # written while the first is held: both stay
        assert {e.name for e in cache.entries(root)} == {used, _vectors(1)}
    _vectors(2)  # the block ended: the others go
    assert [e.name for e in cache.entries(root)] == [_vectors(2)]


def test_a_corpus_is_one_entry_and_the_command_lists_and_removes_it(root, tmp_path, capsys):
    text = tmp_path / "extra.txt"
    text.write_text("καλη μερα\nκακη μερα\n", encoding="utf-8")
    corpus = token_corpus([text], DataSpec(), CleanConfig(), cache.default_cache_dir())
    _vectors(0)
    (entry,) = cache.matching("corpus/*", root)
    assert entry.name == f"corpus/{corpus.key}" and sorted(p.suffix for p in entry.paths) == [".counts", ".tokens"]
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == [entry.name, *(e.name for e in cache.matching("word2vec/*", root))]
    assert main(["info"]) == 0
    assert "Entries: 2 (corpus 1, word2vec 1)" in capsys.readouterr().out
    assert main(["remove", "corpus/*"]) == 0
    assert [e.name for e in cache.entries(root)][0].startswith("word2vec/")
    assert main(["remove", "nothing-*"]) == 2  # no match: bad input
    assert "no cache entry matches 'nothing-*'" in capsys.readouterr().err
