"""The file operations an agent runs for the control plane (reelsync.agent.fileops), on a real
volume: accsyn result shapes, confinement, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reelsync.agent.fileops import run_fileop
from reelsync.errors import ConflictError, NotFoundError, PathError, ValidationError
from reelsync.fs import Volume


@pytest.fixture
def volumes(tmp_path: Path) -> dict[str, Volume]:
    root = tmp_path / "projects"
    (root / "proj" / "shots" / "sh010").mkdir(parents=True)
    (root / "proj" / "shots" / "sh010" / "a.exr").write_bytes(b"x" * 100)
    (root / "proj" / "shots" / "sh010" / "b.dpx").write_bytes(b"y" * 50)
    (root / "proj" / "notes.txt").write_text("hi")
    (root / "proj" / "half.exr.reelsync-part").write_bytes(b"partial")
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(tmp_path, root / "proj" / "escape")
    return {"projects": Volume("projects", root)}


def op(name: str, path: str, **extra: object) -> dict[str, object]:
    return {"id": "1", "op": name, "volume": "projects", "path": path, **extra}


def test_ls_shapes(volumes: dict[str, Volume]) -> None:
    listing = run_fileop(volumes, op("ls", "proj"))
    names = {item["filename"]: item for item in listing}
    assert set(names) == {"shots", "notes.txt"}  # no part files, no symlinks
    assert names["shots"]["type"] == 0
    assert "files" not in names["shots"]
    assert names["notes.txt"] == {
        "type": 1,
        "filename": "notes.txt",
        "size": 2,
        "modified": names["notes.txt"]["modified"],
    }
    deep = run_fileop(volumes, op("ls", "proj", recursive=True, getsize=True))
    shots = next(i for i in deep if i["filename"] == "shots")
    assert shots["size"] == 150
    sh010 = shots["files"][0]
    assert sorted(f["filename"] for f in sh010["files"]) == ["a.exr", "b.dpx"]
    only_exr = run_fileop(volumes, op("ls", "proj/shots/sh010", include=["*.exr"]))
    assert [f["filename"] for f in only_exr] == ["a.exr"]
    flat = run_fileop(volumes, op("ls", "proj", recursive=True, files_only=True))
    assert sorted(f["filename"] for f in flat) == [
        "notes.txt",
        "shots/sh010/a.exr",
        "shots/sh010/b.dpx",
    ]
    assert run_fileop(volumes, op("ls", "proj/shots/sh010", include="re('\\.EXR$')")) == [
        only_exr[0]
    ]
    assert run_fileop(volumes, op("ls", "proj/shots/sh010", include="re('\\.EXR$', 'I')")) == []
    assert [f["filename"] for f in run_fileop(volumes, op("ls", "proj/shots/sh010",
            exclude=["A*"]))] == ["b.dpx"]  # fmt: skip
    dirs = run_fileop(volumes, op("ls", "proj", directories_only=True))
    assert [d["filename"] for d in dirs] == ["shots"]
    shallow = run_fileop(volumes, op("ls", "proj", recursive=True, maxdepth=1))
    assert "files" not in next(i for i in shallow if i["filename"] == "shots")


def test_queries_and_changes(volumes: dict[str, Volume], tmp_path: Path) -> None:
    assert run_fileop(volumes, op("exists", "proj/notes.txt")) is True
    assert run_fileop(volumes, op("exists", "proj/nope")) is False
    assert run_fileop(volumes, op("getsize", "proj/shots")) == 150
    assert run_fileop(volumes, op("getsize", "proj/notes.txt")) == 2
    # include/exclude filter what getsize counts (as ls lists)
    assert run_fileop(volumes, op("getsize", "proj/shots", include="*.exr")) == 100
    assert run_fileop(volumes, op("getsize", "proj/shots", exclude=["*.exr"])) == 50
    assert run_fileop(volumes, op("getsize", "proj/notes.txt", include="*.exr")) == 0
    assert run_fileop(volumes, op("mkdir", "proj/new/deep")) is True
    assert (tmp_path / "projects" / "proj" / "new" / "deep").is_dir()
    with pytest.raises(ConflictError, match="already exists"):  # as accsyn: mkdir of what exists
        run_fileop(volumes, op("mkdir", "proj/new/deep"))
    assert run_fileop(volumes, op("rename", "proj/notes.txt", path_to="proj/new/n.txt")) is True
    assert (tmp_path / "projects" / "proj" / "new" / "n.txt").read_text() == "hi"
    with pytest.raises(ConflictError):
        run_fileop(volumes, op("delete", "proj/new"))  # not empty, no force
    assert run_fileop(volumes, op("delete", "proj/new", force=True)) is True
    assert not (tmp_path / "projects" / "proj" / "new").exists()


def test_refusals(volumes: dict[str, Volume], tmp_path: Path) -> None:
    with pytest.raises(PathError):
        run_fileop(volumes, op("ls", "../"))
    with pytest.raises(PathError):
        run_fileop(volumes, op("getsize", "proj/escape/outside.txt"))
    with pytest.raises(PathError):
        run_fileop(volumes, op("delete", "proj/escape/outside.txt"))
    assert (tmp_path / "outside.txt").read_text() == "secret"
    with pytest.raises(NotFoundError, match="not served"):
        run_fileop(volumes, {**op("ls", ""), "volume": "other"})
    with pytest.raises(NotFoundError):
        run_fileop(volumes, op("getsize", "proj/missing"))
    with pytest.raises(ValidationError):
        run_fileop(volumes, op("rename", "proj/notes.txt"))
    with pytest.raises(ValidationError):
        run_fileop(volumes, op("chmod", "proj"))
