"""The sending side of one session: stat, manifest, then chunks and batches over every stream.

Rules: the manifest goes out in parts on stream 0 and each plan that comes back queues work;
every stream takes work from one queue (a chunk of a large file, or a batch of small files) and
never waits for an acknowledgement; reads and hashing run in the I/O threads. A nacked chunk is
read again and resent (up to ``max_resends``); if its bytes differ from the first read, or the
source's size, mtime or ctime changed by the time its last chunk was read, the file is aborted
(FileAbort ``integrity``): a mixed file is never completed. A file is done when the receiver says
so (FileDone); the session ends with Bye once every file has a result.

Open-ended (protocol version 3): the dialer adds work while the session runs
(:meth:`SendSession.add`, each call a :class:`~reelsync.engine.work.WorkGroup` with its own ticket
and observer) and ends it with Bye when it closes it; a listening sender takes each Want as new
work (``wants``) and ends at the dialer's Bye. Ids: the dialer's come from
:meth:`SendSession.allocate`; a listener numbers the files of folders from
:data:`LISTENER_CHILD_IDS` so they never meet the dialer's. Settled files are forgotten, so a
session open for hours holds only the files in flight.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import itertools
import os
import stat as stat_mod
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from reelsync.domain.chunks import chunk_checksum, chunk_count, chunk_span, digest_text, file_digest
from reelsync.domain.party import join_path
from reelsync.engine.folders import FolderObserver, FolderTally, child_key
from reelsync.engine.model import FileResult, TransferObserver
from reelsync.engine.pathsize import short_path_lanes
from reelsync.engine.ratelimit import TokenBucket
from reelsync.engine.settings import EngineSettings
from reelsync.engine.stream import FrameStream
from reelsync.engine.work import OpenWork, WorkGroup
from reelsync.errors import (
    ConflictError,
    ConnectionLostError,
    IntegrityError,
    NotFoundError,
    ProtocolError,
    ReelsyncError,
    TransferError,
    error_from_code,
)
from reelsync.fs import Volume
from reelsync.protocol import (
    Ack,
    BatchFrame,
    Bye,
    Chunk,
    ConnectionClosed,
    Failure,
    FileAbort,
    FileDone,
    FileEnd,
    FileRun,
    Manifest,
    ManifestEntry,
    Nack,
    Plan,
    PlanEntry,
    Want,
)

__all__ = ["BATCH_FILES", "LISTENER_CHILD_IDS", "SendItem", "SendSession", "WantHandler"]

_FIRST_PART = 64  # files in the first manifest part (the next ones double)
_LISTING_PARTS = 2  # a folder's walk waits while this many full parts' files are unsettled

#: The most files in one BATCH: the receiver holds each one's part file and folder open until the
#: group is durable, so tiny files must not make a batch of thousands of descriptors.
BATCH_FILES = 128

#: A listening sender's first id for the files of folders (the dialer's ids stay below it).
LISTENER_CHILD_IDS = 1 << 40

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SendItem:
    """A file to send: wire id, caller's key, local source, and where the peer should put it.
    ``volume`` None with ``error`` set: the file cannot be sent (reported, not sent)."""

    id: int
    key: str
    volume: Volume | None
    rel: str
    dst_volume: str
    dst_path: str
    error: ReelsyncError | None = None


@dataclass(slots=True, eq=False)
class _Source:
    item: SendItem
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    mode: int = 0o644
    chunks: int = 1
    fd: int = -1
    path: str | None = None
    checksums: list[bytes | None] = field(default_factory=list)
    have: dict[int, bytes] = field(default_factory=dict)
    unread: int = 0
    sent: int = 0
    acked: int = 0
    resends: dict[int, int] = field(default_factory=dict)
    result: FileResult | None = None
    tally: FolderTally | None = None  # a folder: the outcomes of its files
    parent: _Source | None = None  # a file of a folder
    group: WorkGroup | None = None  # whose work it is (its observer); set when it is added
    base: tuple[str, str] = ("", "")  # a folder: its real path and volume path, with a "/"


@dataclass(slots=True, eq=False)
class _Run:
    """Files of one folder as one manifest part lists them (their paths below the folder, as
    the walk found them), in columns: file ``i`` has id ``first + i``. A file becomes a
    :class:`_Source` only when the receiver wants it (:meth:`SendSession._source`); the others
    are settled as a count. ``taken``: indexes settled one by one (by entries of a plan)."""

    folder: _Source
    first: int
    names: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    mtimes: list[int] = field(default_factory=list)
    ctimes: list[int] = field(default_factory=list)
    modes: list[int] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)


_Unit = tuple[_Source, int] | list[_Source]

WantHandler = Callable[[Want], list[SendItem]]
"""A listening sender's answer to a version 3 Want: the files to send (refused ones carry their
error)."""


_SENT = FileResult("", "done")  # the result of a folder's file published (see _files_done)
_SKIPPED = FileResult("", "skipped")  # the result of a folder's file the receiver has


def _is_finished(src: _Source) -> bool:
    return src.result is not None


class SendSession(OpenWork):
    def __init__(
        self,
        streams: list[FrameStream],
        items: list[SendItem],
        settings: EngineSettings,
        observer: TransferObserver,
        executor: Executor,
        limiter: TokenBucket | None,
        *,
        open_ended: bool = False,
        wants: WantHandler | None = None,
    ) -> None:
        """``open_ended``: a version 3 dialer's session (see :meth:`add`, :meth:`close`);
        ``wants``: a version 3 listener's session, fed by the dialer's Wants."""
        self.streams = streams
        self.settings = settings
        self.executor = executor
        self.limiter = limiter
        self._default = WorkGroup(None, observer)
        self.files = {it.id: _Source(it, group=self._default) for it in items}
        self._initial = list(self.files.values())  # announced when the session starts
        self.results: dict[str, FileResult] = {}  # every result (a one-shot session only)
        self._one_shot = not open_ended and wants is None
        self._wants = wants
        self._groups: set[WorkGroup] = set()  # open groups of an open-ended session
        # the highest priority's work first, then in the order queued (see Assignment.priority)
        self._queue: asyncio.PriorityQueue[tuple[int, int, _Unit | None]] = asyncio.PriorityQueue()
        self._queued = itertools.count()
        self._remaining = len(self.files)
        self._end = asyncio.Event()
        self._closing = False
        self._peer_bye = False
        self._error: BaseException | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._open_lock = threading.Lock()
        # chunk buffers: read into, sent from, then given back by the stream's writer thread
        self._buffers: list[bytearray] = []
        self._buffers_lock = threading.Lock()
        # as many as can be in flight: queued on each stream (up to its high-water mark, in
        # chunks as small as half a buffer) and being read by each I/O thread
        self._max_buffers = 6 * len(streams) + settings.io_threads
        # batches of small files are read straight into their frame, in buffers reused alike
        self._batch_buffers: list[bytearray] = []
        self._batch_room = BatchFrame.room(BATCH_FILES, settings.batch_bytes)
        self._running = False
        self._corrupt = set(settings.debug_corrupt)
        # ids for the files of folders (and, open-ended, for added work)
        self._next_id = LISTENER_CHILD_IDS if wants else max(self.files, default=-1) + 1
        conn = streams[0].conn if streams else None
        self._folders_ok = conn is not None and (conn.version or 1) >= 2
        # the runs of folders announced and not planned yet, by first id (and those ids sorted)
        self._runs: dict[int, _Run] = {}
        self._run_starts: list[int] = []
        # files of folders listed and not settled: a walk lists on while they are fewer than
        # the window, so both ends hold a window's files, not a whole tree's (a shot tree of
        # 100,000 files cost each agent ~1.2 KiB a file, kept by its allocator afterwards)
        self._listed_open = 0
        self._listing_window = _LISTING_PARTS * max(1, settings.manifest_part)
        self._listing_room = asyncio.Event()

    # -- open-ended sessions ---------------------------------------------------------------------

    def add(
        self,
        items: list[SendItem],
        observer: TransferObserver,
        ticket: str | None = None,
        priority: int = 0,
    ) -> WorkGroup:
        """More files for this running session (ids from :meth:`allocate`); their manifest goes
        out at once, with ``ticket`` for the listener, and their bytes before any work of a
        lower ``priority``. The group completes when each has a result."""
        group = WorkGroup([it.key for it in items], observer)
        group.priority = priority
        self._adopt(items, group, ticket)
        return group

    @property
    def ended(self) -> bool:
        """The session is over (or ending): no stream may join."""
        return self._end.is_set()

    def add_stream(self, stream: FrameStream) -> None:
        """A stream that joined after the session started (they open in parallel): it takes
        work from the same queue at once (if it is a lane, see :meth:`_start`)."""
        self.streams.append(stream)
        self._max_buffers = 6 * len(self.streams) + self.settings.io_threads
        if self._running and not self._end.is_set():
            self._start(len(self.streams) - 1, stream)

    def _start(self, index: int, stream: FrameStream) -> None:
        """Read what comes back on stream ``index``; and send data on it, unless it is on a
        short path and not one of the first lanes (engine/pathsize.py: on loopback or a LAN
        data goes on fewer streams than are open)."""
        self._spawn(self._reader(stream))
        if not stream.short_path or index < short_path_lanes():
            self._spawn(self._writer(stream))

    def _adopt(self, items: list[SendItem], group: WorkGroup, ticket: str | None) -> None:
        sources = [_Source(it, group=group) for it in items]
        for src in sources:
            self.files[src.item.id] = src
        self._remaining += len(sources)
        if not group.done:
            self._groups.add(group)
        self._spawn(self._announce(sources, ticket))

    def _maybe_end(self) -> None:
        if self._one_shot:
            if self._remaining == 0:
                self._end.set()
        elif self._wants is None and self._closing and not self._groups:
            self._end.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._error is None:
            self._error = task.exception()
            self._end.set()

    # -- plumbing --------------------------------------------------------------------------------
    async def _io(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _finish(self, src: _Source, result: FileResult) -> None:
        if src.result is not None:
            return
        src.result = result
        if self._one_shot:
            if src.parent is None:  # the caller's keys (a folder's files fold into it)
                self.results[result.key] = result
        else:
            self.files.pop(src.item.id, None)  # settled: forgotten (late acks are ignored)
        if src.fd >= 0:
            os.close(src.fd)
            src.fd = -1
        group = src.group or self._default
        group.observer.file_finished(result)
        self._remaining -= 1
        parent = src.parent
        if parent is not None:  # a file of a folder's listing
            self._unlisted(1)
        if parent is not None and parent.tally is not None:
            folded = parent.tally.add(result)
            if folded is not None:
                self._finish(parent, folded)
        elif parent is None:
            group.record(result)
            if group.done:
                self._groups.discard(group)
        self._maybe_end()

    def _fail(self, src: _Source, error: ReelsyncError) -> None:
        self._finish(src, FileResult.failed(src.item.key, error, size=src.size, sent=src.sent))

    async def _abort(self, stream: FrameStream, src: _Source, error: ReelsyncError) -> None:
        if src.result is None:
            self._fail(src, error)
            # on stream 0, so the receiver sees it before the session's Bye
            await self.streams[0].send(FileAbort(src.item.id, error.code, error.message))

    # -- the session -----------------------------------------------------------------------------
    async def run(self) -> dict[str, FileResult]:
        """Send every file; returns the results known when the session ended (on a lost
        connection, the files without a result are the ones to retry). Open-ended: runs until
        :meth:`close` (or, listening, the dialer's Bye); a failure fails every open group."""
        self._running = True
        for i, s in enumerate(self.streams):
            self._start(i, s)
        if self._initial:
            self._spawn(self._announce(self._initial, None))
            self._initial = []
        self._maybe_end()
        try:
            await self._end.wait()
            if self._error is not None:
                raise self._error
            if not self._peer_bye:
                await self.streams[0].send(Bye())
        except BaseException as exc:
            for group in [*self._groups]:
                group.fail(
                    exc
                    if isinstance(exc, ReelsyncError)
                    else ConnectionLostError("the session ended")
                )
            raise
        finally:
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for src in self.files.values():
                if src.fd >= 0:
                    os.close(src.fd)
                    src.fd = -1
        return self.results

    async def _announce(self, sources: list[_Source], ticket: str | None) -> None:
        """Stat the sources and send the manifest in parts on stream 0 (the ticket with the
        first part). Parts start small and double up to ``manifest_part``, so the first data
        leaves after a few files were stat'ed and planned, not after the whole list. A folder's
        files go out in parts of their own as its walk finds them (then the folder's entry), so
        the receiver plans the first ones while the sender still lists the rest."""
        part = min(_FIRST_PART, self.settings.manifest_part)
        start = 0
        while start < len(sources):
            chunk = sources[start : start + part]
            start += part
            part = min(part * 2, self.settings.manifest_part)
            entries, failed, folders = await self._io(self._stat_all, chunk)
            for src, err in failed:
                self._fail(src, err)
            if entries:
                await self.streams[0].send(
                    Manifest(self.settings.chunk_size, tuple(entries), ticket)
                )
                ticket = None
            for folder, real in folders:
                await self._announce_folder(folder, real, ticket)
                ticket = None

    async def _announce_folder(self, folder: _Source, real: str, ticket: str | None) -> None:
        """List ``folder`` (resolved: ``real``) in parts, each announced as it is found, the next
        one once fewer than the listing window's files are unsettled; then the folder's own
        entry with the count, and its tally may complete."""
        item = folder.item
        assert item.volume is not None
        assert folder.tally is not None
        walk = item.volume.walk_files(real, reuse=True)  # sized at submit a moment ago?
        rel = item.volume.relative(Path(real))  # files are named by their real paths
        folder.base = (real + "/", "" if rel == "." else rel + "/")
        part = min(_FIRST_PART, self.settings.manifest_part)
        count = 0
        error: ReelsyncError | None = None
        while True:
            while self._listed_open >= self._listing_window:  # until earlier files settle
                self._listing_room.clear()
                await self._listing_room.wait()
            ids = self.allocate(part)  # on the loop: ids stay unique with add()'s
            try:
                run = await self._io(self._list_run, folder, walk, ids)
            except ReelsyncError as exc:
                run, error = None, exc
            except OSError as exc:
                run = None
                error = TransferError(f"cannot list {item.volume.code}:{item.rel}: {exc}")
            listed = 0
            wire: tuple[FileRun, ...] = ()
            if run is not None:
                self._runs[run.first] = run
                bisect.insort(self._run_starts, run.first)
                listed = len(run.names)
                folder.size += sum(run.sizes)
                wire = (
                    FileRun(
                        item.id,
                        run.first,
                        item.dst_volume,
                        item.dst_path,
                        run.names,
                        run.sizes,
                        run.mtimes,
                        run.modes,
                    ),
                )
            self._remaining += listed
            self._listed_open += listed
            count += listed
            entries: list[ManifestEntry] = []
            last = error is not None or listed < len(ids)
            if last:
                code, message = (error.code, error.message) if error else (None, None)
                entries.append(
                    ManifestEntry(
                        item.id,
                        item.dst_volume,
                        item.dst_path,
                        folder.size,
                        folder.mtime_ns,
                        folder.mode,
                        code,
                        message,
                        files=count,
                    )
                )
            manifest = Manifest(self.settings.chunk_size, tuple(entries), ticket, wire)
            await self.streams[0].send(manifest)
            ticket = None
            if last:
                break
            part = min(part * 2, self.settings.manifest_part)
        if error is not None:
            self._fail(folder, error)
        (folder.group or self._default).observer.announce(item.key, folder.size)
        folded = folder.tally.expect(count, folder.size)
        if folded is not None:  # every file settled already (or an empty folder)
            self._finish(folder, folded)

    @staticmethod
    def _list_run(
        folder: _Source, walk: Iterator[tuple[str, os.stat_result]], ids: range
    ) -> _Run | None:
        """In an I/O thread: the next files of a folder's walk (up to ``len(ids)``, stat'ed
        once by the walk) as one run; None when the walk is over."""
        part = list(itertools.islice(walk, len(ids)))
        if not part:
            return None
        names, stats = zip(*part, strict=True)
        return _Run(
            folder,
            ids.start,
            list(names),
            [st.st_size for st in stats],
            [st.st_mtime_ns for st in stats],
            [st.st_ctime_ns for st in stats],
            [st.st_mode & 0o7777 for st in stats],
        )

    def _source(self, run: _Run, i: int) -> _Source:
        """File ``i`` of ``run`` as a source to send (the session holds it from now on)."""
        folder = run.folder
        item = folder.item
        assert item.volume is not None
        below = run.names[i]
        real, rel = folder.base
        size = run.sizes[i]
        chunks = chunk_count(size, self.settings.chunk_size)
        src = _Source(
            SendItem(
                run.first + i,
                child_key(item.key, below),
                item.volume,
                rel + below,
                item.dst_volume,
                join_path(item.dst_path, below),
            ),
            size=size,
            mtime_ns=run.mtimes[i],
            ctime_ns=run.ctimes[i],
            mode=run.modes[i],
            chunks=chunks,
            path=real + below,
            checksums=[None] * chunks,
            unread=chunks,
            parent=folder,
            group=folder.group,
        )
        self.files[src.item.id] = src
        return src

    def _run_of(self, fid: int) -> _Run | None:
        """The run announcing file ``fid``, while it is not planned."""
        k = bisect.bisect_right(self._run_starts, fid) - 1
        if k < 0:
            return None
        run = self._runs[self._run_starts[k]]
        return run if fid < run.first + len(run.names) else None

    def _drop_run(self, run: _Run) -> None:
        del self._runs[run.first]
        self._run_starts.remove(run.first)

    def _stat_all(
        self, sources: list[_Source]
    ) -> tuple[
        list[ManifestEntry],
        list[tuple[_Source, ReelsyncError]],
        list[tuple[_Source, str]],
    ]:
        """In an I/O thread: the manifest entries of ``sources``; the folders among them (with
        their resolved paths) are listed afterwards, see :meth:`_announce_folder`."""
        entries = []
        failed: list[tuple[_Source, ReelsyncError]] = []
        folders: list[tuple[_Source, str]] = []
        for src in sources:
            it = src.item
            err = it.error
            if err is None and it.volume is not None:
                try:
                    src.path, found = it.volume.lookup(it.rel)  # one lstat
                    if found is None:
                        raise FileNotFoundError(it.rel)
                    st = found
                    if stat_mod.S_ISDIR(st.st_mode) and self._folders_ok:
                        src.mtime_ns, src.mode = st.st_mtime_ns, stat_mod.S_IMODE(st.st_mode)
                        src.tally = FolderTally(it.key)
                        folders.append((src, src.path))
                        continue
                    if not stat_mod.S_ISREG(st.st_mode):
                        err = NotFoundError(f"{it.volume.code}:{it.rel} is not a regular file")
                    src.size, src.mtime_ns, src.ctime_ns = (
                        st.st_size,
                        st.st_mtime_ns,
                        st.st_ctime_ns,
                    )
                    src.mode = stat_mod.S_IMODE(st.st_mode)
                except FileNotFoundError:
                    err = NotFoundError(f"{it.volume.code}:{it.rel} does not exist")
                except ReelsyncError as exc:
                    err = exc
                except OSError as exc:
                    err = TransferError(f"cannot read {it.volume.code}:{it.rel}: {exc.strerror}")
            src.chunks = chunk_count(src.size, self.settings.chunk_size)
            src.checksums = [None] * src.chunks
            src.unread = src.chunks
            if err is not None:
                entries.append(
                    ManifestEntry(it.id, it.dst_volume, it.dst_path, 0, 0, 0, err.code, err.message)
                )
                failed.append((src, err))
            else:
                entries.append(
                    ManifestEntry(
                        it.id, it.dst_volume, it.dst_path, src.size, src.mtime_ns, src.mode
                    )
                )
        return entries, failed, folders

    # -- incoming --------------------------------------------------------------------------------
    async def _reader(self, stream: FrameStream) -> None:
        while True:
            ev = await stream.recv(self.settings.idle_timeout)
            if isinstance(ev, Ack):
                for fid, index in ev.items:
                    src = self.files.get(fid)
                    if src is not None and src.result is None:
                        src.acked += chunk_span(src.size, self.settings.chunk_size, index)[1]
                        self._observer(src).file_progress(src.item.key, src.acked, src.size)
            elif isinstance(ev, Nack):
                for fid, index in ev.items:
                    await self._resend(stream, fid, index)
            elif isinstance(ev, FileDone):
                folded: dict[_Source, list[_Source]] = {}  # a folder: its files sent and done
                for out in ev.results:
                    src = self.files.get(out.file_id)
                    if src is None or src.result is not None:
                        continue
                    parent = src.parent
                    if (
                        out.ok
                        and not out.skipped
                        and parent is not None
                        and parent.tally is not None
                    ):
                        src.result = _SENT  # settled (a repeated outcome is ignored)
                        folded.setdefault(parent, []).append(src)
                        continue
                    key = src.item.key
                    if out.ok:
                        if not out.skipped and src.acked < src.size:
                            # the chunk that completed the file was not acked (FILE_DONE says
                            # it arrived): progress reaches the size before the result
                            src.acked = src.size
                            self._observer(src).file_progress(key, src.size, src.size)
                        digest = digest_text(out.digest) if out.digest else None
                        result = (
                            FileResult(key, "skipped", src.size, src.sent, digest)
                            if out.skipped
                            else FileResult(key, "done", src.size, src.sent, digest)
                        )
                        self._finish(src, result)
                    else:
                        err = error_from_code(out.code or "transfer_failed", out.message or "")
                        self._fail(src, err)
                for folder, done in folded.items():
                    self._files_done(folder, done)
            elif isinstance(ev, Plan):
                self._on_plan(ev)
            elif isinstance(ev, Want) and self._wants is not None:
                self._adopt(self._wants(ev), self._default, None)
            elif isinstance(ev, Bye) and self._wants is not None:
                self._peer_bye = True  # the dialer has no more work: the session ends
                self._end.set()
                return
            elif isinstance(ev, Failure):
                raise error_from_code(ev.code, ev.message)
            elif isinstance(ev, ConnectionClosed):
                raise ConnectionLostError(f"the peer {stream.peer_name} closed the stream")
            else:
                raise ProtocolError(
                    f"unexpected {type(ev).__name__} from the receiver", remote=True
                )

    def _on_plan(self, plan: Plan) -> None:
        batch: list[_Source] = []
        batch_bytes = 0
        skipped: dict[_Source, list[int]] = {}  # a folder: [count, size] of its files skipped

        def send(src: _Source, entry: PlanEntry | None) -> None:
            nonlocal batch, batch_bytes
            if src.size <= self.settings.small_file_max and src.chunks == 1:
                full = batch_bytes + src.size > self.settings.batch_bytes
                if batch and (full or len(batch) >= BATCH_FILES):
                    self._put(batch)
                    batch, batch_bytes = [], 0
                batch.append(src)
                batch_bytes += src.size
            else:
                src.have = dict(entry.have) if entry is not None else {}
                for index in range(src.chunks):
                    self._put((src, index))

        def skip(folder: _Source, count: int, size: int) -> None:
            tally = skipped.setdefault(folder, [0, 0])
            tally[0] += count
            tally[1] += size

        for entry in plan.files:
            src = self.files.get(entry.id)
            if src is None:  # a file of a run (planned one by one: version 3, or unusual)
                run = self._run_of(entry.id)
                if run is None:
                    continue
                i = entry.id - run.first
                if i in run.taken:
                    continue
                run.taken.add(i)
                if len(run.taken) == len(run.names):
                    self._drop_run(run)
                if entry.action == "skip":
                    skip(run.folder, 1, run.sizes[i])
                    continue
                src = self._source(run, i)
            if src.result is not None:
                continue
            if src.tally is not None:  # a folder: its files carry its outcome
                if entry.action == "fail":
                    self._fail(
                        src,
                        error_from_code(
                            entry.error_code or "transfer_failed", entry.error_message or ""
                        ),
                    )
                continue
            if entry.action == "skip":
                if src.parent is not None:
                    src.result = _SKIPPED
                    if not self._one_shot:
                        self.files.pop(src.item.id, None)
                    skip(src.parent, 1, src.size)
                else:
                    self._finish(src, FileResult(src.item.key, "skipped", src.size, 0))
            elif entry.action == "fail":
                err = error_from_code(
                    entry.error_code or "transfer_failed", entry.error_message or ""
                )
                self._fail(src, err)
            else:
                send(src, entry)
        for rp in plan.runs:  # version 4: the rest of each run, sent or skipped as a count
            run = self._runs.get(rp.first)
            if run is None or rp.count != len(run.names):
                raise ProtocolError(f"a plan for no run announced ({rp.first})", remote=True)
            self._drop_run(run)
            taken, sizes = run.taken, run.sizes
            settled = sum(sizes[i] for i in taken)  # by entries of this plan (or earlier ones)
            for i in rp.send:
                if i not in taken:
                    taken.add(i)
                    settled += sizes[i]
                    send(self._source(run, i), None)
            if len(taken) < len(sizes):
                skip(run.folder, len(sizes) - len(taken), sum(sizes) - settled)
        if batch:
            self._put(batch)
        for folder, (count, size) in skipped.items():
            self._skip_files(folder, count, size)

    def _files_done(self, folder: _Source, done: list[_Source]) -> None:
        """Files of ``folder`` published by the receiver (one FILE_DONE frame's, their result
        set already), settled together as :meth:`_finish` settles each: one progress call and
        one count for them all, no result per file (the folder's tally keeps only counts and
        sums of done files)."""
        size = sent = 0
        for src in done:
            size += src.size
            sent += src.sent
            if src.fd >= 0:
                os.close(src.fd)
                src.fd = -1
        if not self._one_shot:
            files = self.files
            for src in done:
                files.pop(src.item.id, None)  # settled: forgotten (late acks are ignored)
        self._remaining -= len(done)
        self._unlisted(len(done))
        (folder.group or self._default).observer.files_done([(s.item.key, s.size) for s in done])
        assert folder.tally is not None
        folded = folder.tally.add_done(len(done), size, sent)
        if folded is not None:
            self._finish(folder, folded)
        self._maybe_end()

    def _unlisted(self, count: int) -> None:
        """``count`` listed files of folders settled: a waiting walk may list on."""
        self._listed_open -= count
        if self._listed_open < self._listing_window:
            self._listing_room.set()

    def _skip_files(self, folder: _Source, count: int, size: int) -> None:
        """``count`` files of ``folder`` (``size`` bytes) the receiver already has, settled
        together (a re-sync of an unchanged tree is mostly this): one progress call and one
        count for them all, no result per file."""
        self._remaining -= count
        self._unlisted(count)
        key = folder.item.key
        (folder.group or self._default).observer.count_skipped(key, count, size, list)
        if folder.tally is not None:
            folded = folder.tally.add_skipped(count, size)
            if folded is not None:
                self._finish(folder, folded)
        self._maybe_end()

    async def _resend(self, stream: FrameStream, fid: int, index: int) -> None:
        src = self.files.get(fid)
        if src is None or src.result is not None:
            return
        count = src.resends.get(index, 0) + 1
        src.resends[index] = count
        if count > self.settings.max_resends:
            err = IntegrityError(
                f"{src.item.dst_volume}:{src.item.dst_path}: chunk {index} failed its checksum "
                f"{count} times"
            )
            await self._abort(stream, src, err)
            return
        small = src.chunks == 1 and src.size <= self.settings.small_file_max
        self._put([src] if small else (src, index))

    # -- outgoing --------------------------------------------------------------------------------
    def _put(self, unit: _Unit) -> None:
        group = unit[0].group or self._default
        self._queue.put_nowait((-group.priority, next(self._queued), unit))

    async def _writer(self, stream: FrameStream) -> None:
        while True:
            _, _, unit = await self._queue.get()
            if unit is None:
                return
            if isinstance(unit, list):
                await self._send_batch(stream, unit)
            else:
                await self._send_chunk(stream, *unit)

    def _observer(self, src: _Source) -> FolderObserver:
        return (src.group or self._default).observer

    def _where(self, src: _Source) -> str:
        return f"{src.item.volume.code if src.item.volume else '?'}:{src.item.rel}"

    def _changed(self, src: _Source, fd: int) -> bool:
        st = os.fstat(fd)
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns) != (
            src.size,
            src.mtime_ns,
            src.ctime_ns,
        )

    def _take_buffer(self) -> bytearray:
        with self._buffers_lock:
            if self._buffers:
                return self._buffers.pop()
        return bytearray(self.settings.chunk_size)

    def _give_buffer(self, buf: bytearray) -> None:
        """Called by a writer thread once the chunk read into ``buf`` is on the wire."""
        with self._buffers_lock:
            if len(self._buffers) < self._max_buffers:
                self._buffers.append(buf)

    def _read_chunk(
        self, src: _Source, index: int, last: bool = False
    ) -> tuple[memoryview, bytearray, bytes, bool | None]:
        """Chunk ``index`` read into a pooled buffer: (its bytes, the buffer, checksum, and with
        ``last`` (every other chunk of the file was read already) whether the source changed
        since it was listed, checked right after this read; else None)."""
        with self._open_lock:
            if src.fd < 0:
                assert src.item.volume is not None
                src.fd = src.item.volume.open_read(src.item.rel, src.path)
                if self._changed(src, src.fd):
                    raise IntegrityError(f"{self._where(src)} changed since it was listed")
        offset, length = chunk_span(src.size, self.settings.chunk_size, index)
        buf = self._take_buffer()
        data = memoryview(buf)[:length]
        got = 0
        while got < length:
            n = os.preadv(src.fd, [data[got:]], offset + got)
            if n == 0:
                self._give_buffer(buf)
                raise IntegrityError(f"{self._where(src)} shrank while it was being sent")
            got += n
        return data, buf, chunk_checksum(data), self._changed(src, src.fd) if last else None

    def _maybe_corrupt(
        self, src: _Source, index: int, data: bytes | memoryview
    ) -> bytes | memoryview:
        key = (src.item.dst_path, index)
        if key in self._corrupt and data:
            self._corrupt.discard(key)  # once: the resend goes out intact
            return bytes([data[0] ^ 0xFF]) + data[1:]
        return data

    async def _send_chunk(self, stream: FrameStream, src: _Source, index: int) -> None:
        if src.result is not None:
            return
        # the file's last chunk to be read: the end-of-file check goes with its read
        last = src.unread == 1 and src.checksums[index] is None
        try:
            data, buf, checksum, changed = await self._io(self._read_chunk, src, index, last)
        except ReelsyncError as exc:
            await self._abort(stream, src, exc)
            return
        except OSError as exc:
            await self._abort(stream, src, TransferError(f"cannot read {self._where(src)}: {exc}"))
            return
        size = len(data)
        first = src.checksums[index] is None
        if not first and src.checksums[index] != checksum:
            self._give_buffer(buf)
            err = IntegrityError(f"{self._where(src)} changed while it was being sent")
            await self._abort(stream, src, err)
            return
        src.checksums[index] = checksum
        if first and src.have.get(index) == checksum:
            self._give_buffer(buf)
            src.acked += size  # the receiver already holds this chunk (resume)
            self._observer(src).file_progress(src.item.key, src.acked, src.size)
        else:
            if self.limiter is not None:
                await self.limiter.take(size + 64)
            if _is_finished(src):  # aborted while we waited
                self._give_buffer(buf)
                return
            wire = self._maybe_corrupt(src, index, data)
            event = Chunk(src.item.id, index, checksum, wire)  # type: ignore[arg-type]
            del data
            end = None
            if first and src.unread == 1 and changed is False:
                # the file's last chunk: its FILE_END goes in the same writes (TLS records,
                # TCP segments), and the receiver hears both in one wake-up (engine/stream.py)
                src.unread = 0
                end = FileEnd(src.item.id, self._digest(src))
            await stream.send(event, functools.partial(self._give_buffer, buf), then=end)
            src.sent += size
            if end is not None:
                return
        if first:
            src.unread -= 1
            if src.unread == 0:
                await self._end_file(stream, src, changed)

    async def _end_file(
        self, stream: FrameStream, src: _Source, changed: bool | None = None
    ) -> None:
        """Every chunk was read and sent: FILE_END, unless the source changed meanwhile
        (``changed``: checked with the last read already; None: check now)."""
        if src.result is not None:
            return
        if changed is None:
            changed = await self._io(self._changed, src, src.fd)
        if changed:
            await self._abort(
                stream, src, IntegrityError(f"{self._where(src)} changed while it was being sent")
            )
            return
        await stream.send(FileEnd(src.item.id, self._digest(src)))

    @staticmethod
    def _digest(src: _Source) -> bytes:
        return file_digest(c for c in src.checksums if c is not None)

    def _take_batch_buffer(self, room: int) -> bytearray:
        """A buffer for a batch needing ``room`` bytes: a pooled full-size one for a large
        batch, else one of its own size. The streams count a queued batch by its bytes, so a
        batch of tiny files must not hold a full-size buffer (thousands queued would)."""
        if room > self._batch_room // 2 and room <= self._batch_room:
            with self._buffers_lock:
                if self._batch_buffers:
                    return self._batch_buffers.pop()
            return bytearray(self._batch_room)
        return bytearray(room)

    def _give_batch_buffer(self, buf: bytearray) -> None:
        """Called by a writer thread once the batch laid out in ``buf`` is on the wire."""
        with self._buffers_lock:
            if len(buf) == self._batch_room and len(self._batch_buffers) < self._max_buffers:
                self._batch_buffers.append(buf)

    def _read_small(self, src: _Source, batch: BatchFrame) -> None:
        """In an I/O thread: a small file read straight into its place in ``batch`` (open,
        read, fstat, close: the one fstat proves it a regular file, unchanged since it was
        listed), checked against an earlier read of it (a resend), and committed."""
        volume = src.item.volume
        assert volume is not None
        size = src.size
        slot = batch.slot(size + 1)  # one byte more: a file that grew is seen
        fd = volume.open_read(src.item.rel, src.path, checked=False)
        try:
            got = os.readv(fd, [slot])
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            raise ConflictError(f"{volume.code}:{src.item.rel} is not a regular file")
        if got != size or (st.st_size, st.st_mtime_ns, st.st_ctime_ns) != (
            size,
            src.mtime_ns,
            src.ctime_ns,
        ):
            raise IntegrityError(f"{self._where(src)} changed while it was being sent")
        data = slot[:size]
        checksum = chunk_checksum(data)
        if src.checksums[0] is not None and src.checksums[0] != checksum:
            raise IntegrityError(f"{self._where(src)} changed while it was being sent")
        src.checksums[0] = checksum
        if self._corrupt:
            wire = self._maybe_corrupt(src, 0, data)
            if wire is not data:
                data[:1] = wire[:1]
        batch.commit(src.item.id, size, checksum)

    def _read_batch(
        self, sources: list[_Source], buf: bytearray
    ) -> tuple[BatchFrame, list[_Source], list[tuple[_Source, ReelsyncError]]]:
        """In an I/O thread: the files of a batch laid out in ``buf``; the ones read, and the
        ones that failed (with why)."""
        batch = BatchFrame(buf)
        sent: list[_Source] = []
        failed: list[tuple[_Source, ReelsyncError]] = []
        for src in sources:
            try:
                self._read_small(src, batch)
                sent.append(src)
            except ReelsyncError as exc:
                failed.append((src, exc))
            except OSError as exc:
                failed.append((src, TransferError(f"cannot read {self._where(src)}: {exc}")))
        return batch, sent, failed

    async def _send_batch(self, stream: FrameStream, sources: list[_Source]) -> None:
        sources = [s for s in sources if s.result is None]
        if not sources:
            return
        buf = self._take_batch_buffer(BatchFrame.room(len(sources), sum(s.size for s in sources)))
        batch, sent, failed = await self._io(self._read_batch, sources, buf)
        for src, err in failed:
            await self._abort(stream, src, err)
        total = 0
        for src in sent:
            src.sent += src.size
            total += src.size + 32
        if not sent:
            self._give_batch_buffer(buf)
            return
        if self.limiter is not None:
            await self.limiter.take(total)
        await stream.send_batch(batch, functools.partial(self._give_batch_buffer, buf))
