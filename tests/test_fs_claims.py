"""One writer per part file: two writers of one destination path, in one process or two, never
share its part file; the one that holds the claim publishes its own complete bytes, the other is
refused (retryable) until it lets go, and a killed writer's claim is free at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import reelsync.fs.partfile as partfile
from reelsync.domain.chunks import chunk_checksum
from reelsync.errors import PathBusyError
from reelsync.fs import PartFile, Volume, WholeFile, write_whole_file, write_whole_files

CHUNK = 8
MTIME = 1_700_000_000 * 10**9


@pytest.fixture
def vol(tmp_path: Path) -> Volume:
    root = tmp_path / "root"
    root.mkdir()
    return Volume("proj", root)


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def _open(vol: Volume, data: bytes, **kw: object) -> PartFile:
    return PartFile(
        vol,
        "shot/plate.mov",
        size=len(data),
        mtime_ns=MTIME,
        chunk_size=CHUNK,
        journal=len(data) > CHUNK,
        **kw,  # type: ignore[arg-type]
    )


def _write(part: PartFile, data: bytes, indexes: range | list[int]) -> None:
    chunks = _chunks(data)
    for i in indexes:
        part.write_chunk(i, chunks[i], chunk_checksum(chunks[i]))


def _part_path(vol: Volume) -> Path:
    return vol.root / "shot" / ".plate.mov.reelsync-part"


@pytest.mark.parametrize("journaled", [0, 1], ids=["nothing-journaled", "resuming"])
@pytest.mark.parametrize("size", [CHUNK, 3 * CHUNK], ids=["one-chunk", "three-chunks"])
def test_a_second_writer_in_one_process_is_refused_while_the_first_holds_it(
    vol: Volume, size: int, journaled: int
) -> None:
    a_data, b_data = b"A" * size, b"B" * size
    a = _open(vol, a_data)
    _write(a, a_data, range(min(journaled, a.chunks - 1)))
    inode = _part_path(vol).stat().st_ino
    with pytest.raises(PathBusyError, match="being written by another transfer") as info:
        _open(vol, b_data)
    assert info.value.retryable
    # the refused writer touched nothing: same part file, same bytes, journal kept
    assert _part_path(vol).stat().st_ino == inode
    _write(a, a_data, range(min(journaled, a.chunks - 1), a.chunks))
    a.publish(mode=0o644, mtime_ns=MTIME)
    final = vol.root / "shot" / "plate.mov"
    assert final.read_bytes() == a_data  # its own complete bytes, never the other's
    # once it let go, the second writer proceeds
    b = _open(vol, b_data)
    assert b.resumable() == {}
    _write(b, b_data, range(b.chunks))
    b.publish(mode=0o644, mtime_ns=MTIME + 1)
    assert final.read_bytes() == b_data
    assert sorted(p.name for p in final.parent.iterdir()) == ["plate.mov"]


def test_a_refused_writer_discards_nothing_and_close_lets_go(vol: Volume) -> None:
    data = b"C" * (3 * CHUNK)
    a = _open(vol, data)
    _write(a, data, [0])
    with pytest.raises(PathBusyError):
        _open(vol, data)
    a.close()  # kept for resume, claim let go
    b = _open(vol, data)
    assert set(b.resumable()) == {0}  # the first writer's verified chunk, resumed
    _write(b, data, [1, 2])
    b.publish(mode=0o600, mtime_ns=MTIME)
    assert (vol.root / "shot" / "plate.mov").read_bytes() == data


def test_a_failed_writer_discards_only_its_own_part_file(vol: Volume) -> None:
    data = b"D" * (3 * CHUNK)
    a = _open(vol, data)
    a.discard()
    a.discard()  # twice: still nothing of anyone else's
    b = _open(vol, data)
    _write(b, data, [0])
    a.discard()
    assert _part_path(vol).stat().st_size == len(data)
    assert (vol.root / "shot" / ".plate.mov.reelsync-journal").exists()
    _write(b, data, [1, 2])
    b.publish(mode=0o600, mtime_ns=MTIME)
    assert (vol.root / "shot" / "plate.mov").read_bytes() == data


def test_a_writer_whose_planned_chunks_were_reset_by_another_is_refused(vol: Volume) -> None:
    data = b"E" * (3 * CHUNK)
    a = _open(vol, data)
    _write(a, data, [0, 1])
    a.close()
    planned = PartFile.resumable_chunks(
        vol, "shot/plate.mov", size=len(data), mtime_ns=MTIME, chunk_size=CHUNK
    )
    assert set(planned) == {0, 1}
    # another version of the file is written here meanwhile: it resets the part file
    other = PartFile(vol, "shot/plate.mov", size=len(data), mtime_ns=MTIME + 5, chunk_size=CHUNK)
    other.close()
    with pytest.raises(PathBusyError, match="changed by another transfer"):
        _open(vol, data, expect=planned)
    # with nothing promised it starts afresh
    b = _open(vol, data, expect={})
    _write(b, data, range(3))
    b.publish(mode=0o600, mtime_ns=MTIME)
    assert (vol.root / "shot" / "plate.mov").read_bytes() == data


@pytest.mark.parametrize("let_go", [True, False], ids=["holder-let-go", "holder-still-holds"])
def test_a_part_file_renamed_before_the_lock_is_never_reset(
    vol: Volume, monkeypatch: pytest.MonkeyPatch, let_go: bool
) -> None:
    """A writer that opened the part file just before its holder renamed it into place must
    not truncate the published file (holder gone) nor call the path busy (holder letting go):
    it claims a new part file instead."""
    data = b"F" * (3 * CHUNK)
    a = _open(vol, data)
    _write(a, data, range(3))
    real_flock = partfile.fcntl.flock
    calls = []

    def flock_after_a_publishes(fd: int, op: int) -> None:
        if not calls:  # the holder renames between this writer's open and its flock
            if let_go:
                a.publish(mode=0o644, mtime_ns=MTIME)
            else:  # renamed, the claim not yet let go: flock would block
                partfile._finish(a._fd, a._folder_fd, a._part_name, a._name, 0o644, MTIME, True)
        calls.append(fd)
        real_flock(fd, op)

    monkeypatch.setattr(partfile.fcntl, "flock", flock_after_a_publishes)
    b = _open(vol, b"G" * (3 * CHUNK))
    assert len(calls) == 2  # the first claim was of the renamed file: let go, tried again
    if not let_go:
        assert a.journal is not None
        a.journal.remove()
        a.close()
    assert (vol.root / "shot" / "plate.mov").read_bytes() == data
    b.discard()
    assert (vol.root / "shot" / "plate.mov").read_bytes() == data


def test_a_whole_file_group_is_refused_a_path_another_writer_holds(vol: Volume) -> None:
    data = b"H" * (3 * CHUNK)
    a = _open(vol, data)
    _write(a, data, [0])
    errors = write_whole_files(
        [
            WholeFile(vol, "shot/plate.mov", b"small", 0o644, MTIME),
            WholeFile(vol, "shot/other.mov", b"fine", 0o644, MTIME),
        ]
    )
    assert isinstance(errors[0], PathBusyError)
    assert errors[1] is None
    assert not (vol.root / "shot" / "plate.mov").exists()
    assert _part_path(vol).stat().st_size == len(data)
    _write(a, data, [1, 2])
    a.publish(mode=0o644, mtime_ns=MTIME)
    assert (vol.root / "shot" / "plate.mov").read_bytes() == data
    write_whole_file(vol, "shot/plate.mov", b"small", mode=0o644, mtime_ns=MTIME)
    assert (vol.root / "shot" / "plate.mov").read_bytes() == b"small"


def test_a_whole_file_group_holds_its_part_files_until_renamed(
    vol: Volume, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a group's files are staged (written, before their rename), another group and a
    chunked writer of one of its paths are refused; the group publishes its own bytes."""
    real_durable = partfile._durable
    seen: list[object] = []

    def durable_while_others_try(fds: list[int], one_per_fs: list[int] | None = None) -> None:
        seen.append(write_whole_files([WholeFile(vol, "shot/plate.mov", b"late", 0o644, MTIME)]))
        with pytest.raises(PathBusyError):
            _open(vol, b"I" * (3 * CHUNK))
        real_durable(fds, one_per_fs)

    monkeypatch.setattr(partfile, "_durable", durable_while_others_try)
    errors = write_whole_files(
        [
            WholeFile(vol, "shot/plate.mov", b"first", 0o644, MTIME),
            WholeFile(vol, "shot/b.mov", b"second", 0o644, MTIME),
        ]
    )
    assert errors == [None, None]
    [[busy]] = seen
    assert isinstance(busy, PathBusyError)
    assert (vol.root / "shot" / "plate.mov").read_bytes() == b"first"
    assert sorted(p.name for p in (vol.root / "shot").iterdir()) == ["b.mov", "plate.mov"]


