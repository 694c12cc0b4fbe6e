"""The one atomic writer: whole files or none, with the mode a plain open() gives (umask), never mkstemp's 0600."""

import os
import stat

import pytest

from trainables.files import atomic_write, umask_mode, write_text


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_files_follow_the_umask(tmp_path, umask_027):
    write_text(tmp_path / "a.txt", "hello")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640 == umask_mode()
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
