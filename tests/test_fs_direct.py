"""Direct I/O for received chunks (fs/direct.py): which file systems get it, aligned memory, a
part file written with it (tails, unaligned buffers, a refusal mid-file, resume), and the
engine writing through it end to end."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import fcntl
import os
import threading
from pathlib import Path

import pytest

from reelsync.domain.chunks import chunk_checksum, chunk_span
from reelsync.engine import EngineSettings
from reelsync.errors import ConfigError
from reelsync.fs import PartFile, Volume
from reelsync.fs import direct as direct_mod
from reelsync.fs import partfile as partfile_mod
from reelsync.fs.direct import (
    ALIGN,
    aligned_buffer,
    aligned_view,
    direct_io_wanted,
    fs_type,
    open_direct,
)
from test_engine import SMALL, pki, push_all, start_pair, tree

__all__ = ["pki"]  # the fixture, shared with test_engine

CHUNK = 64 * 1024
O_DIRECT = getattr(os, "O_DIRECT", 0)

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
30 22 0:26 / /proc rw,nosuid shared:12 - proc proc rw
41 22 0:40 / /mnt/shows rw,relatime shared:20 - nfs4 nas:/shows rw,vers=4.2
42 41 0:41 / /mnt/shows/scratch rw shared:21 - tmpfs tmpfs rw,size=1g
43 22 254:1 / /srv/my\\040disk rw shared:22 - xfs /dev/vdb rw
44 22 0:42 / /srv/over rw shared:23 - ext4 /dev/vdc rw
45 22 0:43 / /srv/over rw shared:24 - tmpfs tmpfs rw
"""


def _address(view: memoryview) -> int:
    obj = ctypes.c_char.from_buffer(view)
    try:
        return ctypes.addressof(obj)
    finally:
        del obj


