"""Grouped publish of small files (fs.write_whole_files): one durable step per group, renames
only after it, folders fsynced once, FILE_DONE only for durable files; a crash in between leaves
part files only. Real files, a real crashing process, two real engines over TLS."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

import reelsync.engine.receiver as receiver_mod
import reelsync.fs.partfile as partfile
from reelsync.errors import DiskFullError
from reelsync.fs import PART_SUFFIX, Volume, WholeFile, write_whole_files
from reelsync.protocol import FileDone, FileOutcome
from test_engine import pki, push_all, start_pair, tree

__all__ = ["pki"]  # the fixture, shared with test_engine


MTIME = 1_700_000_000_123_456_789


def _group(vol: Volume, n: int) -> list[WholeFile]:
    return [
        WholeFile(vol, f"sh{i % 3}/comp/f{i:03d}.json", os.urandom(100 + i * 37), 0o640, MTIME)
        for i in range(n)
    ]


def _names(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _part_of(rel: str) -> str:
    folder, _, name = rel.rpartition("/")
    return f"{folder}/.{name}{PART_SUFFIX}"


def test_group_is_renamed_only_after_its_durable_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vol = Volume("proj", tmp_path)
    files = _group(vol, 12)
    seen: list[tuple[int, set[str]]] = []
    real = partfile._durable

    def durable(fds: Sequence[int], *more: object) -> None:
        # every part file is complete (mode and mtime set) and no final name exists yet
        seen.append((len(fds), _names(tmp_path)))
        for f in files:
            st = os.stat(tmp_path / _part_of(f.rel))
            assert (st.st_size, st.st_mtime_ns, st.st_mode & 0o777) == (len(f.data), MTIME, 0o640)
        real(fds, *more)  # type: ignore[arg-type]

    monkeypatch.setattr(partfile, "_durable", durable)
    folder_syncs: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        folder_syncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(partfile, "_SYNCFS", None)  # the fallback: an fsync per file
    assert write_whole_files(files) == [None] * 12
    assert seen == [(12, {_part_of(f.rel) for f in files})]  # one durable step for the group
    assert len(folder_syncs) == 12 + 3  # 12 files, then each of the 3 folders once
    assert _names(tmp_path) == {f.rel for f in files}
    for f in files:
        assert (tmp_path / f.rel).read_bytes() == f.data
        st = os.stat(tmp_path / f.rel)
        assert (st.st_mtime_ns, st.st_mode & 0o777) == (MTIME, 0o640)


def test_syncfs_is_called_once_per_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if partfile._SYNCFS is None:
        pytest.skip("syncfs(2) is Linux only; the fsync fallback is tested above")
    calls: list[int] = []
    real = partfile._SYNCFS

    def syncfs(fd: int) -> int:
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(partfile, "_SYNCFS", syncfs)
    vol = Volume("proj", tmp_path)
    assert write_whole_files(_group(vol, 9)) == [None] * 9
    assert len(calls) == 1


def test_a_failed_durable_step_fails_the_group_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def durable(fds: Sequence[int], *more: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(partfile, "_durable", durable)
    vol = Volume("proj", tmp_path)
    errors = write_whole_files(_group(vol, 5))
    assert all(isinstance(e, DiskFullError) for e in errors), errors
    assert _names(tmp_path) == set()  # no final name, no part file left behind


def test_one_bad_file_does_not_fail_its_group(tmp_path: Path) -> None:
    vol = Volume("proj", tmp_path)
    (tmp_path / "sh0").mkdir()
    (tmp_path / "sh0" / "comp").write_text("a file where a folder should be")
    files = _group(vol, 4)  # f000 and f003 go under sh0/comp
    errors = write_whole_files(files)
    assert [e is None for e in errors] == [False, True, True, False]
    assert _names(tmp_path) == {"sh0/comp", files[1].rel, files[2].rel}


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_around_the_durable_step_leaves_part_files_only(tmp_path: Path, when: str) -> None:
    """A real process dies just before or just after the group's durable step: no final name
    is published, whatever is there is a part file."""
    (tmp_path / "sh1" / "comp").mkdir(parents=True)
    (tmp_path / "sh1" / "comp" / "f001.json").write_bytes(b"the previous version")
    script = textwrap.dedent(
        f"""
        import os, sys
        import reelsync.fs.partfile as partfile
        from reelsync.fs import Volume, WholeFile, write_whole_files
        real = partfile._durable
        def durable(fds, *more):
            if {when!r} == "after":
                real(fds, *more)
            os._exit(3)
        partfile._durable = durable
        vol = Volume("proj", sys.argv[1])
        write_whole_files([
            WholeFile(vol, f"sh{{i % 3}}/comp/f{{i:03d}}.json", b"x" * 5000, 0o644, 0)
            for i in range(6)
        ])
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], timeout=120, check=False)
    assert done.returncode == 3
    names = _names(tmp_path)
    finals = {n for n in names if not n.rpartition("/")[2].endswith(PART_SUFFIX)}
    assert finals == {"sh1/comp/f001.json"}
    assert (tmp_path / "sh1/comp/f001.json").read_bytes() == b"the previous version"
    assert names - finals == {_part_of(f"sh{i % 3}/comp/f{i:03d}.json") for i in range(6)}


async def test_file_done_is_sent_only_for_durable_files(
    tmp_path: Path, pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    durable_names: set[str] = set()
    real = partfile._durable

    def durable(fds: Sequence[int], *more: object) -> None:
        real(fds, *more)  # type: ignore[arg-type]
        for fd in fds:
            folder, _, part = os.readlink(f"/proc/self/fd/{fd}").rpartition("/")
            durable_names.add(f"{folder}/{part[1 : -len(PART_SUFFIX)]}")

    reported: list[int] = []

    def file_done(results: tuple[FileOutcome, ...]) -> FileDone:
        reported.extend(o.file_id for o in results if o.ok and not o.skipped)
        published = {
            str(p) for p in dst.rglob("*") if p.is_file() and not p.name.endswith(PART_SUFFIX)
        }
        assert published <= durable_names  # nothing renamed before its durable step
        assert len(reported) <= len(durable_names)  # nor reported done
        return FileDone(results)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name a descriptor's file")
    monkeypatch.setattr(partfile, "_durable", durable)
    monkeypatch.setattr(receiver_mod, "FileDone", file_done)
    dialer, listening, _, port, src, dst = await start_pair(tmp_path, pki)
    files = {f"sh{i % 4}/comp/f{i:03d}.json": os.urandom(500 + 97 * i) for i in range(60)}
    await push_all(dialer, port, src, files)
    assert tree(dst) == files
    assert len(reported) == len(files)
    assert durable_names == {str(dst / rel) for rel in files}
    await dialer.aclose()
    await listening.aclose()
