"""kronos.io: output paths checked before any work, files replaced whole or not at all (a full disk
or a file-size limit leaves the previous file intact and no temporary file), directory swaps
recovered after a crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import file_size_limit

from kronos.io import (
    check_output_dir,
    check_output_file,
    recover_interrupted_swaps,
    remove_dir,
    remove_stale_temporaries,
    save_dir_atomically,
    write_atomically,
    write_text_atomically,
)


def write_version(text: str):
    return lambda directory: (directory / "weights").write_text(text)


def test_output_paths_are_checked(tmp_path):
    (tmp_path / "a_file").write_text("x")
    assert check_output_file(tmp_path / "new.csv", "--out") == tmp_path / "new.csv"
    with pytest.raises(FileNotFoundError, match="--out .*the folder .*missing' does not exist"):
        check_output_file(tmp_path / "missing" / "f.csv", "--out")
    with pytest.raises(ValueError, match="--out .* is a folder; name a file"):
        check_output_file(tmp_path, "--out")
    with pytest.raises(ValueError, match="a_file' is not a folder"):
        check_output_file(tmp_path / "a_file" / "f.csv", "--out")
    assert check_output_dir(tmp_path / "new" / "deeper", "--out") == tmp_path / "new" / "deeper"
    with pytest.raises(ValueError, match="exists and is not a folder"):
        check_output_dir(tmp_path / "a_file", "--out")
    with pytest.raises(ValueError, match="a_file' is not a folder"):
        check_output_dir(tmp_path / "a_file" / "sub", "--out")


def test_a_write_past_the_file_size_limit_keeps_the_previous_file(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("the previous table\n")
    with file_size_limit(4096), pytest.raises(OSError, match="could not write table .*it was left as it was"):
        write_text_atomically(target, "0123456789\n" * 1000, "table")
    assert target.read_text() == "the previous table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    with file_size_limit(1 << 20):  # the same write within the limit goes through
        write_text_atomically(target, "0123456789\n" * 1000, "table")
    assert target.read_text() == "0123456789\n" * 1000


def test_a_writer_that_fails_leaves_nothing_behind(tmp_path):
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")

    def fails(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_atomically(target, fails)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]
    # the temporary file keeps the suffix, so writers that pick the format by it still can
    assert write_atomically(target, lambda tmp: tmp.write_text(tmp.suffix)).read_text() == ".png"


def test_directory_swap_interrupted_at_each_point_is_recovered(tmp_path):
    best = tmp_path / "best"
    save_dir_atomically(best, write_version("A"))
    # crashed while writing the new version: the partial one is dropped, the old one stays
    (tmp_path / ".best.tmp").mkdir()
    (tmp_path / ".best.tmp" / "weights").write_text("B, half")
    assert recover_interrupted_swaps(tmp_path) == [f"removed the unfinished {tmp_path / '.best.tmp'}"]
    assert (best / "weights").read_text() == "A"
    # crashed between the two renames: the complete new version is moved in
    save_dir_atomically(tmp_path / ".best.tmp", write_version("B"))  # a complete .best.tmp
    best.rename(tmp_path / ".best.old")
    assert "restored" in recover_interrupted_swaps(tmp_path)[0]
    assert (best / "weights").read_text() == "B"
    # crashed after both renames, before the old version was deleted
    save_dir_atomically(tmp_path / ".best.old", write_version("A"))
    recover_interrupted_swaps(tmp_path)
    assert (best / "weights").read_text() == "B"
    # crashed while deleting a checkpoint: what is left of it does not look like one
    (tmp_path / ".epoch-0001.deleted").mkdir()
    recover_interrupted_swaps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    remove_dir(best)
    assert list(tmp_path.iterdir()) == []


def test_directory_swap_that_fails_while_writing_keeps_the_old_directory(tmp_path):
    best = tmp_path / "best"
    save_dir_atomically(best, write_version("A"))
    with file_size_limit(1000), pytest.raises(OSError):
        save_dir_atomically(best, write_version("B" * 5000))
    assert (best / "weights").read_text() == "A" and sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_an_output_that_is_an_input_a_fifo_or_a_device_is_refused(tmp_path):
    source = tmp_path / "bars.csv"
    source.write_text("the input\n")
    with pytest.raises(ValueError, match="bars.csv' is the input .*would overwrite it; name another file"):
        check_output_file(tmp_path / "." / "bars.csv", "--out", [source])
    (tmp_path / "linked.csv").symlink_to(source)
    with pytest.raises(ValueError, match="linked.csv' is the input"):
        check_output_file(tmp_path / "linked.csv", "--out", [tmp_path / "missing.csv", source])
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="pipe.csv' is not a regular file \\(a FIFO, device or socket\\)"):
        check_output_file(fifo, "--out")
    with pytest.raises(ValueError, match="'/dev/null' is not a regular file"):
        check_output_file("/dev/null", "--plot")
    assert source.read_text() == "the input\n"
    assert check_output_file(tmp_path / "other.csv", "--out", [source]) == tmp_path / "other.csv"


def test_temporary_files_of_killed_runs_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "forecast.csv"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f".forecast.csv.kronos-{dead.stdout.strip()}-0123abcd.tmp.csv"
    stale.write_text("half a table")
    running = tmp_path / f".forecast.csv.kronos-{os.getpid()}-0123abcd.tmp.csv"  # a write in progress
    running.write_text("being written")
    other = tmp_path / f".other.csv.kronos-{dead.stdout.strip()}-0123abcd.tmp.csv"  # another target's
    other.write_text("x")
    write_text_atomically(target, "a,b\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["forecast.csv", running.name, other.name])
    assert remove_stale_temporaries(tmp_path / "other.csv") == [other]