_CHILD = textwrap.dedent(
    """
    import sys
    from reelsync.domain.chunks import chunk_checksum
    from reelsync.fs import PartFile, Volume

    root, size, chunk, mtime = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    data = b"P" * size
    part = PartFile(Volume("proj", root), "shot/plate.mov", size=size, mtime_ns=mtime,
                    chunk_size=chunk)
    first = data[:chunk]
    part.write_chunk(0, first, chunk_checksum(first))
    print("holding", flush=True)
    if sys.stdin.readline().strip() == "publish":
        for i in range(1, part.chunks):
            c = data[i * chunk : (i + 1) * chunk]
            part.write_chunk(i, c, chunk_checksum(c))
        part.publish(mode=0o644, mtime_ns=mtime)
        print("published", flush=True)
    """
)


def _child(vol: Volume, size: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(vol.root), str(size), str(CHUNK), str(MTIME)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != "holding":
        with child:
            child.kill()
        pytest.fail("the writer in the child process did not start")
    return child


def test_a_writer_in_another_process_is_refused_until_it_publishes(vol: Volume) -> None:
    size = 3 * CHUNK
    child = _child(vol, size)
    with child:
        with pytest.raises(PathBusyError):
            _open(vol, b"Q" * size)
        errors = write_whole_files([WholeFile(vol, "shot/plate.mov", b"tiny", 0o644, MTIME)])
        assert isinstance(errors[0], PathBusyError)
        assert _part_path(vol).stat().st_size == size  # untouched by the refused writers
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.write("publish\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "published"
        assert child.wait() == 0
    final = vol.root / "shot" / "plate.mov"
    assert final.read_bytes() == b"P" * size
    b = _open(vol, b"Q" * size)
    _write(b, b"Q" * size, range(3))
    b.publish(mode=0o644, mtime_ns=MTIME)
    assert final.read_bytes() == b"Q" * size


def test_a_killed_writers_claim_is_free_at_once_and_its_chunks_resume(vol: Volume) -> None:
    size = 3 * CHUNK
    with _child(vol, size) as child:
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    data = b"P" * size
    b = _open(vol, data)  # no wait: the kernel let go of the dead writer's claim
    assert set(b.resumable()) == {0}
    _write(b, data, [1, 2])
    b.publish(mode=0o644, mtime_ns=MTIME)
    assert (vol.root / "shot" / "plate.mov").read_bytes() == data


def test_a_part_file_left_without_a_journal_is_reset_once_claimed(vol: Volume) -> None:
    """A part file an earlier writer left (longer, other bytes, no journal to resume) is
    truncated by whoever claims it next, whole file or chunked."""
    (vol.root / "shot").mkdir()
    _part_path(vol).write_bytes(b"x" * 100)
    write_whole_file(vol, "shot/plate.mov", b"small", mode=0o644, mtime_ns=MTIME)
    assert (vol.root / "shot" / "plate.mov").read_bytes() == b"small"
    _part_path(vol).write_bytes(b"x" * 100)
    data = b"J" * (3 * CHUNK)
    part = _open(vol, data)
    assert part.resumable() == {}
    assert _part_path(vol).stat().st_size == len(data)  # reset, then preallocated
    _write(part, data, range(3))
    part.publish(mode=0o644, mtime_ns=MTIME)
    assert (vol.root / "shot" / "plate.mov").read_bytes() == data
    _part_path(vol).write_bytes(b"x" * 100)
    one = _open(vol, b"K" * CHUNK)
    _write(one, b"K" * CHUNK, [0])
    one.publish(mode=0o644, mtime_ns=MTIME)
    assert (vol.root / "shot" / "plate.mov").read_bytes() == b"K" * CHUNK
