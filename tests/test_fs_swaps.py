"""A symlink swapped into a destination path while a file is being received never redirects the
write: the receiver holds the folder it resolved open and writes relative to it (issue 10)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reelsync.domain.chunks import chunk_checksum
from reelsync.errors import PathError
from reelsync.fs import PartFile, Volume, write_whole_file


def _swap_for_symlink(folder: Path, target: Path) -> Path:
    """Move ``folder`` aside and put a symlink to ``target`` in its place; the moved folder."""
    aside = folder.with_name(folder.name + ".moved")
    folder.rename(aside)
    folder.symlink_to(target)
    return aside


def test_a_part_file_stays_in_its_folder_when_the_folder_is_swapped(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    (root / "proj001" / "shot").mkdir(parents=True)
    (root / "proj002").mkdir()
    vol = Volume("projects", root)
    data = b"x" * 10
    part = PartFile(vol, "proj001/shot/a.bin", size=10, mtime_ns=0, chunk_size=5)
    # mid-transfer: proj001/shot becomes a symlink into proj002
    aside = _swap_for_symlink(root / "proj001" / "shot", root / "proj002")
    part.write_chunk(0, data[:5], chunk_checksum(data[:5]))
    part.write_chunk(1, data[5:], chunk_checksum(data[5:]))
    part.publish(mode=0o644, mtime_ns=0)
    assert (aside / "a.bin").read_bytes() == data  # where the folder really is
    assert os.listdir(root / "proj002") == []  # nothing through the symlink
    assert sorted(os.listdir(aside)) == ["a.bin"]  # no part file or journal left behind


def test_a_small_file_is_refused_when_its_folder_became_a_symlink(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    (root / "proj001" / "shot").mkdir(parents=True)
    (root / "proj002").mkdir()
    vol = Volume("projects", root)
    resolved, _ = vol.lookup("proj001/shot/b.bin")  # planned before the swap
    _swap_for_symlink(root / "proj001" / "shot", root / "proj002")
    with pytest.raises(PathError, match="symlink"):
        write_whole_file(vol, "proj001/shot/b.bin", b"data", mode=0o644, mtime_ns=0,
                         resolved=resolved)  # fmt: skip
    # an intermediate folder swapped: refused too
    (root / "proj003" / "deep").mkdir(parents=True)
    (root / "proj001" / "x" / "deep").mkdir(parents=True)
    resolved, _ = vol.lookup("proj001/x/deep/c.bin")
    _swap_for_symlink(root / "proj001" / "x", root / "proj003")
    with pytest.raises(PathError, match="moved while it was being written"):
        write_whole_file(vol, "proj001/x/deep/c.bin", b"data", mode=0o644, mtime_ns=0,
                         resolved=resolved)  # fmt: skip
    assert os.listdir(root / "proj002") == []
    assert os.listdir(root / "proj003" / "deep") == []
