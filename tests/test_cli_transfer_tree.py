"""`reelsync transfer push --tree`: the files below a folder, one lstat each, never through a
symlink and never reelsync's temporary files."""

from __future__ import annotations

import os
from pathlib import Path

from reelsync.cli.transfer import _files
from reelsync.fs import PART_SUFFIX, Volume


def test_tree_lists_the_files_below_a_folder(tmp_path: Path) -> None:
    src, outside = tmp_path / "src", tmp_path / "outside"
    (src / "sh010" / "comp").mkdir(parents=True)
    outside.mkdir()
    (src / "sh010" / "comp" / "a.nk").write_bytes(b"a" * 10)
    (src / "sh010" / "b.txt").write_bytes(b"bb")
    (src / "sh010" / "comp" / f".c.nk{PART_SUFFIX}").write_bytes(b"partial")
    (outside / "secret").write_bytes(b"no")
    os.symlink(outside, src / "sh010" / "link")
    volumes = {"s": Volume("s", src), "d": Volume("d", tmp_path)}
    specs = _files(volumes, (), ("s:sh010=d:in/here",), False)
    got = {(str(f.src), str(f.dst), f.size) for f in specs}
    assert got == {
        ("s:sh010/comp/a.nk", "d:in/here/comp/a.nk", 10),
        ("s:sh010/b.txt", "d:in/here/b.txt", 2),
    }
    assert sorted(f.key for f in specs) == ["0", "1"]
    whole = _files(volumes, (), ("s:=d:",), False)  # the volume root
    assert {str(f.dst) for f in whole} == {"d:sh010/comp/a.nk", "d:sh010/b.txt"}
    one = _files(volumes, (), ("s:sh010/b.txt=d:x.txt",), False)  # a tree of one file
    assert [(str(f.src), str(f.dst), f.size) for f in one] == [("s:sh010/b.txt", "d:x.txt", 2)]
