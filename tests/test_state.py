"""Unit tests of agent.state: the state file (term and incarnation) and the incarnation of a new life."""

import os
import stat

import pytest

from agent import state


def test_a_missing_file_and_no_file_at_all_mean_term_0_and_no_incarnation(tmp_path):
    assert state.read(None) == (0, None)
    assert state.read(str(tmp_path / "term")) == (0, None)


def test_old_one_line_term_files_are_still_read(tmp_path):
    path = tmp_path / "term"
    path.write_text("42\n")
    assert state.read(str(path)) == (42, None)


def test_save_then_read_round_trips_and_leaves_no_temporary_file(tmp_path):
    path = str(tmp_path / "term")
    state.save(path, 7, 29000000)
    assert open(path).read() == "7\n29000000\n"
    assert state.read(path) == (7, 29000000)
    state.save(path, 8, 29000001)   # replaces the file
    assert state.read(path) == (8, 29000001)
    assert sorted(os.listdir(tmp_path)) == ["term"]
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o022 == 0


@pytest.mark.parametrize("text", ["", "x\n", "1 2 3\n", "5\nnope\n", "%d\n" % (1 << 32), "-1\n", "4\n%d\n" % (1 << 32)])
def test_malformed_files_count_as_absent(tmp_path, text, caplog):
    path = tmp_path / "term"
    path.write_text(text)
    assert state.read(str(path)) == (0, None)
    assert "ignoring %s" % path in caplog.text


def test_save_is_durable_file_fsynced_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", stat.S_ISDIR(os.fstat(fd).st_mode)))
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", os.path.basename(dst)))
        real_replace(src, dst)
    monkeypatch.setattr(state.os, "fsync", fsync)
    monkeypatch.setattr(state.os, "replace", replace)
    state.save(str(tmp_path / "term"), 3, 4)
    assert calls == [("fsync", False), ("replace", "term"), ("fsync", True)], calls


def test_a_failed_save_raises_and_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = str(tmp_path / "term")
    state.save(path, 1, 2)

    def broken(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(state.os, "fsync", broken)
    with pytest.raises(OSError):
        state.save(path, 9, 9)
    assert state.read(path) == (1, 2)
    assert sorted(os.listdir(tmp_path)) == ["term"]


@pytest.mark.parametrize("saved, now_s, expected", [
    (None, state.EPOCH_2026 - 100, 0),                     # no file, clock before 2026 (unset): 0
    (None, state.EPOCH_2026 + 1000, 1000),                 # no file: the wall clock
    (5, state.EPOCH_2026 + 1000, 1000),                    # the clock is ahead of the file
    (5000, state.EPOCH_2026 + 1000, 5001),                 # the file is ahead (bumps, or a clock gone back)
    (5000, 0, 5001),                                       # no wall clock at all
    (state.MAX_VALUE, state.EPOCH_2026, state.MAX_VALUE),  # never past 32 bits
    (None, state.EPOCH_2026 + (1 << 40), state.MAX_VALUE),
])
def test_start_incarnation_is_one_above_the_saved_and_at_least_the_wall_clock(saved, now_s, expected):
    assert state.start_incarnation(saved, now_s) == expected
