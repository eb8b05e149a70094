"""The receiving side of one session: plan, verify, write in place, publish.

Rules: each manifest part is answered by one plan: ``skip`` when the destination already has the
same size and mtime, ``fail`` when the path is refused, else ``send`` with the chunks a part file
left by an earlier session still holds (re-read and re-hashed: resume). Every chunk and batch
entry is checked against its xxh3-128 checksum before it is written; a mismatch is nacked. A large
file is published (fsync, mode, mtime, rename) once every chunk is verified and the sender's
FILE_END digest equals the digest of the verified chunks. The small files of a batch are published
as one group (written, one durable step, renamed, each folder fsynced once) before their
FILE_DONE. A lost connection keeps part files and journals for the next session; FileAbort
discards them.

Chunks and batches are verified and written by the reader thread of the stream they arrive on
(the stream's inline handler, see engine/stream.py); the event loop only hears the outcome
(:class:`_Written`, :class:`_BatchWritten`) and does the bookkeeping: acks, nacks, publishing.
A chunk written with direct I/O (fs/direct.py) waits for the disk: a writer thread writes it
while the reader reads the next chunk into the stream's second buffer. Writes in flight (in
either thread) are counted, and the session waits for them before it closes part files. Batches
are checked and written one at a time across the streams (a lock, let go for their durable steps):
their many short system calls otherwise bounce the GIL between the reader threads.

Open-ended (protocol version 3, a pulling dialer): :meth:`ReceiveSession.add` sends a further
Want while the session runs (a :class:`~reelsync.engine.work.WorkGroup` per call) and
:meth:`ReceiveSession.close` ends the session with Bye once the work in flight is settled. A
listener passes each ticket a Manifest carries to ``tickets``; a refused one fails that part's
files, not the session. Settled files are forgotten (their ids kept, so late chunks are ignored).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import stat as stat_mod
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reelsync.domain.chunks import chunk_checksum, chunk_count, digest_text, file_digest
from reelsync.domain.paths import check_path_rules, plain_names
from reelsync.engine.folders import FolderTally, folder_key
from reelsync.engine.model import FileResult, TransferObserver
from reelsync.engine.settings import EngineSettings
from reelsync.engine.stream import FrameStream
from reelsync.engine.work import OpenWork, WorkGroup
from reelsync.errors import (
    ConnectionLostError,
    IntegrityError,
    PathError,
    ProtocolError,
    ReelsyncError,
    TransferError,
    error_from_code,
)
from reelsync.fs import PartFile, Volume, WholeFile, same_file, write_whole_files
from reelsync.fs.direct import direct_io_wanted
from reelsync.protocol import (
    Ack,
    Batch,
    BatchEntry,
    Bye,
    Chunk,
    ConnectionClosed,
    Failure,
    FileAbort,
    FileDone,
    FileEnd,
    FileOutcome,
    FileRun,
    Manifest,
    ManifestEntry,
    Nack,
    Plan,
    PlanEntry,
    RunPlan,
    Want,
    WantEntry,
)

__all__ = ["FolderResolver", "ReceiveSession", "Resolver", "TicketCheck"]

T = TypeVar("T")

_WRITERS = 8  # threads writing chunks with direct I/O, at most (created as needed)

Resolver = Callable[[ManifestEntry], tuple[str, Volume, str]]
"""Maps a manifest entry to (result key, local volume, normalized relative path); raises
ReelsyncError to refuse it (unknown volume, path not granted). The session resolves the path in
the volume itself (one lstat per file), which refuses a path leading outside the volume."""

FolderResolver = Callable[[int, str, str], tuple[Callable[[str], str], Volume, str]]
"""Maps (a folder's id, destination volume, a destination folder path) to (the result key of a
file of that folder by its name, or by its path below that folder; local volume; normalized
folder path) when files in that folder may be received (it lies inside the requested or
granted one); raises ReelsyncError otherwise. With it, the files of a folder are judged one
destination folder at a time (one resolution and one grant check per folder, one lstat per
file)."""

TicketCheck = Callable[[str], None]
"""A listener's check of a further ticket (version 3): adds its paths to the session's grant, or
raises ReelsyncError to refuse it. Runs in an I/O thread."""


@dataclass(slots=True, eq=False)
class _Target:
    entry: ManifestEntry
    key: str
    volume: Volume
    rel: str
    chunks: int
    path: str | None = None  # resolved while planning (see write_whole_files)
    part: PartFile | None = None
    checksums: dict[int, bytes] = field(default_factory=dict)
    planned: dict[int, bytes] = field(default_factory=dict)  # resumed: the sender skips these
    end_digest: bytes | None = None
    finalizing: bool = False
    done: bool = False
    received: int = 0
    group: WorkGroup | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_Finished = tuple[_Target | None, FileResult, int | None, int]
_Skips = list[tuple[int, list[tuple[str, int]]]]  # a folder's id, (key, size) of files here
_RunSkip = tuple[int, int, int, Callable[[], list[tuple[str, int]]], str | None]
"""Files of a run planned ``skip``: folder id, count, size, their (key, size) when asked, the
key of the folder whose progress they count to (None: a listener's keys)."""
_DOTS = ("", ".", "..")
"""A file settled while planning: its target (if any), its result, its folder's id (if any), its
own id."""


@dataclass(frozen=True, slots=True)
class _Folder:
    """A folder announced by the sender: its id, key, file count and total size; ``error`` set
    when it cannot be received here."""

    id: int
    key: str
    files: int
    size: int
    error: FileResult | None = None


def _is_done(t: _Target) -> bool:
    return t.done


@dataclass(slots=True, eq=False)
class _Written:
    """A chunk a reader thread handled: ``ok`` False means its checksum did not match."""

    target: _Target
    index: int
    checksum: bytes
    size: int
    ok: bool
    error: ReelsyncError | None = None


@dataclass(slots=True, eq=False)
class _BatchWritten:
    """A batch a reader thread handled: per file, its checksum, None (nack) or an error."""

    results: list[tuple[_Target, bytes | ReelsyncError | None]]


class _Late:
    """A chunk or batch that arrived after the session stopped writing: ignored."""


class ReceiveSession(OpenWork):
    def __init__(
        self,
        streams: list[FrameStream],
        resolve: Resolver,
        settings: EngineSettings,
        observer: TransferObserver,
        executor: Executor,
        *,
        opening: Want | None = None,
        open_ended: bool = False,
        tickets: TicketCheck | None = None,
        resolve_folder: FolderResolver | None = None,
    ) -> None:
        """``opening``: the Want a pulling dialer sends on stream 0 before anything else;
        ``open_ended``: a version 3 pulling dialer's session (see :meth:`add`); ``tickets``: a
        listener's check of further tickets; ``resolve_folder``: see :data:`FolderResolver`."""
        self.streams = streams
        self.opening = opening
        self.resolve = resolve
        self.resolve_folder = resolve_folder
        self.settings = settings
        self._default = WorkGroup(None, observer)
        self.observer = self._default.observer
        self.executor = executor
        self.chunk_size = settings.chunk_size
        self.targets: dict[int, _Target] = {}
        self._settled: set[int] = set()  # ids of forgotten targets (late chunks are ignored)
        self.results: dict[str, FileResult] = {}  # every result (a session that is not open-ended)
        self._open_ended = open_ended
        self._tickets = tickets
        self._group_of: dict[int, WorkGroup] = {}  # top-level id -> its caller's group
        self._groups: set[WorkGroup] = set()
        self._closing = False
        self._end = asyncio.Event()
        self._next_id = 0
        self._folders: dict[int, FolderTally] = {}  # by the folder's id
        self._folders_done: set[int] = set()
        self._bye = asyncio.Event()
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        self._writes = 0  # chunks and batches being written by reader and writer threads
        self._stopped = False  # no more writes from reader threads
        self._writes_cv = threading.Condition()
        self._writer_pool: concurrent.futures.ThreadPoolExecutor | None = None  # direct writes
        # Batches (small files) are checked and written one at a time, whichever stream brought
        # them: each file is ~10 system calls, each one a release of the GIL, and with several
        # reader threads writing at once nearly every release handed the GIL to another thread
        # (10,000 files over 4 streams: ~95,000 context switches on the receiver instead of
        # ~20,000). The durable steps (syncfs, folder fsyncs) run outside it, so one batch's
        # files are written while another's are made durable.
        self._batch_lock = threading.Lock()
        self._read_gate = threading.Lock()  # see engine/stream.py
        self._sends: set[asyncio.Task[None]] = set()
        self._readers: set[asyncio.Task[None]] = set()
        self._running = False
        self._error: BaseException | None = None
        for stream in streams:
            stream.set_inline(self._inline, self._read_gate)

    async def _io(self, fn: Callable[..., T], *args: object) -> T:
        job = self.executor.submit(fn, *args)
        self._inflight.add(job)
        job.add_done_callback(self._inflight.discard)
        return await asyncio.wrap_future(job)

    # -- open-ended sessions ---------------------------------------------------------------------

    def add(
        self,
        entries: tuple[WantEntry, ...],
        keys: dict[int, str],
        observer: TransferObserver,
        ticket: str | None = None,
    ) -> WorkGroup:
        """Ask for more files while the session runs (ids from :meth:`allocate`; ``keys`` maps
        each id to the caller's key); the group completes when each has a result."""
        group = WorkGroup(keys.values(), observer)
        for fid in keys:
            self._group_of[fid] = group
        if not group.done:
            self._groups.add(group)
        self._spawn_send(Want(entries, ticket))
        return group

    def _maybe_end(self) -> None:
        if self._open_ended and self._closing and not self._groups:
            self._end.set()

    def _spawn_send(self, event: Want) -> None:
        async def send() -> None:
            try:
                await self.streams[0].send(event)
            except ReelsyncError as exc:
                self._fail_groups(exc)

        task = asyncio.ensure_future(send())
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def _fail_groups(self, exc: BaseException) -> None:
        err = exc if isinstance(exc, ReelsyncError) else ConnectionLostError("the session ended")
        for group in [*self._groups]:
            group.fail(err)
        self._groups.clear()
        self._end.set()

    def _group(self, top: int) -> WorkGroup:
        return self._group_of.get(top, self._default)

    def _record(
        self,
        t: _Target | None,
        result: FileResult,
        parent: int | None = None,
        top: int | None = None,
    ) -> None:
        """A settled file: ``t`` its target, or ``top`` the id of a top-level entry without
        one (refused, a folder), ``parent`` the folder of a folder's file."""
        if t is not None:
            if t.done:
                return
            t.done = True
            parent, top = t.entry.parent, t.entry.id
            self._forget(t)
        if not self._open_ended and parent is None:  # the caller's keys only
            self.results[result.key] = result
        if parent is not None:  # a file of a folder
            self._group(parent).observer.file_finished(result)
            self._fold(parent, self._folders.setdefault(parent, FolderTally("")).add(result))
            return
        group = self._group_of.pop(top, self._default) if top is not None else self._default
        group.observer.file_finished(result)
        group.record(result)
        if group.done and group in self._groups:
            self._groups.discard(group)
            self._maybe_end()

    def _record_done(self, parent: int, done: list[_Target]) -> None:
        """Files of folder ``parent`` published (one batch's, marked done already), recorded
        together as :meth:`_record` records each: one progress call and one count, no result
        per file (the folder's tally keeps only counts and sums of done files)."""
        size = 0
        for t in done:
            size += t.entry.size
            self._forget(t)
        self._group(parent).observer.files_done([(t.key, t.entry.size) for t in done])
        tally = self._folders.setdefault(parent, FolderTally(""))
        self._fold(parent, tally.add_done(len(done), size, size))

    def _record_skips(self, parent: int, skipped: list[tuple[str, int]]) -> None:
        """Files (key, size) of folder ``parent`` already here (planned ``skip``), recorded
        together: one progress call and one count, no result per file."""
        self._group(parent).observer.files_skipped(skipped)
        tally = self._folders.setdefault(parent, FolderTally(""))
        self._fold(parent, tally.add_skipped(len(skipped), sum(size for _, size in skipped)))

    def _record_run_skip(self, skip: _RunSkip) -> None:
        """Files of a run planned ``skip``, recorded as a count (version 4)."""
        parent, count, size, listed, folder = skip
        self._group(parent).observer.count_skipped(folder, count, size, listed)
        tally = self._folders.setdefault(parent, FolderTally(""))
        self._fold(parent, tally.add_skipped(count, size))

    def _forget(self, t: _Target) -> None:
        """A settled target leaves memory (a part file still open stays for _close_parts)."""
        if t.part is None:
            self._settled.add(t.entry.id)
            self.targets.pop(t.entry.id, None)

    def _fold(self, folder_id: int, result: FileResult | None) -> None:
        """Record a folder's result once all its files have one."""
        if result is None or folder_id in self._folders_done:
            return
        self._folders_done.add(folder_id)
        self._folders.pop(folder_id, None)
        self._record(None, result, top=folder_id)

    def _announce(self, folder: _Folder) -> None:
        if folder.error is not None:
            self._folders_done.add(folder.id)
            self._record(None, folder.error, top=folder.id)
            return
        tally = self._folders.setdefault(folder.id, FolderTally(folder.key))
        tally.key = folder.key
        self._group(folder.id).observer.announce(folder.key, folder.size)
        self._fold(folder.id, tally.expect(folder.files, folder.size))

    def _failed(self, t: _Target, err: ReelsyncError) -> FileOutcome:
        self._record(t, FileResult.failed(t.key, err, size=t.entry.size, sent=t.received))
        return FileOutcome(t.entry.id, False, code=err.code, message=err.message)

    # -- the session -----------------------------------------------------------------------------
    async def run(self) -> dict[str, FileResult]:
        if self.opening is not None:
            await self.streams[0].send(self.opening)
        self._running = True
        for s in self.streams:
            self._spawn_reader(s)
        bye = asyncio.create_task(self._bye.wait())
        end = asyncio.create_task(self._end.wait())
        try:
            await asyncio.wait({bye, end}, return_when=asyncio.FIRST_COMPLETED)
            if self._error is not None:
                raise self._error
            if self._end.is_set() and not self._bye.is_set():
                if self._groups:  # a Want could not be sent
                    raise ConnectionLostError(f"the session with {self.streams[0].peer_name} ended")
                self._bye.set()  # open-ended, closed with nothing in flight: we end it
                await self.streams[0].send(Bye())
        except BaseException as exc:
            self._fail_groups(exc)
            raise
        finally:
            tasks = [*self._readers, bye, end, *self._sends]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # writes still run in reader and I/O threads: let them finish first
            with self._writes_cv:
                self._stopped = True
                idle = self._writes == 0
            if not idle:
                await asyncio.get_running_loop().run_in_executor(None, self._wait_writes)
            if self._writer_pool is not None:
                self._writer_pool.shutdown(wait=False)
            writing = list(self._inflight)
            if writing:
                await asyncio.get_running_loop().run_in_executor(
                    None, concurrent.futures.wait, writing
                )
            await self._io(self._close_parts)
        return self.results

    @property
    def ended(self) -> bool:
        """The session is over (or ending): no stream may join."""
        return self._end.is_set() or self._bye.is_set()

    def add_stream(self, stream: FrameStream) -> None:
        """A stream that joined after the session started (they open in parallel)."""
        stream.set_inline(self._inline, self._read_gate)
        self.streams.append(stream)
        if self._running and not self._end.is_set() and not self._bye.is_set():
            self._spawn_reader(stream)

    def _spawn_reader(self, stream: FrameStream) -> None:
        task = asyncio.ensure_future(self._reader(stream))
        self._readers.add(task)
        task.add_done_callback(self._reader_done)

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        self._readers.discard(task)
        if not task.cancelled() and task.exception() is not None and self._error is None:
            self._error = task.exception()
            self._end.set()

    def _wait_writes(self) -> None:
        with self._writes_cv:
            while self._writes:
                self._writes_cv.wait()

    def _close_parts(self) -> None:
        """After Bye every file is settled: leftovers are dropped. After a lost connection
        unfinished part files stay, with their journals, for the next session to resume."""
        for t in self.targets.values():
            if t.part is not None:
                if t.done or self._bye.is_set():
                    t.part.discard()
                else:
                    t.part.close()  # keep for resume
                t.part = None

    async def _reader(self, stream: FrameStream) -> None:
        while True:
            ev = await stream.recv(self.settings.idle_timeout)
            if isinstance(ev, _Written):
                await self._on_written(stream, ev)
            elif isinstance(ev, _BatchWritten):
                await self._on_batch(stream, ev)
            elif isinstance(ev, _Late):
                continue
            elif isinstance(ev, FileEnd):
                t = self.targets.get(ev.file_id)
                if t is not None and not t.done:
                    t.end_digest = ev.digest
                    await self._maybe_publish(stream, t)
            elif isinstance(ev, FileAbort):
                t = self.targets.get(ev.file_id)
                if t is not None and not t.done:
                    self._record(t, FileResult.failed(t.key, error_from_code(ev.code, ev.message)))
                    if t.part is not None:
                        part, t.part = t.part, None
                        await self._io(part.discard)
            elif isinstance(ev, Manifest):
                plan, finished, folders, skips, run_skips = await self._io(self._plan, ev)
                for t, result, parent, top in finished:
                    self._record(t, result, parent, top)
                for parent, results in skips:
                    self._record_skips(parent, results)
                for run_skip in run_skips:
                    self._record_run_skip(run_skip)
                for folder in folders:
                    self._announce(folder)
                await stream.send(plan)
            elif isinstance(ev, Bye):
                self._bye.set()
                return
            elif isinstance(ev, Failure):
                raise error_from_code(ev.code, ev.message)
            elif isinstance(ev, ConnectionClosed):
                # the sender closes its streams right after Bye, which only stream 0 carries:
                # a clean close of another stream may overtake it
                if self._bye.is_set() or stream is not self.streams[0]:
                    return
                raise ConnectionLostError(f"the peer {stream.peer_name} closed the stream")
            else:
                raise ProtocolError(f"unexpected {type(ev).__name__} from the sender", remote=True)

    # -- plan ------------------------------------------------------------------------------------
    def _plan(
        self, manifest: Manifest
    ) -> tuple[Plan, list[_Finished], list[_Folder], _Skips, list[_RunSkip]]:
        """Runs in an I/O thread: results are handed back to the loop thread to record. The
        files of a folder are planned a destination folder at a time: a run (version 4,
        :meth:`_plan_file_run`) or a run of entries (:meth:`_plan_run`)."""
        if manifest.chunk_size != self.chunk_size:
            self.chunk_size = manifest.chunk_size
        finished: list[_Finished] = []
        folders: list[_Folder] = []
        skips: _Skips = []
        run_skips: list[_RunSkip] = []
        if manifest.ticket is not None:
            try:
                if self._tickets is None:
                    raise ProtocolError("a ticket this side cannot check", remote=True)
                self._tickets(manifest.ticket)
            except ReelsyncError as exc:  # refused: this part's files fail, the session goes on
                plan = self._refuse(manifest, exc, finished)
                return plan, finished, folders, skips, run_skips
        entries: list[PlanEntry] = []
        run_plans = [
            self._plan_file_run(run, entries, finished, folders, skips, run_skips)
            for run in manifest.runs
        ]
        entries += self._plan_entries(manifest.files, finished, folders, skips)
        return Plan(tuple(entries), tuple(run_plans)), finished, folders, skips, run_skips

    def _plan_entries(
        self,
        files: tuple[ManifestEntry, ...],
        finished: list[_Finished],
        folders: list[_Folder],
        skips: _Skips,
    ) -> list[PlanEntry]:
        """Entries one by one, or a run of a folder's files in one destination folder at a
        time (:meth:`_plan_run`)."""
        entries: list[PlanEntry] = []
        i, n = 0, len(files)
        while i < n:
            m = files[i]
            head = m.dst_path.rpartition("/")[0]
            if m.parent is None and m.files is None and head:  # top-level files, one folder
                j = i + 1
                while j < n:
                    o = files[j]
                    if o.parent is not None or o.files is not None or o.dst_volume != m.dst_volume:
                        break
                    if o.dst_path.rpartition("/")[0] != head:
                        break
                    j += 1
                entries += self._plan_top_run(files[i:j], finished, folders)
                i = j
                continue
            if self.resolve_folder is None or m.parent is None or m.files is not None or not head:
                entries.append(self._plan_one(m, finished, folders))
                i += 1
                continue
            j = i + 1  # the run of this folder's files in one destination folder
            while j < n:
                o = files[j]
                if o.parent != m.parent or o.files is not None or o.dst_volume != m.dst_volume:
                    break
                if o.dst_path.rpartition("/")[0] != head:
                    break
                j += 1
            entries += self._plan_run(files[i:j], head, finished, folders, skips)
            i = j
        return entries

    def _plan_file_run(
        self,
        run: FileRun,
        entries: list[PlanEntry],
        finished: list[_Finished],
        folders: list[_Folder],
        skips: _Skips,
        run_skips: list[_RunSkip],
    ) -> RunPlan:
        """A run (version 4): the folder granted once, its paths judged together
        (:func:`~reelsync.domain.paths.plain_names`), each destination folder under it
        resolved and confined once, then one ``lstat`` per file. The files that need more (a
        symlink there, a folder refused, a part file to resume) get an entry of their own in
        ``entries``; the rest are the run's answer: sent, or skipped as a count."""
        count = len(run.names)
        head, names = run.folder, run.names
        whole = RunPlan(run.first, count, ())  # every file named by an entry
        if self.resolve_folder is None or not head:
            entries += [self._plan_one(m, finished, folders) for m in run.entries()]
            return whole
        if not plain_names(head, names):  # one by one, which says why
            entries += self._plan_entries(tuple(run.entries()), finished, folders, skips)
            return whole
        try:
            key_of, volume, rel = self.resolve_folder(run.parent, run.dst_volume, head)
        except ReelsyncError:
            entries += [self._plan_one(m, finished, folders) for m in run.entries()]
            return whole
        lstat, resolve = os.lstat, volume.resolve_folder
        sizes, mtimes = run.sizes, run.mtimes
        wanted: list[tuple[int, str]] = []  # (index, resolved path)
        odd: list[int] = []  # a symlink where the file goes, or its folder refused
        here: str | None = None
        prefix: str | None = None
        for i, name in enumerate(names):
            sub, _, base = name.rpartition("/")
            if sub != here:  # the next destination folder: resolved, confined, once
                here = sub
                try:
                    prefix = resolve(f"{rel}/{sub}" if sub else rel) + "/"
                except ReelsyncError:
                    prefix = None
            if prefix is None:
                odd.append(i)
                continue
            path = prefix + base
            try:
                st = lstat(path)
            except OSError:
                wanted.append((i, path))
                continue
            if (
                st.st_size == sizes[i]
                and st.st_mtime_ns == mtimes[i]
                and st.st_mode & 0o170000 == 0o100000  # a regular file
            ):
                continue  # the same size and mtime: skipped
            if stat_mod.S_ISLNK(st.st_mode):
                odd.append(i)
            else:
                wanted.append((i, path))
        send: list[int] = []
        settled_size = 0
        for i in odd:  # followed, and judged there
            settled_size += sizes[i]
            entries.append(self._plan_one(self._run_entry(run, i), finished, folders))
        targets, settled, chunk_size = self.targets, self._settled, self.chunk_size
        for i, path in wanted:
            settled_size += sizes[i]
            m = self._run_entry(run, i)
            if m.id in targets or m.id in settled:
                entries.append(PlanEntry(m.id, "fail", (), "protocol", "duplicate file id"))
                continue
            name = names[i]
            t = _Target(m, key_of(name), volume, f"{rel}/{name}", chunk_count(m.size, chunk_size))
            t.path = path
            targets[m.id] = t
            entry = self._plan_send(t, finished)
            if entry.action == "send" and not entry.have:
                send.append(i)
            else:
                entries.append(entry)
        if odd:
            send.sort()
        skipped = count - len(wanted) - len(odd)
        if skipped:
            planned = {i for i, _ in wanted} | set(odd)

            def listed() -> list[tuple[str, int]]:
                return [(key_of(n), sizes[i]) for i, n in enumerate(names) if i not in planned]

            folder = folder_key(key_of(""))
            run_skips.append((run.parent, skipped, sum(sizes) - settled_size, listed, folder))
        return RunPlan(run.first, count, send)

    @staticmethod
    def _run_entry(run: FileRun, i: int) -> ManifestEntry:
        return ManifestEntry(
            run.first + i,
            run.dst_volume,
            f"{run.folder}/{run.names[i]}",
            run.sizes[i],
            run.mtimes[i],
            run.modes[i],
            parent=run.parent,
        )

    def _plan_run(
        self,
        run: tuple[ManifestEntry, ...],
        head: str,
        finished: list[_Finished],
        folders: list[_Folder],
        skips: _Skips,
    ) -> list[PlanEntry]:
        """Files of one folder directly in the destination folder ``head``: that folder is
        resolved, granted and confined once, then each file is one ``lstat`` in it. Anything
        unusual (a name that is not one plain component, a symlink, an error from the sender, a
        folder refused) goes the per-file way, which says why."""
        assert self.resolve_folder is not None
        m0 = run[0]
        try:
            key_of, volume, rel = self.resolve_folder(m0.parent or 0, m0.dst_volume, head)
            real = volume.resolve_folder(rel)
        except ReelsyncError:
            return [self._plan_one(m, finished, folders) for m in run]
        out: list[PlanEntry] = []
        held: list[tuple[str, int]] = []
        chunk_size = self.chunk_size
        targets, settled = self.targets, self._settled
        for m in run:
            name = m.dst_path.rpartition("/")[2]
            if m.error_code or name in _DOTS or "\\" in name:
                out.append(self._plan_one(m, finished, folders))
                continue
            try:
                check_path_rules(m.dst_path)
            except ReelsyncError:
                out.append(self._plan_one(m, finished, folders))
                continue
            path = f"{real}/{name}"
            st, answer = self._in_folder(m, path, finished, folders)
            if answer is not None:
                out.append(answer)
                continue
            if same_file(st, m.size, m.mtime_ns):
                settled.add(m.id)
                held.append((key_of(name), m.size))
                out.append(PlanEntry(m.id, "skip"))
                continue
            t = _Target(m, key_of(name), volume, f"{rel}/{name}", chunk_count(m.size, chunk_size))
            t.path = path
            targets[m.id] = t
            out.append(self._plan_send(t, finished))
        if held:
            skips.append((m0.parent or 0, held))
        return out

    def _in_folder(
        self,
        m: ManifestEntry,
        path: str,
        finished: list[_Finished],
        folders: list[_Folder],
    ) -> tuple[os.stat_result | None, PlanEntry | None]:
        """``lstat`` of ``path``, a file directly in a folder already resolved and confined: its
        status (None: nothing there), or the plan entry that answers ``m`` already (a symlink
        goes the per-file way, which follows it and judges where it leads; a file id already
        planned is a protocol error)."""
        try:
            st: os.stat_result | None = os.lstat(path)
        except OSError:
            st = None
        if st is not None and stat_mod.S_ISLNK(st.st_mode):
            return st, self._plan_one(m, finished, folders)
        if m.id in self.targets or m.id in self._settled:
            return st, PlanEntry(m.id, "fail", (), "protocol", "duplicate file id")
        return st, None

    def _plan_top_run(
        self, run: tuple[ManifestEntry, ...], finished: list[_Finished], folders: list[_Folder]
    ) -> list[PlanEntry]:
        """Top-level files (each granted on its own) directly in one destination folder: each
        is granted by :attr:`resolve`, their folder is resolved and confined once, then each
        file is one ``lstat`` in it (and its own :attr:`~reelsync.fs.Volume.confine` check),
        where :meth:`_plan_one` resolved each path from the volume root. Anything unusual (a
        path not plainly in that folder, a symlink, an error from the sender, a refusal) goes
        the per-file way, which says why."""
        try:
            _, volume, rel0 = self.resolve(run[0])
            folder = rel0.rpartition("/")[0]
            real = volume.resolve_folder(folder)
        except ReelsyncError:
            return [self._plan_one(m, finished, folders) for m in run]
        prefix = f"{folder}/" if folder else ""
        confine, resolve = volume.confine, self.resolve
        chunk_size, targets = self.chunk_size, self.targets
        out: list[PlanEntry] = []
        for m in run:
            name = m.dst_path.rpartition("/")[2]
            if m.error_code or name in _DOTS or "\\" in name:
                out.append(self._plan_one(m, finished, folders))
                continue
            try:
                key, vol, rel = resolve(m)
                if vol is not volume or rel != prefix + name:  # not plainly in that folder
                    raise PathError(rel)
                path = f"{real}/{name}"
                if confine is not None:
                    confine(rel, path)
            except ReelsyncError:
                out.append(self._plan_one(m, finished, folders))
                continue
            st, answer = self._in_folder(m, path, finished, folders)
            if answer is not None:
                out.append(answer)
                continue
            t = _Target(m, key, volume, rel, chunk_count(m.size, chunk_size))
            t.path = path
            targets[m.id] = t
            if same_file(st, m.size, m.mtime_ns):
                finished.append((t, FileResult(key, "skipped", m.size), None, m.id))
                out.append(PlanEntry(m.id, "skip"))
                continue
            out.append(self._plan_send(t, finished))
        return out

    def _refuse(self, manifest: Manifest, exc: ReelsyncError, finished: list[_Finished]) -> Plan:
        files = [*(m for run in manifest.runs for m in run.entries()), *manifest.files]
        for m in files:
            failed = FileResult.failed(f"{m.dst_volume}:{m.dst_path}", exc)
            finished.append((None, failed, m.parent, m.id))
        return Plan(
            tuple(PlanEntry(m.id, "fail", (), exc.code, exc.message) for m in files),
            tuple(RunPlan(run.first, len(run.names), ()) for run in manifest.runs),
        )

    def _plan_folder(self, m: ManifestEntry, folders: list[_Folder]) -> PlanEntry:
        """A folder's own entry (after its files): make it (it may be empty), then tally."""
        files = m.files or 0
        try:
            if m.error_code:  # the sender could not list all of it
                raise error_from_code(m.error_code, m.error_message or "")
            key, volume, rel = self.resolve(m)
            try:
                volume.mkdir(rel)
            except OSError as os_exc:
                raise TransferError(f"cannot make folder {m.dst_volume}:{rel}: {os_exc}") from None
        except ReelsyncError as exc:
            failed = FileResult.failed(f"{m.dst_volume}:{m.dst_path}", exc)
            folders.append(_Folder(m.id, failed.key, files, m.size, failed))
            return PlanEntry(m.id, "fail", (), exc.code, exc.message)
        folders.append(_Folder(m.id, key, files, m.size))
        return PlanEntry(m.id, "skip")

    def _plan_one(
        self, m: ManifestEntry, finished: list[_Finished], folders: list[_Folder]
    ) -> PlanEntry:
        if m.is_folder:
            return self._plan_folder(m, folders)
        try:
            key, volume, rel = self.resolve(m)
        except ReelsyncError as exc:
            # the sender's reason comes first
            err = error_from_code(m.error_code, m.error_message or "") if m.error_code else exc
            failed = FileResult.failed(f"{m.dst_volume}:{m.dst_path}", err)
            finished.append((None, failed, m.parent, m.id))
            return PlanEntry(m.id, "fail", (), err.code, err.message)
        if m.error_code:
            err = error_from_code(m.error_code, m.error_message or "")
            finished.append((None, FileResult.failed(key, err), m.parent, m.id))
            return PlanEntry(m.id, "fail", (), m.error_code, m.error_message)
        t = _Target(m, key, volume, rel, chunk_count(m.size, self.chunk_size))
        if m.id in self.targets or m.id in self._settled:
            return PlanEntry(m.id, "fail", (), "protocol", "duplicate file id")
        self.targets[m.id] = t
        try:
            t.path, st = volume.lookup(rel)  # one lstat: confinement and the skip check
        except ReelsyncError as exc:
            finished.append((t, FileResult.failed(key, exc, size=m.size), None, m.id))
            return PlanEntry(m.id, "fail", (), exc.code, exc.message)
        if same_file(st, m.size, m.mtime_ns):
            finished.append((t, FileResult(key, "skipped", m.size), None, m.id))
            return PlanEntry(m.id, "skip")
        return self._plan_send(t, finished)

    def _plan_send(self, t: _Target, finished: list[_Finished]) -> PlanEntry:
        """A file to receive: ``send``, with the chunks a part file left here still holds."""
        m = t.entry
        if t.chunks == 1:
            return PlanEntry(m.id, "send")
        try:
            have = PartFile.resumable_chunks(
                t.volume, t.rel, size=m.size, mtime_ns=m.mtime_ns, chunk_size=self.chunk_size
            )
        except ReelsyncError as exc:
            finished.append((t, FileResult.failed(t.key, exc, size=m.size), None, m.id))
            return PlanEntry(m.id, "fail", (), exc.code, exc.message)
        t.checksums.update(have)
        t.planned = have
        return PlanEntry(m.id, "send", tuple(sorted(have.items())))

    # -- data (reader threads) --------------------------------------------------------------------
    def _inline(self, ev: Chunk | Batch, deferrable: bool) -> object:
        """Verify and write a chunk or a batch in the reader thread that received it; a chunk
        written with direct I/O in a writer thread (a Future), while the reader reads on."""
        with self._writes_cv:
            if self._stopped:
                return _Late()
            self._writes += 1
        if deferrable and isinstance(ev, Chunk) and self._direct(ev):
            try:
                return self._writers().submit(self._write_counted, ev)
            except RuntimeError:  # the session is over: write it here
                pass
        return self._write_counted(ev)

    def _write_counted(self, ev: Chunk | Batch) -> object:
        try:
            if isinstance(ev, Batch):
                return _BatchWritten(self._write_batch(ev.entries))
            return self._write_chunk(ev)
        finally:
            with self._writes_cv:
                self._writes -= 1
                if not self._writes:
                    self._writes_cv.notify_all()

    def _direct(self, ev: Chunk) -> bool:
        """The chunk goes to its disk with direct I/O: the reader thread would wait for the
        disk, so a writer thread writes it while the next chunk is read (engine/stream.py)."""
        t = self.targets.get(ev.file_id)
        return t is not None and direct_io_wanted(self.settings.direct_io, str(t.volume.real_root))

    def _writers(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._writes_cv:
            if self._writer_pool is None:
                # each stream has at most two chunks in flight (its two payload buffers)
                self._writer_pool = concurrent.futures.ThreadPoolExecutor(
                    _WRITERS, thread_name_prefix="reelsync-write"
                )
            return self._writer_pool

    def _write_chunk(self, ev: Chunk) -> _Written | _Late:
        t = self.targets.get(ev.file_id)
        if t is None:
            if ev.file_id in self._settled:
                return _Late()
            raise ProtocolError(f"chunk of unknown file {ev.file_id}", remote=True)
        if not 0 <= ev.index < t.chunks:
            raise ProtocolError(f"chunk {ev.index} of a file of {t.chunks} chunks", remote=True)
        size = len(ev.data)
        if t.done or t.finalizing:  # settled, or complete and being published: a late copy
            return _Late()
        if chunk_checksum(ev.data) != ev.checksum:
            return _Written(t, ev.index, ev.checksum, size, False)
        try:
            with t.lock:  # the first chunks of a file may arrive on several streams at once
                if t.part is None:
                    t.part = PartFile(
                        t.volume,
                        t.rel,
                        size=t.entry.size,
                        mtime_ns=t.entry.mtime_ns,
                        chunk_size=self.chunk_size,
                        journal=t.chunks > 1,
                        writeback=self.settings.fsync and t.chunks > 1,
                        direct=direct_io_wanted(self.settings.direct_io, str(t.volume.real_root)),
                        expect=t.planned,
                    )
                part = t.part
            part.write_chunk(ev.index, ev.data, ev.checksum)
        except ReelsyncError as exc:
            return _Written(t, ev.index, ev.checksum, size, False, exc)
        return _Written(t, ev.index, ev.checksum, size, True)

    # -- data (event loop) -----------------------------------------------------------------------
    async def _on_written(self, stream: FrameStream, w: _Written) -> None:
        t = w.target
        if w.error is not None:
            # a late copy of a chunk that failed while the complete file is being published
            # does not fail the file (its publish decides)
            if not t.done and not t.finalizing:
                t.part = None
                await stream.send(FileDone((self._failed(t, w.error),)))
            return
        if _is_done(t):  # failed or aborted while the chunk was being written
            return
        if not w.ok:
            await stream.send(Nack(((t.entry.id, w.index),)))
            return
        if w.index not in t.checksums:
            t.received += w.size
        t.checksums[w.index] = w.checksum
        top = t.entry.parent if t.entry.parent is not None else t.entry.id
        self._group(top).observer.file_progress(
            t.key, len(t.checksums) * self.chunk_size, t.entry.size
        )
        if len(t.checksums) < t.chunks:
            await stream.send(Ack(((t.entry.id, w.index),)))
        # the chunk that completes the file is not acked: its FILE_DONE follows (acks only
        # move a sender's progress, in every version, and a finished file counts whole)
        await self._maybe_publish(stream, t)

    async def _maybe_publish(self, stream: FrameStream, t: _Target) -> None:
        if t.done or t.finalizing or t.end_digest is None or len(t.checksums) < t.chunks:
            return
        t.finalizing = True
        digest = file_digest(t.checksums[i] for i in range(t.chunks))
        part, t.part = t.part, None
        if digest != t.end_digest or part is None:
            if part is not None:
                await self._io(part.discard)
            err = IntegrityError(f"{t.volume.code}:{t.rel}: whole-file digest mismatch")
            await stream.send(FileDone((self._failed(t, err),)))
            return
        try:
            await self._io(self._publish, part, t)
        except ReelsyncError as exc:
            await stream.send(FileDone((self._failed(t, exc),)))
            return
        self._record(t, FileResult(t.key, "done", t.entry.size, t.received, digest_text(digest)))
        await stream.send(FileDone((FileOutcome(t.entry.id, True, digest=digest),)))

    def _publish(self, part: PartFile, t: _Target) -> None:
        part.publish(mode=t.entry.mode, mtime_ns=t.entry.mtime_ns, fsync=self.settings.fsync)

    def _write_batch(
        self, entries: tuple[BatchEntry, ...]
    ) -> list[tuple[_Target, bytes | ReelsyncError | None]]:
        """Verify a batch's files, then publish the good ones as one group (one durable step,
        see :func:`~reelsync.fs.write_whole_files`): none is reported done before it is."""
        out: list[tuple[_Target, bytes | ReelsyncError | None]] = []
        group: list[tuple[_Target, bytes]] = []
        files: list[WholeFile] = []
        with self._batch_lock:  # one stream's small files at a time (see __init__)
            self._check_batch(entries, out, group, files)
        errors = (
            write_whole_files(files, fsync=self.settings.fsync, serial=self._batch_lock)
            if files
            else []
        )
        for (t, checksum), error in zip(group, errors, strict=True):
            out.append((t, checksum if error is None else error))
        return out

    def _check_batch(
        self,
        entries: tuple[BatchEntry, ...],
        out: list[tuple[_Target, bytes | ReelsyncError | None]],
        group: list[tuple[_Target, bytes]],
        files: list[WholeFile],
    ) -> None:
        """A batch's files verified: the bad ones in ``out`` (None: nack), the good ones in
        ``group`` and ``files`` (to write)."""
        for e in entries:
            t = self.targets.get(e.file_id)
            if t is None:
                if e.file_id in self._settled:
                    continue
                raise ProtocolError(f"batch entry of unknown file {e.file_id}", remote=True)
            if t.done:
                continue
            if len(e.data) != t.entry.size:
                out.append((t, ProtocolError("batch entry size differs from the manifest")))
                continue
            if chunk_checksum(e.data) != e.checksum:
                out.append((t, None))  # nack
                continue
            group.append((t, e.checksum))
            files.append(WholeFile(t.volume, t.rel, e.data, t.entry.mode, t.entry.mtime_ns, t.path))

    async def _on_batch(self, stream: FrameStream, ev: _BatchWritten) -> None:
        outcomes: list[FileOutcome] = []
        nacks: list[tuple[int, int]] = []
        folded: dict[int, list[_Target]] = {}  # a folder's id: its files published
        for t, got in ev.results:
            if t.done:  # aborted meanwhile
                continue
            if got is None:
                nacks.append((t.entry.id, 0))
            elif isinstance(got, ReelsyncError):
                outcomes.append(self._failed(t, got))
            else:
                digest = file_digest([got])
                t.received = t.entry.size
                parent = t.entry.parent
                if parent is not None:
                    t.done = True
                    folded.setdefault(parent, []).append(t)
                else:
                    self._record(
                        t,
                        FileResult(t.key, "done", t.entry.size, t.entry.size, digest_text(digest)),
                    )
                outcomes.append(FileOutcome(t.entry.id, True, digest=digest))
        for parent, done in folded.items():
            self._record_done(parent, done)
        if nacks:
            await stream.send(Nack(tuple(nacks)))
        if outcomes:
            await stream.send(FileDone(tuple(outcomes)))
