"""A folder as one transfer item (protocol version 2): pushed and pulled over real TLS, its files
mirrored below the destination, one result and one progress line per folder key, unchanged files
skipped on the next run, a file that cannot land failing the folder by name, an empty folder made,
symlinks not followed, and a peer offering files outside the asked-for folder refused."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from dataplane_pki import AgentFiles
from reelsync.engine import Assignment, Engine, FileSpec, PeerAddress, VolumePath
from reelsync.engine.folders import CHILD_SEP, FolderObserver, FolderTally
from reelsync.engine.model import FileResult
from reelsync.engine.receiver import ReceiveSession
from reelsync.fs import Volume
from test_engine import SMALL, Gate, Recorder, pki, start_pair, tree, write

__all__ = ["pki"]  # the fixture, shared with test_engine

SHOT = {
    "proj001/sh0010/scans/plate.1001.exr": os.urandom(150_000),  # several 64 KiB chunks
    "proj001/sh0010/scans/plate.1002.exr": os.urandom(12_000),  # batched
    "proj001/sh0010/scans/meta/plate.json": b'{"colorspace": "ACES"}',
    "proj001/sh0010/scans/meta/deeper/empty.txt": b"",
}


def folder_spec(key: str, src: str, dst: str | None = None) -> FileSpec:
    return FileSpec(key, VolumePath("proj", src), VolumePath("proj", dst or src))


async def test_push_a_folder_then_skip_it_unchanged(tmp_path: Path, pki) -> None:
    dialer, listening, gate, port, src, dst = await start_pair(tmp_path, pki)
    for rel, data in SHOT.items():
        write(src, rel, data)
    write(src, "proj001/sh0010/other.txt", b"not part of the folder")
    (src / "proj001/sh0010/scans/escape").symlink_to(tmp_path)  # never followed
    (src / "proj001/sh0020").mkdir(parents=True)  # an empty folder
    rec = Recorder()
    job = Assignment(
        "tr-f1",
        PeerAddress("127.0.0.1", port),
        (
            folder_spec("task-scans", "proj001/sh0010/scans"),
            folder_spec("task-empty", "proj001/sh0020"),
            folder_spec("task-file", "proj001/sh0010/other.txt", "in/other.txt"),
        ),
        "ticket-ok",
    )
    results = await dialer.push(job, rec)
    by_key = {r.key: r for r in results}
    assert [r.key for r in results] == ["task-scans", "task-empty", "task-file"]
    assert by_key["task-scans"].status == "done", results
    assert by_key["task-scans"].size == sum(len(d) for d in SHOT.values())
    assert by_key["task-scans"].bytes_sent == sum(len(d) for d in SHOT.values())
    assert by_key["task-empty"].status == "done"
    assert by_key["task-file"].status == "done"
    assert tree(dst) == {**SHOT, "in/other.txt": b"not part of the folder"}
    assert (dst / "proj001/sh0020").is_dir()
    assert not (dst / "proj001/sh0010/scans/escape").exists()
    # the observer saw the folder's key only: one result, progress summed up to the whole
    assert sorted(r.key for r in rec.finished) == ["task-empty", "task-file", "task-scans"]
    assert all(CHILD_SEP not in key for key, _, _ in rec.progress)
    scans = [(done, size) for key, done, size in rec.progress if key == "task-scans"]
    assert scans[-1] == (by_key["task-scans"].size, by_key["task-scans"].size)
    assert [d for d, _ in scans] == sorted(d for d, _ in scans)

    again = await dialer.push(job, Recorder())
    assert [r.status for r in again] == ["skipped", "done", "skipped"]
    await dialer.aclose()
    await listening.aclose()


async def test_a_file_that_cannot_land_fails_its_folder_by_name(tmp_path: Path, pki) -> None:
    dialer, listening, _gate, port, src, dst = await start_pair(tmp_path, pki)
    for rel, data in SHOT.items():
        write(src, rel, data)
    # at the destination a folder stands where a file of the shot must go
    (dst / "proj001/sh0010/scans/plate.1002.exr").mkdir(parents=True)
    job = Assignment(
        "tr-f2",
        PeerAddress("127.0.0.1", port),
        (folder_spec("task-scans", "proj001/sh0010/scans"),),
        "ticket-ok",
    )
    [result] = await dialer.push(job, Recorder())
    assert result.status == "failed"
    assert result.error_message is not None
    assert result.error_message.startswith("1 of 4 files failed: plate.1002.exr: ")
    # the other files landed; nothing partial is visible
    assert (dst / "proj001/sh0010/scans/plate.1001.exr").read_bytes() == SHOT[
        "proj001/sh0010/scans/plate.1001.exr"
    ]
    assert not [p for p in dst.rglob("*") if "reelsync-part" in p.name]
    await dialer.aclose()
    await listening.aclose()


async def test_pull_a_folder_from_the_listening_side(
    tmp_path: Path, pki: tuple[AgentFiles, AgentFiles, AgentFiles]
) -> None:
    hq, lon, _ = pki
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    for rel, data in SHOT.items():
        write(src, rel, data)
    sender = Engine(SMALL, server_ssl=lon.server(), volumes={})
    gate = Gate({"proj": Volume("proj", src)})
    server = await sender.serve("127.0.0.1", 0, gate)
    puller = Engine(SMALL, client_ssl=hq.client(), volumes={"proj": Volume("proj", dst)})
    rec = Recorder()
    job = Assignment(
        "tr-f3",
        PeerAddress("127.0.0.1", server.port),
        (folder_spec("task-scans", "proj001/sh0010/scans", "incoming/scans"),),
        "ticket-ok",
    )
    [result] = await puller.pull(job, rec)
    assert result.status == "done", result
    assert tree(dst) == {
        rel.replace("proj001/sh0010/scans", "incoming/scans"): data for rel, data in SHOT.items()
    }
    assert [r.key for r in rec.finished] == ["task-scans"]
    await puller.aclose()
    await sender.aclose()


def test_a_folder_tally_folds_outcomes() -> None:
    tally = FolderTally("t")
    assert tally.add(FileResult(f"t{CHILD_SEP}a", "skipped", 5)) is None
    assert tally.expect(2, 15) is None
    done = tally.add(FileResult(f"t{CHILD_SEP}b", "done", 10, 10))
    assert done == FileResult("t", "done", 15, 10, files=2)
    skipped = FolderTally("s")
    skipped.add(FileResult(f"s{CHILD_SEP}a", "skipped", 5))
    assert skipped.add_skipped(2, 7) is None  # counted, no result per file
    assert skipped.expect(3, 12) == FileResult("s", "skipped", 12, 0, files=3)
    failing = FolderTally("f")
    failing.expect(5, 0)
    for i in range(4):
        failing.add(
            FileResult(f"f{CHILD_SEP}x{i}", "failed", 1, 0, None, "io", "disk full", retryable=True)
        )
    folded = failing.add(FileResult(f"f{CHILD_SEP}ok", "done", 1, 1))
    assert folded is not None
    assert folded.status == "failed"
    assert folded.retryable
    assert folded.files == 5
    assert folded.error_message == (
        "4 of 5 files failed: x0: disk full; x1: disk full; x2: disk full (+1 more)"
    )
    assert FolderTally("e").expect(0, 0) == FileResult("e", "done", 0, 0, files=0)


def test_files_published_together_count_as_each_would() -> None:
    one_by_one, together = FolderTally("t"), FolderTally("t")
    for tally in (one_by_one, together):
        tally.expect(3, 30)
        tally.add(FileResult(f"t{CHILD_SEP}a", "skipped", 10))
    assert one_by_one.add(FileResult(f"t{CHILD_SEP}b", "done", 12, 12)) is None
    folded = one_by_one.add(FileResult(f"t{CHILD_SEP}c", "done", 8, 8))
    assert folded == together.add_done(2, 20, 20) == FileResult("t", "done", 30, 20, files=3)

    rec = Recorder()
    observer = FolderObserver(rec)
    observer.announce("t", 30)
    observer.file_progress(f"t{CHILD_SEP}b", 4, 12)  # a chunk of b acknowledged earlier
    observer.files_done([(f"t{CHILD_SEP}b", 12), (f"t{CHILD_SEP}c", 8)])
    assert rec.progress == [("t", 4, 30), ("t", 20, 30)]  # the folder's key, counted whole once
    assert rec.finished == []  # the folder's result comes from its tally


def test_a_folder_is_busy_only_when_every_failed_file_is() -> None:
    """path_busy (another transfer writes the file: no try of the folder) names the folder's
    failure only when all its failures are; else the first other failure's code does."""

    def fold(*codes: str) -> FileResult | None:
        tally = FolderTally("f")
        tally.expect(len(codes), 0)
        folded = None
        for i, code in enumerate(codes):
            folded = tally.add(
                FileResult(f"f{CHILD_SEP}{i}", "failed", 1, 0, None, code, "x", retryable=True)
            )
        return folded

    assert (busy := fold("path_busy", "path_busy")) is not None
    assert busy.error_code == "path_busy"
    assert (mixed := fold("path_busy", "integrity", "disk_full")) is not None
    assert mixed.error_code == "integrity"
    assert (first := fold("disk_full", "path_busy")) is not None
    assert first.error_code == "disk_full"


