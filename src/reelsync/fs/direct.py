"""Direct I/O for received chunks: the bytes go from the receiver's buffer to the disk, not
through the page cache.

Why: a buffered write copies every byte into newly allocated page-cache memory, which the
kernel then writes back (and the publish's fsync waits for). On a virtual machine whose host
reclaims the memory a guest frees, getting that memory is the slowest part of receiving a large
file: buffered writes of 2 GiB ran at 0.2-0.5 GB/s on the disk where ``O_DIRECT`` writes ran at
1.0-1.2 GB/s, every time (``dd bs=1M``). Direct writes also leave the reader's page cache to
the files being worked on rather than to a transfer's bytes.

Rules: only the block-aligned part of a chunk is written directly (its offset is a multiple of
:data:`ALIGN`, the largest logical block size in common use, and the memory it comes from is
aligned to it: the stream's payload buffer is, anything else is copied into an aligned buffer
of the writing thread first); the rest, a file's last partial block, goes through the page cache
as before. Durability is unchanged: the publish fsyncs the file (for direct writes that flushes
the disk's cache and the metadata, and the buffered tail). Which file systems: ``auto`` uses
it on local ext4 and XFS only (on NFS, SMB and the like a direct write is a synchronous round
trip to the server, and btrfs and ZFS differ by version), ``on`` wherever the file system
accepts it (one whose ``open`` refuses ``O_DIRECT``, tmpfs for one, is written through the
page cache), ``off`` never. A direct write refused mid-file (EINVAL) falls back to the page
cache for the rest of that file.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
from functools import cache
from pathlib import Path

__all__ = [
    "ALIGN",
    "DIRECT_IO_MODES",
    "LOCAL_DIRECT_FS",
    "aligned_buffer",
    "aligned_view",
    "direct_io_wanted",
    "fs_type",
    "open_direct",
]

ALIGN = 4096
DIRECT_IO_MODES = ("auto", "on", "off")
LOCAL_DIRECT_FS = frozenset({"ext4", "xfs"})
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_scratch = threading.local()


def aligned_buffer(size: int) -> memoryview:
    """A writable buffer of ``size`` bytes whose memory starts on a page boundary (anonymous
    ``mmap``), so what lands at its start can be written with direct I/O as it is."""
    return memoryview(mmap.mmap(-1, max(size, 1)))[:size]


def _address(view: memoryview) -> int | None:
    if view.readonly or not view.c_contiguous:
        return None
    obj = ctypes.c_char.from_buffer(view)
    try:
        return ctypes.addressof(obj)
    finally:
        del obj


def aligned_view(data: bytes | bytearray | memoryview) -> memoryview:
    """``data`` in memory aligned to :data:`ALIGN`: itself when it already is, else a copy in
    this thread's scratch buffer (valid until this thread's next call)."""
    view = data if isinstance(data, memoryview) else memoryview(data)
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    address = _address(view)
    if address is not None and address % ALIGN == 0:
        return view
    n = len(view)
    buf: memoryview | None = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < n:
        buf = _scratch.buf = aligned_buffer(n)
    buf[:n] = view
    return buf[:n]


def open_direct(folder_fd: int, name: str, same_as: int) -> int:
    """Open ``name`` in the folder ``folder_fd`` for direct writes; -1 when the OS or the file
    system has no direct I/O or the name is no longer the file open as ``same_as``."""
    if not _O_DIRECT:
        return -1
    try:
        fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | _O_DIRECT, dir_fd=folder_fd)
    except OSError:
        return -1
    try:
        a, b = os.fstat(fd), os.fstat(same_as)
    except OSError:
        os.close(fd)
        return -1
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
        os.close(fd)
        return -1
    return fd


def _unescape(field: str) -> str:
    """A mountinfo path field: spaces, tabs, newlines and backslashes come octal-escaped."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode(errors="replace")


def fs_type(path: str, mountinfo: str | None = None) -> str | None:
    """The type of the file system ``path`` (absolute, resolved) is on, from the longest mount
    point above it in ``/proc/self/mountinfo`` (or the text given); None where there is none."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    best, kind = -1, None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        point = _unescape(fields[4])
        sep = fields.index("-", 6)
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:  # a later mount on the same point hides the earlier
            best, kind = len(point), fields[sep + 1]
    return kind


@cache
def _fs_type_of_root(root: str) -> str | None:
    return fs_type(root)


def direct_io_wanted(mode: str, root: str) -> bool:
    """Whether files received under the volume root ``root`` are written with direct I/O under
    the setting ``mode`` (see the module); ``on`` still falls back where ``open`` refuses it."""
    if mode == "off" or not _O_DIRECT:
        return False
    if mode == "on":
        return True
    return _fs_type_of_root(root) in LOCAL_DIRECT_FS
