"""Atomic publish: a file is written under a temporary name in its destination folder and renamed
to its final name only once complete and verified.

Rules: the destination folder is held open (:meth:`Volume.open_folder`, proven to be the folder
resolved) and the temporary file is made, renamed into place or removed relative to it, so a
symlink swapped into the path mid-transfer never redirects a write. The temporary name is
``.<name>.reelsync-part`` (mode 0600, created with ``O_NOFOLLOW``),
preallocated to the file's size when it has more than one chunk, so a full disk fails at the
start (a one-chunk file is one write, which fails at once anyway); chunks land with positional
writes (``os.pwrite``, safe from several threads; with ``writeback`` each chunk's pages are sent
to disk as it lands, ``sync_file_range(2)``, so the disk works while the network does and the
final fsync has little left; with ``direct`` a chunk's whole blocks bypass the page cache,
:mod:`reelsync.fs.direct`). Publishing fsyncs (unless told not to), sets the
source's mode and mtime, then renames over the final name. Small files come in groups
(:func:`write_whole_files`): every part file of the group is written, then one durable step
covers them all (``syncfs(2)`` where the OS has it, else an fsync each), then all are renamed,
then each folder is fsynced once, so durability is paid per group, not per file. Running out of
space raises :class:`~reelsync.errors.DiskFullError` after removing the part file: nothing
partial is ever visible under the final name. A part file left by a crash is resumed through its
:class:`~reelsync.fs.journal.ResumeJournal`.

One writer per part file, whatever the scheduler does: a writer *claims* the part file before it
touches it or its journal (opened without truncating, then ``flock(LOCK_EX | LOCK_NB)``, proven
to still be the file under the part name) and holds the claim until the part file is renamed
into place, kept for resume or removed; only the holder resets (ftruncate), journals, renames or
unlinks it. A claim held elsewhere raises :class:`~reelsync.errors.PathBusyError` (retryable).
``flock`` belongs to the open file description, so two writers in one process exclude each other
too, and the kernel drops it when its process dies: a crashed writer's part file is claimable at
once.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from reelsync.domain.chunks import chunk_checksum, chunk_count, chunk_span
from reelsync.errors import (
    ConflictError,
    DiskFullError,
    PathBusyError,
    ReelsyncError,
    TransferError,
)
from reelsync.fs.direct import ALIGN, aligned_view, open_direct
from reelsync.fs.journal import JournalHeader, ResumeJournal
from reelsync.fs.paths import JOURNAL_SUFFIX, PART_SUFFIX
from reelsync.fs.volume import Volume, path_in_folder

__all__ = [
    "PartFile",
    "WholeFile",
    "is_unchanged",
    "os_error",
    "same_file",
    "write_whole_file",
    "write_whole_files",
]

_WRITE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_CLAIM_TRIES = 8  # the part name replaced between open and flock this often in a row: busy
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)  # a file system without flock


def os_error(exc: OSError, where: str) -> TransferError:
    """The reelsync error for an OS error while writing ``where``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"no space left on the destination volume writing {where}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return TransferError(f"cannot write {where}: permission denied")
    return TransferError(f"cannot write {where}: {exc.strerror or exc}")


def _claim(folder_fd: int, part: str, where: str) -> tuple[int, int]:
    """Open the part file ``part`` in its folder and claim it for this writer: an exclusive,
    non-blocking ``flock`` on it, proven to be the file still under that name (a holder may
    rename or remove it before it lets go). Truncates nothing: only the holder may reset it.
    Returns the descriptor (closing it lets go) and the file's size; raises
    :class:`PathBusyError` when another writer holds the claim, OSError otherwise. On a file
    system without locks the file is written unclaimed, as before claims existed."""
    for _ in range(_CLAIM_TRIES):
        fd = os.open(part, _WRITE_FLAGS, 0o600, dir_fd=folder_fd)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if _still_named(fd, folder_fd, part) is not None:
                    raise _busy(where) from None
            except OSError as exc:
                if exc.errno not in _NO_LOCKS:
                    raise
                return fd, os.fstat(fd).st_size
            else:
                held = _still_named(fd, folder_fd, part)
                if held is not None:
                    return fd, held.st_size
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder published or removed it meanwhile: claim the new one
    raise _busy(where)