def test_only_paths_inside_the_folder_are_accepted() -> None:
    from reelsync.engine.engine import _ancestors, _below

    assert _below("proj/scans", "proj/scans/a/b.exr") == "a/b.exr"
    assert _below("proj/scans", "proj/scans") is None
    assert _below("proj/scans", "proj/scansX/b.exr") is None
    assert _below("proj/scans", "proj/other/b.exr") is None
    assert _below("", "a/b") == "a/b"
    assert _ancestors("a/b/c.exr") == ["a/b", "a", ""]
    assert _ancestors("c.exr") == [""]


async def test_a_resync_of_an_unchanged_folder_opens_no_file_and_a_touched_file_moves(
    tmp_path: Path, pki, monkeypatch
) -> None:
    """A no-op re-sync is one listing and one compare: no file is opened on either side and no
    byte moves; a file whose mtime changed is sent again, alone. The folder is listed in several
    manifest parts (more files than the first part holds), in nested folders."""
    dialer, listening, _gate, port, src, dst = await start_pair(tmp_path, pki)
    files = {f"proj001/sh0010/scans/v{i % 3}/f.{i:04d}.exr": os.urandom(i % 50) for i in range(300)}
    for rel, data in files.items():
        write(src, rel, data)
    job = Assignment(
        "tr-n1",
        PeerAddress("127.0.0.1", port),
        (folder_spec("task-scans", "proj001/sh0010/scans"),),
        "ticket-ok",
    )
    [first] = await dialer.push(job, Recorder())
    assert first.status == "done", first
    assert first.files == 300
    opened: list[str] = []
    real_open = os.open

    def spy(path: object, *args: object, **kw: object) -> int:
        if str(tmp_path) in str(path) and "pki" not in str(path):
            opened.append(str(path))
        return real_open(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spy)
    rec = Recorder()
    [again] = await dialer.push(job, rec)
    assert again.status == "skipped", again
    assert (again.files, again.size, again.bytes_sent) == (300, sum(map(len, files.values())), 0)
    assert opened == []
    assert rec.progress[-1][1:] == (again.size, again.size)
    # a touched file (same size, new mtime) moves again, alone
    touched = "proj001/sh0010/scans/v1/f.0100.exr"
    os.utime(src / touched, (1_800_000_000, 1_800_000_000))
    [third] = await dialer.push(job, Recorder())
    assert third.status == "done", third
    assert third.bytes_sent == len(files[touched])
    assert os.stat(dst / touched).st_mtime_ns == 1_800_000_000 * 10**9
    assert tree(dst) == files
    await dialer.aclose()
    await listening.aclose()


