"""The agent's scope book: files named by a transfer ticket, and the files of a folder it names,
are held to the job owner's granted sub-path once symlinks are followed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reelsync.agent.fileops import run_fileop
from reelsync.agent.scopes import ScopeBook
from reelsync.errors import PermissionDeniedError
from reelsync.fs import Volume


def _volume(tmp_path: Path) -> tuple[Volume, ScopeBook]:
    root = tmp_path / "vol"
    for folder in ("proj001/shot", "proj002"):
        (root / folder).mkdir(parents=True)
    (root / "proj001" / "shot" / "sub").symlink_to("../../proj002")
    (root / "proj002" / "secret.exr").write_bytes(b"s")
    volume = Volume("projects", root)
    book = ScopeBook()
    volume.confine = book.confine(volume)
    return volume, book


def test_files_of_a_folder_are_held_to_its_scope(tmp_path: Path) -> None:
    volume, book = _volume(tmp_path)
    volume.lookup("proj001/shot/sub/secret.exr")  # no ticket names it: not the book's to judge
    book.add("projects", "proj001/shot", "proj001", time.time() + 60)
    volume.lookup("proj001/shot/a.exr")
    with pytest.raises(PermissionDeniedError, match="leads outside 'proj001'"):
        volume.lookup("proj001/shot/sub/secret.exr")
    with pytest.raises(PermissionDeniedError):
        volume.resolve_str("proj001/shot/sub/new.exr")  # a write's resolution too
    # the whole volume (an admin's ticket for the same folder) lets it through
    book.add("projects", "proj001/shot", "", time.time() + 60)
    volume.lookup("proj001/shot/sub/secret.exr")


def test_no_access_and_expiry(tmp_path: Path) -> None:
    volume, book = _volume(tmp_path)
    book.add("projects", "proj001/shot/a.exr", None, time.time() + 60)
    with pytest.raises(PermissionDeniedError, match="no access granted"):
        volume.lookup("proj001/shot/a.exr")
    book.prune(now=time.time() + 10 * 3600)  # long after the ticket: forgotten
    volume.lookup("proj001/shot/a.exr")


def test_file_operations_keep_their_own_scope(tmp_path: Path) -> None:
    volume, book = _volume(tmp_path)
    book.add("projects", "proj001", "proj001/shot", time.time() + 60)
    served = {"projects": volume}
    listed = run_fileop(served, {"op": "ls", "volume": "projects", "path": "proj001", "scope": ""})
    assert [e["filename"] for e in listed] == ["shot"]
    through = {"op": "ls", "volume": "projects", "path": "proj001/shot/sub", "scope": "proj001"}
    with pytest.raises(PermissionDeniedError):
        run_fileop(served, through)
