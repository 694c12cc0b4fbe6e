"""The one atomic writer: whole files or none, with the mode a plain open() gives (umask), never mkstemp's 0600."""

import os
import stat

import pytest

from trainables.files import atomic_write, exclusive_lock, umask_mode, write_text


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_files_follow_the_umask(tmp_path, umask_027):
    write_text(tmp_path / "a.txt", "hello")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640 == umask_mode()
    assert umask_mode(folder=True) == 0o750
    assert (tmp_path / "a.txt").read_text() == "hello"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "b.txt"
    write_text(path, "old")

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(path, fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["b.txt"]


def test_json_text_is_strict_json_of_numpy_and_nan():
    import json
    import math

    import numpy as np

    from trainables.files import json_text

    text = json_text({"a": np.float32(0.5), "b": math.nan, "c": (1, np.int64(2)), "d": [np.float64("inf")]})
    assert json.loads(text) == {"a": 0.5, "b": None, "c": [1, 2], "d": [None]}
    assert json.loads(json_text(np.float64("nan"))) is None
    with pytest.raises(TypeError, match="JSON values only"):
        json_text({"x": object()})


class Busy(Exception):
    pass


def test_a_held_lock_refuses_a_second_holder_at_once_and_frees_when_the_block_ends(tmp_path):
    lock = tmp_path / ".lock"
    with exclusive_lock(lock, Busy):
        assert lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(Busy), exclusive_lock(lock, Busy):  # flock: a second open file is a second holder
            pass
    with exclusive_lock(lock, Busy):  # released: taken again
        pass