async def test_a_folder_is_listed_a_window_at_a_time(
    tmp_path: Path, pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large folder's walk lists on only while fewer than two manifest parts of its files are
    unsettled, so the receiver holds a window's files, not the tree's; files done, skipped (a
    re-sync with some files changed) and failed all make room, and every run completes."""
    part = 40
    settings = replace(SMALL, manifest_part=part)
    held: list[int] = []
    plan = ReceiveSession._plan

    def spy(self: ReceiveSession, manifest):  # type: ignore[no-untyped-def]
        out = plan(self, manifest)
        held.append(len(self.targets))  # files planned and not settled, after this part
        return out

    monkeypatch.setattr(ReceiveSession, "_plan", spy)
    dialer, listening, _gate, port, src, dst = await start_pair(tmp_path, pki, settings)
    files = {f"shot/f.{i:04}.exr": os.urandom(100 + i % 700) for i in range(1200)}
    files |= {f"shot/plates/p{i}.mov": os.urandom(150_000 + i) for i in range(6)}  # chunked
    for rel, data in files.items():
        write(src, rel, data)
    job = Assignment(
        "tr-w", PeerAddress("127.0.0.1", port), (folder_spec("t", "shot"),), "ticket-ok"
    )
    [first] = await dialer.push(job, Recorder())
    assert first.status == "done", first
    assert tree(dst) == files
    assert len(held) > 1200 // part  # the parts
    assert max(held) <= 2 * part + part, max(held)  # the window and the part being planned
    for i in range(0, 1200, 7):  # a re-sync: most files skipped, some sent again
        write(src, f"shot/f.{i:04}.exr", b"changed %d" % i)
    (dst / "shot/f.0001.exr").unlink()
    (dst / "shot/f.0001.exr").mkdir()  # one cannot land
    held.clear()
    [again] = await dialer.push(job, Recorder())
    assert again.status == "failed"
    assert again.error_message is not None
    assert again.error_message.startswith("1 of 1206 files failed: f.0001.exr"), again
    assert max(held) <= 3 * part, max(held)
    assert (dst / "shot/f.0007.exr").read_bytes() == b"changed 7"
    await dialer.aclose()
    await listening.aclose()