def _still_named(fd: int, folder_fd: int, part: str) -> os.stat_result | None:
    """The status of the open file ``fd`` when it is still the one named ``part`` in its
    folder, else None."""
    held = os.fstat(fd)
    try:
        named = os.stat(part, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return held if (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino) else None


def _busy(where: str) -> PathBusyError:
    return PathBusyError(
        f"{where} {PathBusyError.ENDINGS[0]}",
        hint="it is tried again once that transfer ends",
    )


def _prepare(volume: Volume, rel: str) -> tuple[str, str, int]:
    """(final path, name, descriptor of its folder) of ``rel``, with its folder made."""
    final = volume.resolve_str(rel)
    if final == str(volume.real_root):
        raise ConflictError(f"{volume.code}:{rel} is the volume root")
    folder, _, name = final.rpartition("/")
    try:
        st = os.stat(final)
        if stat.S_ISDIR(st.st_mode):
            raise ConflictError(f"{volume.code}:{rel} exists and is a folder")
    except (FileNotFoundError, NotADirectoryError):
        pass
    return final, name, volume.open_folder(folder, rel)


def is_unchanged(volume: Volume, rel: str, size: int, mtime_ns: int) -> bool:
    """True when ``rel`` exists as a regular file with this size and mtime (skip it)."""
    try:
        st = os.stat(volume.resolve_str(rel), follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return same_file(st, size, mtime_ns)


def same_file(st: os.stat_result | None, size: int, mtime_ns: int) -> bool:
    """True when ``st`` (e.g. from :meth:`Volume.lookup`) is a regular file with this size and
    mtime."""
    return (
        st is not None
        and stat.S_ISREG(st.st_mode)
        and st.st_size == size
        and st.st_mtime_ns == mtime_ns
    )


def _finish(
    fd: int, folder_fd: int, part: str, name: str, mode: int, mtime_ns: int, fsync: bool
) -> None:
    """Make the claimed part file ``fd`` durable, give it the source's mode and mtime and rename
    it over ``name``, still holding its claim (the caller lets go)."""
    if fsync:
        os.fsync(fd)
    os.fchmod(fd, mode & 0o7777)
    os.utime(fd, ns=(mtime_ns, mtime_ns))
    os.replace(part, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)


@dataclass(slots=True, eq=False)
class WholeFile:
    """A small file to publish in one go: its bytes, the source's mode and mtime, and ``resolved``
    (what :meth:`Volume.lookup` returned for ``rel`` while planning, None to resolve it now)."""

    volume: Volume
    rel: str
    data: bytes
    mode: int
    mtime_ns: int
    resolved: str | None = None


@dataclass(slots=True, eq=False)
class _Staged:
    index: int
    where: str
    folder_fd: int  # shared by the files of one folder in the group (closed by the group)
    part: str
    name: str
    fd: int = -1


def _linux_call(name: str, argtypes: list[type[ctypes._SimpleCData[Any]]]) -> Any:
    """The C library's function ``name`` (returning an int, setting errno) on Linux; None
    elsewhere or where the C library has no such function."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    func.argtypes, func.restype = argtypes, ctypes.c_int
    return func


_SYNCFS = cast(Callable[[int], int] | None, _linux_call("syncfs", [ctypes.c_int]))
_SYNC_FILE_RANGE = cast(
    Callable[[int, int, int, int], int] | None,
    _linux_call("sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]),
)
_SYNC_FILE_RANGE_WRITE = 2  # start writeback of the range's dirty pages; do not wait


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` to disk now (Linux), so the
    fsync at publish finds little left to flush and the disk works while the network does."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a hint: errors ignored


def _durable(fds: Sequence[int], one_per_fs: Sequence[int] | None = None) -> None:
    """Make the data and metadata of these open files durable, paid once for the group: one
    ``syncfs(2)`` per file system they are on where the OS has it (Linux; it reports writeback
    errors since 5.8), else ``fsync`` of each. ``one_per_fs``: a descriptor on each of their
    file systems when the caller knows them (their folders'), else found with ``fstat``.
    Raises OSError."""
    if _SYNCFS is None or len(fds) == 1:
        for fd in fds:
            os.fsync(fd)
        return
    if one_per_fs is None:
        by_device: dict[int, int] = {}
        for fd in fds:
            by_device.setdefault(os.fstat(fd).st_dev, fd)
        one_per_fs = list(by_device.values())
    for fd in one_per_fs:
        if _SYNCFS(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


class _Folders:
    """The destination folders of one group, each opened (and proven, see
    :meth:`Volume.open_folder`) once for all its files, closed with the group."""

    __slots__ = ("devices", "fds")

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}  # resolved folder -> its descriptor
        self.devices: dict[int, int] = {}  # file system -> a folder descriptor on it

    def open(self, f: WholeFile, folder: str) -> int:
        fd = self.fds.get(folder)
        if fd is None:
            fd = f.volume.open_folder(folder, f.rel)
            self.fds[folder] = fd
            self.devices.setdefault(os.fstat(fd).st_dev, fd)
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


def _stage(index: int, f: WholeFile, folders: _Folders) -> _Staged:
    """Write the part file of ``f`` in its folder (mode and mtime set, not yet durable)."""
    final = f.resolved or f.volume.resolve_str(f.rel)
    where = f"{f.volume.code}:{f.rel}"
    if final == str(f.volume.real_root):
        raise ConflictError(f"{where} is the volume root")
    folder, _, name = final.rpartition("/")
    try:
        folder_fd = folders.open(f, folder)
    except OSError as exc:
        raise os_error(exc, where) from exc
    s = _Staged(index, where, folder_fd, f".{name}{PART_SUFFIX}", name)
    try:
        s.fd, left = _claim(folder_fd, s.part, where)
        fd = s.fd
        if left:  # an earlier writer's bytes
            os.ftruncate(fd, 0)
        data = f.data
        written = os.write(fd, data)
        if written != len(data):  # short write: the rest
            view = memoryview(data)[written:]
            while view:
                view = view[os.write(fd, view) :]
        os.fchmod(fd, f.mode & 0o7777)
        os.utime(fd, ns=(f.mtime_ns, f.mtime_ns))
    except OSError as exc:
        _drop(s)
        raise os_error(exc, where) from exc
    except BaseException:
        _drop(s)
        raise
    return s


def _drop(s: _Staged) -> None:
    """Remove a staged part file this group holds (never published), then let go of it; its
    folder stays open. One it never claimed is another writer's: left alone."""
    if s.fd < 0:
        return
    with contextlib.suppress(OSError):
        os.unlink(s.part, dir_fd=s.folder_fd)
    with contextlib.suppress(OSError):
        os.close(s.fd)
    s.fd = -1


def write_whole_files(
    files: Sequence[WholeFile],
    *,
    fsync: bool = True,
    serial: contextlib.AbstractContextManager[Any] | None = None,
) -> list[ReelsyncError | None]:
    """Publish a group of small files with one durable step: every part file is written (mode
    and mtime set), then made durable together (:func:`_durable`), then renamed over its final
    name, then each folder is fsynced once; only then does this return. A crash at any point
    leaves either the previous file or the complete new one under each final name (part files
    at worst). Returns, per file in order, None when published, else its error. The folder of
    each file is opened once for the group and proven to be that folder, the part file is
    opened in it with ``O_NOFOLLOW`` and renamed over the final name, so a symlink planted
    since planning is replaced or refused, never followed. Each part file is claimed (see
    :func:`_claim`) from before it is written until after its rename: a path another writer
    holds fails with :class:`PathBusyError`. Per file: open, flock, fstat, fstatat, write,
    fchmod, utimensat, rename, close (and ftruncate when a part file was left). ``serial`` (a
    lock shared by the writers of a session) is held while the part files are written and while
    they are renamed, the many short system calls, and let go for the durable steps."""
    errors: list[ReelsyncError | None] = [None] * len(files)
    staged: list[_Staged] = []
    folders = _Folders()
    hold = serial if serial is not None else contextlib.nullcontext()
    try:
        with hold:
            for i, f in enumerate(files):
                try:
                    staged.append(_stage(i, f, folders))
                except ReelsyncError as exc:
                    errors[i] = exc
        if fsync and staged:
            try:
                _durable([s.fd for s in staged], list(folders.devices.values()))
            except OSError as exc:
                for s in staged:
                    errors[s.index] = os_error(exc, s.where)
                return errors
        published: list[_Staged] = []
        with hold:
            for s in staged:
                try:
                    os.replace(s.part, s.name, src_dir_fd=s.folder_fd, dst_dir_fd=s.folder_fd)
                    published.append(s)
                    fd, s.fd = s.fd, -1
                    with contextlib.suppress(OSError):
                        os.close(fd)  # renamed while claimed: now let go
                except OSError as exc:  # not renamed: dropped below, still claimed
                    if isinstance(exc, IsADirectoryError):
                        errors[s.index] = ConflictError(f"{s.where} exists and is a folder")
                    else:
                        errors[s.index] = os_error(exc, s.where)
        if fsync:
            _sync_folders(published, errors)
        return errors
    finally:
        for s in staged:
            if errors[s.index] is not None or s.fd >= 0:
                _drop(s)
        folders.close()


def _sync_folders(published: list[_Staged], errors: list[ReelsyncError | None]) -> None:
    """fsync each folder of the published files once, so their renames are durable (a folder
    has one descriptor per group, see :class:`_Folders`)."""
    seen: dict[int, list[_Staged]] = {}
    for s in published:
        seen.setdefault(s.folder_fd, []).append(s)
    for fd, group in seen.items():
        try:
            os.fsync(fd)
        except OSError as exc:
            for s in group:
                errors[s.index] = os_error(exc, s.where)


def write_whole_file(
    volume: Volume,
    rel: str,
    data: bytes,
    *,
    mode: int,
    mtime_ns: int,
    fsync: bool = True,
    resolved: str | None = None,
) -> None:
    """Publish one small file in one go (a group of one, see :func:`write_whole_files`)."""
    (error,) = write_whole_files(
        [WholeFile(volume, rel, data, mode, mtime_ns, resolved)], fsync=fsync
    )
    if error is not None:
        raise error


class PartFile:
    """A destination file being assembled from chunks, resumable after a crash."""

    def __init__(
        self,
        volume: Volume,
        rel: str,
        *,
        size: int,
        mtime_ns: int,
        chunk_size: int,
        journal: bool = True,
        writeback: bool = False,
        direct: bool = False,
        expect: Mapping[int, bytes] | None = None,
    ) -> None:
        """Claim and open (or resume) the part file of ``rel``; ``journal=False`` for a
        one-chunk file, which has nothing to resume; ``writeback``: start writing each chunk to
        disk as it lands (for a file that is fsynced at publish); ``direct``: write the chunks'
        block-aligned bytes with direct I/O where the file system takes it
        (:mod:`reelsync.fs.direct`). Raises
        :class:`PathBusyError` when another writer holds the part file's claim; the claim is
        held until :meth:`publish`, :meth:`close` or :meth:`discard`. ``expect``: the chunks
        (index: checksum) an earlier look at the part file found there and the sender was told
        to skip; when its journal no longer records them all (another writer reset it since),
        raises :class:`PathBusyError` too, keeping what is there."""
        self.volume, self.rel, self.size, self.chunk_size = volume, rel, size, chunk_size
        self._writeback = writeback
        self.where = f"{volume.code}:{rel}"
        final, name, self._folder_fd = _prepare(volume, rel)
        folder = final.rpartition("/")[0]
        self._name, self._part_name = name, f".{name}{PART_SUFFIX}"
        self.final, self.part = Path(final), Path(f"{folder}/{self._part_name}")
        header = JournalHeader(size, mtime_ns, chunk_size)
        self._fd = self._direct_fd = -1
        self._direct = False  # direct writes in use (cleared if the file system refuses one)
        self.journal: ResumeJournal | None = None
        self._journal_path = Path(
            path_in_folder(self._folder_fd, folder, f".{name}{JOURNAL_SUFFIX}")
        )
        try:
            self._fd, held_size = _claim(self._folder_fd, self._part_name, self.where)
        except PathBusyError:
            self._close_folder()  # the part file and its journal are the holder's
            raise
        except OSError as exc:
            self._close_folder()
            raise os_error(exc, self.where) from exc
        try:  # claimed: the part file and its journal are ours to reset, resume or remove
            if journal:
                self.journal = ResumeJournal.open(self._journal_path, header)
            if expect:
                records = self.journal.records if self.journal is not None else {}
                if any(records.get(i) != checksum for i, checksum in expect.items()):
                    self.close()
                    raise PathBusyError(
                        f"{self.where} {PathBusyError.ENDINGS[1]}",
                        hint="it is tried again, resuming from what is there",
                    )
            if (self.journal is None or not self.journal.records) and held_size:
                os.ftruncate(self._fd, 0)  # an earlier writer's bytes, nothing to resume
                held_size = 0
            # a one-chunk file is written by one pwrite, which fails at once on a full disk:
            # preallocating it would only write its blocks twice (zeroes, then the data)
            if self.chunks > 1 and held_size != size:
                self._preallocate()
            if direct and size >= ALIGN:
                self._direct_fd = open_direct(self._folder_fd, self._part_name, self._fd)
                self._direct = self._direct_fd >= 0
        except OSError as exc:
            self.discard()
            raise os_error(exc, self.where) from exc

    def _preallocate(self) -> None:
        try:
            if self.size > 0:
                os.posix_fallocate(self._fd, 0, self.size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
        os.ftruncate(self._fd, self.size)

    @staticmethod
    def resumable_chunks(
        volume: Volume, rel: str, *, size: int, mtime_ns: int, chunk_size: int
    ) -> dict[int, bytes]:
        """The verified chunks a part file of ``rel`` left by an earlier session still holds
        for this source version (re-read and re-hashed); {} when there is none. Opens nothing
        when there is no journal, so planning many files costs no descriptors."""
        folder, _, name = volume.resolve_str(rel).rpartition("/")
        if not os.path.exists(f"{folder}/.{name}{JOURNAL_SUFFIX}"):
            return {}
        part = PartFile(volume, rel, size=size, mtime_ns=mtime_ns, chunk_size=chunk_size)
        try:
            return part.resumable()
        finally:
            part.close()

    @property
    def chunks(self) -> int:
        return chunk_count(self.size, self.chunk_size)

    def resumable(self) -> dict[int, bytes]:
        """Journaled chunks whose bytes on disk still match their checksum (re-read, re-hashed)."""
        good: dict[int, bytes] = {}
        if self.journal is None:
            return good
        for index, checksum in sorted(self.journal.records.items()):
            if index >= self.chunks:
                continue
            offset, length = chunk_span(self.size, self.chunk_size, index)
            if chunk_checksum(os.pread(self._fd, length, offset)) == checksum:
                good[index] = checksum
        return good

    def write_chunk(self, index: int, data: bytes, checksum: bytes) -> None:
        """Write verified chunk ``index`` in place and journal it."""
        offset, length = chunk_span(self.size, self.chunk_size, index)
        if len(data) != length:
            raise TransferError(f"{self.where}: chunk {index} has {len(data)} bytes, not {length}")
        try:
            view = memoryview(data)
            if self._direct and offset % ALIGN == 0 and length >= ALIGN:
                done = self._write_direct(view[: length - length % ALIGN], offset)
                view, offset = view[done:], offset + done
            buffered = len(view)
            while view:
                written = os.pwrite(self._fd, view, offset)
                view, offset = view[written:], offset + written
            if self._writeback and buffered:
                _start_writeback(self._fd, offset - buffered, buffered)
            if self.journal is not None:
                self.journal.record(index, checksum)
        except OSError as exc:
            self.discard()
            raise os_error(exc, self.where) from exc

    def _write_direct(self, view: memoryview, offset: int) -> int:
        """Write ``view`` (whole blocks) at ``offset`` (block-aligned) with direct I/O; how many
        bytes were written that way. A write the file system refuses (EINVAL) ends direct
        writes for this file: the caller writes the rest through the page cache. The direct
        descriptor stays open until the claim is let go (another thread may be writing
        through it)."""
        src, pos, size = aligned_view(view), 0, len(view)
        try:
            while pos < size:
                pos += os.pwrite(self._direct_fd, src[pos:], offset + pos)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._direct = False
        return pos

    def publish(self, *, mode: int, mtime_ns: int, fsync: bool = True) -> None:
        """Make the complete, verified file visible under its final name (renamed while the
        claim is held, then the claim is let go)."""
        try:
            _finish(self._fd, self._folder_fd, self._part_name, self._name, mode, mtime_ns, fsync)
        except OSError as exc:
            self.discard()
            raise os_error(exc, self.where) from exc
        if self.journal is not None:
            self.journal.remove()
        self._let_go()
        self._close_folder()

    def _let_go(self) -> None:
        """Close the part file, which lets go of its claim."""
        if self._direct_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._direct_fd)
            self._direct_fd = -1
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def _close_folder(self) -> None:
        if self._folder_fd >= 0:
            os.close(self._folder_fd)
            self._folder_fd = -1

    def close(self) -> None:
        """Stop for now, keeping the part file and its journal for a later resume (and letting
        go of the claim)."""
        if self.journal is not None:
            self.journal.close()
        self._let_go()
        self._close_folder()

    def discard(self) -> None:
        """Drop the part file and its journal, still claimed, then let go of the claim. Once
        published, closed or let go, nothing of them is this writer's: nothing is removed."""
        if self._fd < 0 or self._folder_fd < 0:
            if self.journal is not None:
                self.journal.close()
            self._let_go()
            self._close_folder()
            return
        if self.journal is not None:
            self.journal.remove()
        else:
            self._journal_path.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._part_name, dir_fd=self._folder_fd)
        self._let_go()
        self._close_folder()