def _takes_direct_io(folder: Path) -> bool:
    if not O_DIRECT:
        return False
    try:
        fd = os.open(folder / ".probe", os.O_WRONLY | os.O_CREAT | O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    (folder / ".probe").unlink()
    return True


@pytest.fixture
def direct_root(tmp_path: Path) -> Path:
    root = tmp_path / "vol"
    root.mkdir()
    if not _takes_direct_io(root):
        pytest.skip(f"the file system under {root} refuses O_DIRECT")
    return root


def test_the_file_system_of_a_path_is_its_longest_mount_point() -> None:
    assert fs_type("/srv/projects", MOUNTINFO) == "ext4"
    assert fs_type("/", MOUNTINFO) == "ext4"
    assert fs_type("/mnt/shows/ep01", MOUNTINFO) == "nfs4"
    assert fs_type("/mnt/shows/scratch/a", MOUNTINFO) == "tmpfs"
    assert fs_type("/mnt/showsx", MOUNTINFO) == "ext4"  # a prefix of a name is not a parent
    assert fs_type("/srv/my disk/plates", MOUNTINFO) == "xfs"  # escaped space
    assert fs_type("/srv/over/x", MOUNTINFO) == "tmpfs"  # the later mount on a point hides
    assert fs_type("/anything", "garbage\n\n1 2 3") is None


def test_which_volumes_get_direct_io(monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = {"/local": "ext4", "/fast": "xfs", "/nas": "nfs4", "/ram": "tmpfs", "/b": "btrfs"}
    monkeypatch.setattr(direct_mod, "_fs_type_of_root", kinds.get)
    auto = {root for root in kinds if direct_io_wanted("auto", root)}
    assert auto == ({"/local", "/fast"} if O_DIRECT else set())
    assert all(not direct_io_wanted("off", root) for root in kinds)
    assert all(direct_io_wanted("on", root) == bool(O_DIRECT) for root in kinds)


def test_the_engine_setting_is_checked() -> None:
    assert EngineSettings().direct_io == "auto"
    with pytest.raises(ConfigError, match="direct_io must be one of auto, on, off"):
        EngineSettings(direct_io="sometimes")


def test_aligned_memory_is_used_as_it_is_and_anything_else_is_copied() -> None:
    buf = aligned_buffer(3 * ALIGN)
    assert _address(buf) % ALIGN == 0
    buf[:] = os.urandom(len(buf))
    assert _address(aligned_view(buf)) == _address(buf)  # no copy
    for data in (bytes(buf), bytearray(b"x") + bytearray(buf), memoryview(bytearray(buf))[1:]):
        view = aligned_view(data)
        assert _address(view) % ALIGN == 0
        assert bytes(view) == bytes(data)


def _write_file(
    root: Path, rel: str, data: bytes, *, direct: bool, source: str = "aligned"
) -> PartFile:
    vol = Volume("v", root)
    part = PartFile(
        vol, rel, size=len(data), mtime_ns=1_700_000_000 * 10**9, chunk_size=CHUNK, direct=direct
    )
    for index in range(part.chunks):
        offset, length = chunk_span(len(data), CHUNK, index)
        piece = data[offset : offset + length]
        if source == "aligned":  # as the stream hands it over
            chunk: bytes | memoryview = aligned_buffer(length)
            chunk[:] = piece  # type: ignore[index]
        else:
            chunk = piece
        part.write_chunk(index, chunk, chunk_checksum(piece))
    return part


class _Writes:
    """Every ``os.pwrite`` of the part file layer: (direct?, offset, bytes)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, refuse_direct: bool = False) -> None:
        self.calls: list[tuple[bool, int, int]] = []
        real = os.pwrite

        def pwrite(fd: int, data: memoryview, offset: int) -> int:
            is_direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & O_DIRECT)
            if is_direct and refuse_direct:
                raise OSError(errno.EINVAL, "Invalid argument")
            n = real(fd, data, offset)
            self.calls.append((is_direct, offset, n))
            return n

        monkeypatch.setattr(partfile_mod.os, "pwrite", pwrite)

    def direct_bytes(self) -> int:
        return sum(n for d, _, n in self.calls if d)

    def buffered(self) -> list[tuple[int, int]]:
        return [(off, n) for d, off, n in self.calls if not d]


@pytest.mark.parametrize("source", ["aligned", "bytes"])
def test_a_multi_chunk_file_goes_direct_but_for_its_last_partial_block(
    direct_root: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    data = os.urandom(3 * CHUNK + 1000)  # 3 whole chunks and a 1,000-byte tail
    writes = _Writes(monkeypatch)
    part = _write_file(direct_root, "shot/plate.mov", data, direct=True, source=source)
    # read back through the page cache: what went direct is on disk
    spans = [chunk_span(len(data), CHUNK, i) for i in range(4)]
    assert part.resumable() == {
        i: chunk_checksum(data[off : off + n]) for i, (off, n) in enumerate(spans)
    }
    part.publish(mode=0o640, mtime_ns=1_700_000_000 * 10**9)
    assert (direct_root / "shot/plate.mov").read_bytes() == data
    assert writes.direct_bytes() == 3 * CHUNK
    assert writes.buffered() == [(3 * CHUNK, 1000)]
    assert not list((direct_root / "shot").glob(".*"))  # no part file or journal left


def test_a_file_of_whole_blocks_never_touches_the_page_cache(
    direct_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(CHUNK + 2 * ALIGN)
    writes = _Writes(monkeypatch)
    _write_file(direct_root, "f.bin", data, direct=True).publish(mode=0o644, mtime_ns=0)
    assert (direct_root / "f.bin").read_bytes() == data
    assert writes.buffered() == []
    assert writes.direct_bytes() == len(data)


def test_without_direct_io_or_below_a_block_everything_is_buffered(
    direct_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = _Writes(monkeypatch)
    big, tiny = os.urandom(2 * CHUNK + 5), os.urandom(ALIGN - 1)
    _write_file(direct_root, "off.bin", big, direct=False).publish(mode=0o644, mtime_ns=0)
    _write_file(direct_root, "tiny.bin", tiny, direct=True).publish(mode=0o644, mtime_ns=0)
    assert (direct_root / "off.bin").read_bytes() == big
    assert (direct_root / "tiny.bin").read_bytes() == tiny
    assert writes.direct_bytes() == 0


def test_a_refused_direct_write_falls_back_to_the_page_cache(
    direct_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(2 * CHUNK + 7)
    writes = _Writes(monkeypatch, refuse_direct=True)
    part = _write_file(direct_root, "f.bin", data, direct=True)
    assert not part._direct  # given up after the first refusal, for the rest of the file
    part.publish(mode=0o644, mtime_ns=0)
    assert (direct_root / "f.bin").read_bytes() == data
    assert writes.direct_bytes() == 0
    assert sum(n for _, n in writes.buffered()) == len(data)


def test_a_file_system_that_refuses_o_direct_is_written_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refusing_open(path: str, flags: int, *args: object, **kwargs: object) -> int:
        if flags & O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")  # tmpfs, for one
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(direct_mod.os, "open", refusing_open)
    (tmp_path / "vol").mkdir()
    data = os.urandom(2 * CHUNK + 3)
    part = _write_file(tmp_path / "vol", "f.bin", data, direct=True)
    assert part._direct_fd == -1
    part.publish(mode=0o644, mtime_ns=0)
    assert (tmp_path / "vol/f.bin").read_bytes() == data


def test_the_direct_descriptor_is_the_claimed_part_file(direct_root: Path) -> None:
    (direct_root / "a").write_bytes(b"a")
    (direct_root / "b").write_bytes(b"b")
    folder = os.open(direct_root, os.O_RDONLY)
    a = os.open(direct_root / "a", os.O_RDONLY)
    try:
        fd = open_direct(folder, "a", a)
        assert fd >= 0
        os.close(fd)
        assert open_direct(folder, "b", a) == -1  # the name now names another file
    finally:
        os.close(a)
        os.close(folder)


def test_resume_after_direct_writes(direct_root: Path) -> None:
    data = os.urandom(4 * CHUNK + 100)
    vol = Volume("v", direct_root)
    part = PartFile(vol, "f.bin", size=len(data), mtime_ns=5, chunk_size=CHUNK, direct=True)
    for index in (0, 2):
        piece = data[index * CHUNK : (index + 1) * CHUNK]
        part.write_chunk(index, piece, chunk_checksum(piece))
    part.close()  # a crash, or a session cut: kept for resume
    again = PartFile(vol, "f.bin", size=len(data), mtime_ns=5, chunk_size=CHUNK, direct=True)
    have = again.resumable()
    assert set(have) == {0, 2}
    for index in (1, 3, 4):
        offset, length = chunk_span(len(data), CHUNK, index)
        piece = data[offset : offset + length]
        again.write_chunk(index, piece, chunk_checksum(piece))
    again.publish(mode=0o644, mtime_ns=5)
    assert (direct_root / "f.bin").read_bytes() == data


@pytest.mark.parametrize("mode", ["on", "off"])
async def test_the_engine_receives_through_direct_io(
    tmp_path: Path, pki, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    if not _takes_direct_io(tmp_path):
        pytest.skip(f"the file system under {tmp_path} refuses O_DIRECT")
    used: list[int] = []
    real = PartFile._write_direct

    def spy(self: PartFile, view: memoryview, offset: int) -> int:
        used.append(len(view))
        return real(self, view, offset)

    monkeypatch.setattr(PartFile, "_write_direct", spy)
    settings = dataclasses.replace(SMALL, direct_io=mode)
    dialer, listening, _, port, src, dst = await start_pair(tmp_path, pki, settings)
    files = {"plates/a.mov": os.urandom(5 * CHUNK + 123), "plates/b.mov": os.urandom(CHUNK)}
    files |= {f"frames/f.{i:04}.exr": os.urandom(CHUNK // 2 + i) for i in range(20)}
    await push_all(dialer, port, src, files)
    assert tree(dst) == files
    if mode == "on":
        # every whole block of the files that came as chunks (above small_file_max)
        assert sum(used) == sum(
            len(d) - len(d) % ALIGN for d in files.values() if len(d) > SMALL.small_file_max
        )
    else:
        assert used == []
    await dialer.aclose()
    await listening.aclose()


@pytest.mark.parametrize("mode", ["on", "off"])
async def test_large_chunks_are_written_while_the_next_is_read(
    tmp_path: Path, pki, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Chunks read straight into a stream's buffers (above 256 KiB, as every chunk here is) and
    written with direct I/O go to writer threads, so the reader reads on; written through the
    page cache, they are written by the reader thread itself. Every file arrives whole."""
    if not _takes_direct_io(tmp_path):
        pytest.skip(f"the file system under {tmp_path} refuses O_DIRECT")
    threads: list[str] = []
    real = PartFile.write_chunk

    def spy(self: PartFile, index: int, data: bytes, checksum: bytes) -> None:
        threads.append(threading.current_thread().name)
        real(self, index, data, checksum)

    monkeypatch.setattr(PartFile, "write_chunk", spy)
    chunk = 512 * 1024
    settings = dataclasses.replace(SMALL, direct_io=mode, chunk_size=chunk, streams=2)
    dialer, listening, _, port, src, dst = await start_pair(tmp_path, pki, settings)
    files = {"plates/a.mov": os.urandom(6 * chunk + 400_001), "plates/b.mov": os.urandom(chunk)}
    files |= {f"frames/f.{i:04}.exr": os.urandom(chunk - 512 * i) for i in range(12)}
    await push_all(dialer, port, src, files)
    assert tree(dst) == files
    assert len(threads) == 7 + 1 + 12
    expected = "reelsync-write" if mode == "on" else "reelsync-rx"
    assert [name.split("_")[0] for name in threads] == [expected] * len(threads), threads
    await dialer.aclose()
    await listening.aclose()
