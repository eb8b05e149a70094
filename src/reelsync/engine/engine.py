"""The data-plane engine: runs transfer sessions over mutual-TLS TCP streams.

Rules: the dialing side runs an :class:`Assignment` (push: it sends; pull: it receives) and
retries a lost session with backoff until ``retry_deadline``, resuming where the files stood;
only refusals (certificate, ticket, protocol) end it at once. A file the receiver found busy
(``path_busy``: another writer, e.g. the receiver's own session cut a moment ago, still holds its
part file) is tried again the same way, its failure passed on only at the deadline. The
listening side accepts a session only after the TLS handshake verified the peer against the
workspace CA and its :class:`Authorizer` granted it; joining streams must name a pending session
and present the same certificate. Every path is resolved inside a granted volume before it is
touched.

Sessions stay open (protocol version 3, see engine/pool.py): a dialer's work for a peer it already
has a session with flows into that session with its own ticket; the listener checks each ticket
as it comes and adds its paths to the session's grant.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from reelsync import pki
from reelsync.engine.folders import child_key
from reelsync.engine.model import (
    Assignment,
    Authorizer,
    FileResult,
    FileSpec,
    Grant,
    NullObserver,
    PeerAddress,
    SessionRequest,
    TransferObserver,
    VolumePath,
)
from reelsync.engine.pathsize import path_rtt, send_window, streams_for
from reelsync.engine.pool import Link, LinkKey, SessionPool
from reelsync.engine.ratelimit import TokenBucket
from reelsync.engine.receiver import ReceiveSession
from reelsync.engine.sender import SendItem, SendSession
from reelsync.engine.settings import EngineSettings
from reelsync.engine.stream import FrameStream, tune_socket
from reelsync.engine.work import WorkGroup
from reelsync.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionLostError,
    NotFoundError,
    PathBusyError,
    PermissionDeniedError,
    ProtocolError,
    ReelsyncError,
    error_from_code,
)
from reelsync.fs import Volume, normalize_relpath
from reelsync.protocol import (
    SUPPORTED_VERSIONS,
    Failure,
    Hello,
    ManifestEntry,
    Role,
    Side,
    Want,
    WantEntry,
    Welcome,
    choose_version,
)
from reelsync.protocol.clienthello import route_name

A = TypeVar("A")
S = TypeVar("S", bound=socket.socket)

_log = logging.getLogger("reelsync.engine")

__all__ = ["Engine", "Listener", "NullObserver", "listen_socket"]


@dataclass(eq=False)
class _Pending:
    """A listener's session: its streams by number, and the session once it runs (streams
    joining later are added to it; before, they wait in ``early``)."""

    hello: Hello
    grant: Grant
    certificate: bytes
    streams: list[FrameStream | None]
    session: SendSession | ReceiveSession | None = None
    early: list[FrameStream] = field(default_factory=list)

    def join(self, stream: FrameStream) -> None:
        if self.session is None:
            self.early.append(stream)
        elif not self.session.ended:
            self.session.add_stream(stream)
        else:  # the session ended while this stream came up: nobody else will close it
            stream.abort()

    def bind(self, session: SendSession | ReceiveSession) -> None:
        self.session = session
        for stream in self.early:
            session.add_stream(stream)
        self.early.clear()


@dataclass(eq=False)
class Listener:
    """A listening engine endpoint; ``port`` is the bound port."""

    sock: socket.socket
    task: asyncio.Future[None]
    host: str
    port: int

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        self.sock.close()


def listen_socket(host: str, port: int) -> socket.socket:
    """A non-blocking listening TCP socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    try:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((host, port))
        lsock.listen(128)
        lsock.setblocking(False)
    except OSError as exc:
        lsock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from exc
    return lsock


def _tls_error(exc: BaseException, peer: str) -> ReelsyncError:
    reason = getattr(exc, "reason", None) or str(exc)
    return AuthenticationError(
        f"TLS with {peer} failed: {reason}",
        hint="is it an agent of this workspace, with a certificate from this workspace's CA?",
    )


def _check_peer(streams: list[FrameStream], peer_id: str) -> None:
    """The listener we reached must be the agent the assignment names."""
    for stream in streams:
        try:
            found = pki.peer_identity(stream.peer_certificate).agent_id
        except PermissionDeniedError:
            found = "(not an agent certificate)"
        if found != peer_id:
            raise AuthenticationError(
                f"the peer at {stream.peer_name} is agent {found}, not {peer_id}",
                hint="the peer's address changed or another machine answers there",
            )


class _HoldBusy:
    """Passes progress and results on to ``inner``, but holds back a ``path_busy`` failure: the
    dial loop tries that file again and passes it on itself if it is still busy at the end (see
    :func:`_settle_busy`)."""

    __slots__ = ("inner",)

    def __init__(self, inner: TransferObserver) -> None:
        self.inner = inner

    def file_progress(self, key: str, bytes_done: int, size: int) -> None:
        self.inner.file_progress(key, bytes_done, size)

    def file_finished(self, result: FileResult) -> None:
        if result.error_code != PathBusyError.code:
            self.inner.file_finished(result)


def _settle_busy(results: dict[str, FileResult], observer: TransferObserver, final: bool) -> bool:
    """The ``path_busy`` failures among ``results``: passed on to ``observer`` when ``final``,
    else taken out of ``results`` to be tried again. True when some are to be tried again."""
    busy = [k for k, r in results.items() if r.error_code == PathBusyError.code]
    for key in busy:
        if final:
            observer.file_finished(results[key])
        else:
            del results[key]
    return bool(busy) and not final


class Engine:
    """Moves files between this agent and its peers. One per agent process; share it."""

    def __init__(
        self,
        settings: EngineSettings,
        *,
        client_ssl: ssl.SSLContext | None = None,
        server_ssl: ssl.SSLContext | None = None,
        volumes: Mapping[str, Volume] | None = None,
    ) -> None:
        self.settings = settings
        self.client_ssl = client_ssl
        self.server_ssl = server_ssl
        self.volumes: Mapping[str, Volume] = dict(volumes or {})
        self.executor = ThreadPoolExecutor(settings.io_threads, thread_name_prefix="reelsync-io")
        # TCP connects and TLS handshakes block for round trips, not CPU: threads of their own,
        # enough for every stream of a session at once (on a long path, sharing the I/O threads
        # opened the streams in waves of io_threads, two round trips a wave)
        self.handshakes = ThreadPoolExecutor(
            settings.max_streams + 2, thread_name_prefix="reelsync-tls"
        )
        self.limiter = TokenBucket(settings.bandwidth_limit)  # what this agent sends
        self.read_limiter = TokenBucket(settings.bandwidth_limit)  # what it receives
        self._pending: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[Listener] = []
        self._pool = SessionPool()
        self._versions = tuple(v for v in SUPPORTED_VERSIONS if v <= settings.protocol_max)
        self.streams_accepted = 0  # TCP+TLS streams peers opened to this engine
        self.streams_refused = 0  # of those, refused (no common version, no grant, no session)
        self._window = send_window()

    @property
    def open_sessions(self) -> int:
        """Sessions this engine dialled and keeps open for more work."""
        return len(self._pool)

    def set_bandwidth_limit(self, rate: float | None) -> None:
        """Limit what this agent sends and what it receives to ``rate`` bytes/s each (None: no
        limit), from now on, running transfers included."""
        self.limiter.set_rate(rate)
        self.read_limiter.set_rate(rate)

    @property
    def bandwidth_limit(self) -> float | None:
        """The limit applied now, bytes/s each way (None: none)."""
        return self.limiter.rate

    @property
    def bytes_moved(self) -> tuple[int, int]:
        """Bytes sent and received since the engine started (payload and frames)."""
        return self.limiter.total, self.read_limiter.total

    def set_volumes(self, volumes: Mapping[str, Volume]) -> None:
        """Replace the local volumes (the control plane said so); running sessions keep theirs."""
        self.volumes = dict(volumes)

    async def aclose(self) -> None:
        """Stop listening, end running sessions and the I/O threads."""
        await self._pool.aclose()
        for listener in self._listeners:
            await listener.close()
        self._listeners.clear()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.handshakes.shutdown(wait=False, cancel_futures=True)

    # -- dialing side ----------------------------------------------------------------------------
    async def push(
        self, assignment: Assignment, observer: TransferObserver | None = None
    ) -> list[FileResult]:
        """Send the assignment's files to the peer (which listens); one result per file."""
        return await self._dial_loop(assignment, "send", observer or NullObserver())

    async def pull(
        self, assignment: Assignment, observer: TransferObserver | None = None
    ) -> list[FileResult]:
        """Fetch the assignment's files from the peer (which listens); one result per file."""
        return await self._dial_loop(assignment, "receive", observer or NullObserver())

    async def _dial_loop(
        self, assignment: Assignment, role: Role, observer: TransferObserver
    ) -> list[FileResult]:
        final_observer, observer = observer, _HoldBusy(observer)
        results: dict[str, FileResult] = {}
        specs = {spec.key: spec for spec in assignment.files}
        deadline = time.monotonic() + self.settings.retry_deadline
        delay = 0.25
        while len(results) < len(specs):
            todo = [s for k, s in specs.items() if k not in results]
            session: SendSession | ReceiveSession | None = None
            group: WorkGroup | None = None
            streams: list[FrameStream] = []
            joining: asyncio.Future[None] | None = None
            try:
                key = self._pool.lane_for(
                    LinkKey(role, assignment.peer.host, assignment.peer.port, assignment.peer_id),
                    assignment.priority,
                )
                one_shot: list[tuple[FrameStream, list[asyncio.Task[FrameStream]]]] = []

                link = await self._pool.get(
                    key, functools.partial(self._dial_link, assignment, key, one_shot)
                )
                if link is not None:
                    group = self._submit(link, todo, role, assignment, observer)
                    await link.wait(group)
                    got = group.results
                else:
                    first, joiners = one_shot[0]
                    streams.append(first)
                    session = self._dialer_session([first], todo, role, observer)
                    joining = asyncio.ensure_future(
                        self._join(session, joiners, streams, assignment.peer_id)
                    )
                    got = await session.run()
                results.update((k, r) for k, r in got.items() if k in specs)
                missing = [s for s in todo if s.key not in got]
                if missing and role == "send":
                    raise ProtocolError("the session ended before every file had a result")
                for spec in missing:  # a pull: the sender never offered them
                    results[spec.key] = FileResult.failed(
                        spec.key, ProtocolError("the peer ended the session without this file")
                    )
                if _settle_busy(results, final_observer, time.monotonic() + delay > deadline):
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.retry_max_delay)
            except ReelsyncError as exc:
                partial = group.results if group else session.results if session else {}
                results.update((k, r) for k, r in partial.items() if k in specs)
                final = not exc.retryable or time.monotonic() + delay > deadline
                _settle_busy(results, final_observer, final)
                if final:
                    for spec in specs.values():
                        if spec.key not in results:
                            results[spec.key] = FileResult.failed(spec.key, exc)
                            final_observer.file_finished(results[spec.key])
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_delay)
            finally:
                if joining is not None:
                    joining.cancel()
                    await asyncio.gather(joining, return_exceptions=True)
                await asyncio.gather(*(s.aclose() for s in streams))
        return [results[spec.key] for spec in assignment.files]

    async def _dial_link(
        self,
        assignment: Assignment,
        key: LinkKey,
        one_shot: list[tuple[FrameStream, list[asyncio.Task[FrameStream]]]],
    ) -> Link | None:
        """A new session with the assignment's peer, kept open for more work; None (its first
        stream and the joining ones put in ``one_shot``) when the peer speaks an older
        version."""
        first, joiners = await self._dial(assignment.peer, key.role, assignment.ticket)
        try:
            if assignment.peer_id is not None:
                _check_peer([first], assignment.peer_id)
        except BaseException:
            for j in joiners:
                j.cancel()
            await asyncio.gather(*joiners, return_exceptions=True)
            await first.aclose()
            raise
        if (first.conn.version or 1) < 3:
            one_shot.append((first, joiners))  # an older peer: one session per assignment
            return None
        wanted: dict[int, FileSpec] = {}
        streams = [first]
        session = self._open_session(streams[:], key.role, wanted)
        idle = min(self.settings.session_idle, self.settings.idle_timeout / 2)
        joining = asyncio.ensure_future(self._join(session, joiners, streams, key.peer_id))
        return Link(key, streams, session, idle, self._pool.forget, wanted, joining)

    def _open_session(
        self, streams: list[FrameStream], role: Role, by_id: dict[int, FileSpec]
    ) -> SendSession | ReceiveSession:
        """A version 3 session kept open for work (see :meth:`_submit`); ``by_id``: what a
        pulling session asked for, by file id."""
        if role == "send":
            return SendSession(
                streams,
                [],
                self.settings,
                NullObserver(),
                self.executor,
                self.limiter,
                open_ended=True,
            )

        def resolve(m: ManifestEntry) -> tuple[str, Volume, str]:
            return self._resolve_wanted(by_id, m)

        def resolve_folder(
            parent: int, volume: str, folder: str
        ) -> tuple[Callable[[str], str], Volume, str]:
            return self._resolve_wanted_folder(by_id, parent, volume, folder)

        return ReceiveSession(
            streams,
            resolve,
            self.settings,
            NullObserver(),
            self.executor,
            open_ended=True,
            resolve_folder=resolve_folder,
        )

    def _submit(
        self,
        link: Link,
        todo: list[FileSpec],
        role: Role,
        assignment: Assignment,
        observer: TransferObserver,
    ) -> WorkGroup:
        session = link.session
        ticket = assignment.ticket
        if isinstance(session, SendSession):
            ids = session.allocate(len(todo))
            items = [self._send_item(i, spec) for i, spec in zip(ids, todo, strict=True)]
            return session.add(items, observer, ticket, assignment.priority)
        ids = session.allocate(len(todo))
        link.wanted.update(zip(ids, todo, strict=True))
        entries = tuple(
            WantEntry(i, s.src.volume, s.src.path, s.dst.volume, s.dst.path)
            for i, s in zip(ids, todo, strict=True)
        )
        group = session.add(
            entries, {i: s.key for i, s in zip(ids, todo, strict=True)}, observer, ticket
        )
        group.priority = assignment.priority  # what runs on the link (see SessionPool.lane_for)
        return group

    def _send_item(self, i: int, spec: FileSpec) -> SendItem:
        volume = self.volumes.get(spec.src.volume)
        err = None if volume else NotFoundError(f"no local volume {spec.src.volume!r}")
        return SendItem(i, spec.key, volume, spec.src.path, spec.dst.volume, spec.dst.path, err)

    def _resolve_wanted(
        self, by_id: dict[int, FileSpec], m: ManifestEntry
    ) -> tuple[str, Volume, str]:
        """A pulling dialer's check of an entry the sender offers: a file it asked for, or a
        file inside a folder it asked for."""
        if m.parent is not None:  # a file of a folder we asked for: it must lie inside it
            folder = by_id.get(m.parent)
            below = _below(folder.dst.path, m.dst_path) if folder is not None else None
            if folder is None or below is None or m.dst_volume != folder.dst.volume:
                raise PermissionDeniedError(
                    f"the peer offered a file outside the folder we asked for ({m.id})"
                )
            key, dst = child_key(folder.key, below), VolumePath(m.dst_volume, m.dst_path)
        else:
            spec = by_id.get(m.id)
            if spec is None or (m.dst_volume, m.dst_path) != (spec.dst.volume, spec.dst.path):
                raise PermissionDeniedError(f"the peer offered a file we did not ask for ({m.id})")
            key, dst = spec.key, spec.dst
        volume = self.volumes.get(dst.volume)
        if volume is None:
            raise NotFoundError(f"no local volume {dst.volume!r}")
        return key, volume, normalize_relpath(dst.path)  # the session resolves it

    def _resolve_wanted_folder(
        self, by_id: dict[int, FileSpec], parent: int, volume_code: str, folder: str
    ) -> tuple[Callable[[str], str], Volume, str]:
        """A pulling dialer's check of a destination folder holding files the sender offers
        (see :data:`~reelsync.engine.receiver.FolderResolver`): the folder it asked for or one
        below it, in the same volume."""
        spec = by_id.get(parent)
        if spec is None or volume_code != spec.dst.volume:
            raise PermissionDeniedError(
                f"the peer offered files outside what we asked for ({parent})"
            )
        norm, base = normalize_relpath(folder), normalize_relpath(spec.dst.path)
        below = "" if norm == base else _below(base, norm)
        if below is None:
            raise PermissionDeniedError(
                f"the peer offered files outside the folder we asked for ({parent})"
            )
        volume = self.volumes.get(volume_code)
        if volume is None:
            raise NotFoundError(f"no local volume {volume_code!r}")
        prefix = child_key(spec.key, f"{below}/" if below else "")
        return (lambda name: prefix + name), volume, norm

    def _dialer_session(
        self,
        streams: list[FrameStream],
        todo: list[FileSpec],
        role: Role,
        observer: TransferObserver,
    ) -> SendSession | ReceiveSession:
        if role == "send":
            items = [self._send_item(i, spec) for i, spec in enumerate(todo)]
            return SendSession(streams, items, self.settings, observer, self.executor, self.limiter)
        by_id = dict(enumerate(todo))

        def resolve(m: ManifestEntry) -> tuple[str, Volume, str]:
            return self._resolve_wanted(by_id, m)

        def resolve_folder(
            parent: int, volume: str, folder: str
        ) -> tuple[Callable[[str], str], Volume, str]:
            return self._resolve_wanted_folder(by_id, parent, volume, folder)

        want = Want(
            tuple(
                WantEntry(i, s.src.volume, s.src.path, s.dst.volume, s.dst.path)
                for i, s in by_id.items()
            )
        )
        return ReceiveSession(
            streams,
            resolve,
            self.settings,
            observer,
            self.executor,
            opening=want,
            resolve_folder=resolve_folder,
        )

    def _tcp(self, peer: PeerAddress) -> socket.socket:
        """Blocking: a tuned TCP connection (runs in a handshake thread)."""
        raw = socket.create_connection((peer.host, peer.port), self.settings.connect_timeout)
        tune_socket(raw, self.settings)
        return raw

    def _tls(self, raw: socket.socket, host: str) -> ssl.SSLSocket:
        """Blocking: the client side of the TLS handshake (runs in a handshake thread)."""
        assert self.client_ssl is not None
        try:
            sock = self.client_ssl.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        sock.settimeout(None)
        return sock

    def _connect(self, peer: PeerAddress, server_name: str) -> ssl.SSLSocket:
        """Blocking: TCP connect and TLS handshake (runs in a handshake thread)."""
        return self._tls(self._tcp(peer), server_name)

    def _server_name(self, peer: PeerAddress, session: str) -> str:
        """The name a session's streams give in TLS (SNI): the session's routing name, so a
        listener that hands connections to worker processes keeps them together
        (``protocol.clienthello``); the peer's host when the name is checked."""
        assert self.client_ssl is not None
        if self.client_ssl.check_hostname:
            return peer.host
        digest = hashlib.blake2s(session.encode(), digest_size=8).hexdigest()
        return route_name(digest)

    async def _open_stream(
        self,
        peer: PeerAddress,
        hello: Hello,
        *,
        raw: socket.socket | None = None,
        after: asyncio.Event | None = None,
    ) -> FrameStream:
        """A stream of a session: TCP (unless ``raw`` is connected already), TLS, then Hello
        (once ``after`` is set: a joining stream waits for the session's first) and Welcome."""
        if self.client_ssl is None:
            raise ConfigError("the engine has no client TLS context: it cannot dial")
        loop = asyncio.get_running_loop()
        where = f"{peer.host}:{peer.port}"
        name = self._server_name(peer, hello.session)
        try:
            if raw is None:
                sock = await _in_thread(
                    self.handshakes, functools.partial(self._connect, server_name=name), peer
                )
            else:
                sock = await _in_thread(
                    self.handshakes, functools.partial(self._tls, host=name), raw, raw
                )
        except ssl.SSLError as exc:
            raise _tls_error(exc, where) from exc
        except (OSError, TimeoutError) as exc:
            raise ConnectionLostError(f"cannot reach the peer {where}: {exc}") from exc
        stream = FrameStream(sock, Side.DIALER, self.settings, loop, self.read_limiter)
        try:
            if after is not None:
                await after.wait()
            await stream.send(hello)
            ev = await stream.recv(self.settings.connect_timeout)
        except BaseException:
            stream.abort()
            raise
        if isinstance(ev, Failure):
            stream.close()
            raise error_from_code(ev.code, ev.message)
        if not isinstance(ev, Welcome):
            stream.close()
            raise ProtocolError(f"expected Welcome from {where}, got {type(ev).__name__}")
        return stream

    async def _dial(
        self, peer: PeerAddress, role: Role, ticket: str | None
    ) -> tuple[FrameStream, list[asyncio.Task[FrameStream]]]:
        """The session's first stream, and the others being opened (cold start: they open in
        parallel while the first carries the manifest; how many: engine/pathsize.py)."""
        where = f"{peer.host}:{peer.port}"
        try:
            raw = await _in_thread(self.handshakes, self._tcp, peer)
        except (OSError, TimeoutError) as exc:
            raise ConnectionLostError(f"cannot reach the peer {where}: {exc}") from exc
        n = streams_for(self.settings, path_rtt(raw), self._window)
        session = secrets.token_hex(16)

        def hello(i: int) -> Hello:
            return Hello(self._versions, session, i, n, role, ticket)

        welcomed = asyncio.Event()
        joiners = [
            asyncio.ensure_future(self._open_stream(peer, hello(i), after=welcomed))
            for i in range(1, n)
        ]
        try:
            first = await self._open_stream(peer, hello(0), raw=raw)
        except BaseException:
            for j in joiners:
                j.cancel()
            await asyncio.gather(*joiners, return_exceptions=True)
            raise
        welcomed.set()
        return first, joiners

    async def _join(
        self,
        session: SendSession | ReceiveSession,
        joiners: list[asyncio.Task[FrameStream]],
        streams: list[FrameStream],
        peer_id: str | None,
    ) -> None:
        """Add each joining stream to the running session as it comes up; one that fails or
        reaches another agent is left out (the session goes on with the others)."""
        try:
            for next_up in asyncio.as_completed(joiners):
                try:
                    stream = await next_up
                    if peer_id is not None:
                        _check_peer([stream], peer_id)
                except ReelsyncError as exc:
                    _log.warning("a stream of a session could not join: %s", exc)
                    continue
                if session.ended:
                    await stream.aclose()
                    continue
                streams.append(stream)
                session.add_stream(stream)
        finally:
            for j in joiners:
                j.cancel()
            leftovers = await asyncio.gather(*joiners, return_exceptions=True)
            for got in leftovers:
                if isinstance(got, FrameStream) and got not in streams:
                    got.abort()

    # -- listening side --------------------------------------------------------------------------
    async def serve(self, host: str, port: int, authorizer: Authorizer) -> Listener:
        """Listen for peers' sessions on ``host:port`` (port 0: any free port)."""
        if self.server_ssl is None:
            raise ConfigError("the engine has no server TLS context: it cannot listen")
        if self.server_ssl.verify_mode != ssl.CERT_REQUIRED:
            raise ConfigError("the data plane requires mutual TLS (CERT_REQUIRED)")
        self.server_ssl.num_tickets = 0  # see stream.py: no TLS writes from the reader thread
        lsock = listen_socket(host, port)
        task = asyncio.ensure_future(self._accept_loop(lsock, authorizer))
        listener = Listener(lsock, task, host, lsock.getsockname()[1])
        self._listeners.append(listener)
        return listener

    def _handshake(self, raw: socket.socket) -> ssl.SSLSocket:
        """Blocking: the server side of the TLS handshake (runs in a handshake thread)."""
        assert self.server_ssl is not None
        raw.setblocking(True)
        raw.settimeout(self.settings.connect_timeout)
        tune_socket(raw, self.settings)
        sock = self.server_ssl.wrap_socket(raw, server_side=True)
        sock.settimeout(None)
        return sock

    async def _accept_loop(self, lsock: socket.socket, authorizer: Authorizer) -> None:
        loop = asyncio.get_running_loop()
        while True:
            raw, _ = await loop.sock_accept(lsock)
            task = asyncio.ensure_future(self._accept_raw(raw, authorizer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def adopt(self, raw: socket.socket, authorizer: Authorizer) -> None:
        """Serve a peer's connection accepted elsewhere (a process that owns the listening
        socket and hands connections to worker processes), as if this engine had accepted it."""
        if self.server_ssl is None or self.server_ssl.verify_mode != ssl.CERT_REQUIRED:
            raw.close()
            raise ConfigError("the data plane requires a server TLS context with mutual TLS")
        self.server_ssl.num_tickets = 0  # see serve()
        task = asyncio.ensure_future(self._accept_raw(raw, authorizer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_raw(self, raw: socket.socket, authorizer: Authorizer) -> None:
        loop = asyncio.get_running_loop()
        try:
            sock = await _in_thread(self.handshakes, self._handshake, raw, raw)
        except (OSError, ValueError):  # a refused certificate, a scanner, a timeout
            raw.close()
            return
        self.streams_accepted += 1
        await self._accept(
            FrameStream(sock, Side.LISTENER, self.settings, loop, self.read_limiter), authorizer
        )

    async def _refuse(self, stream: FrameStream, err: ReelsyncError) -> None:
        self.streams_refused += 1
        try:
            with contextlib.suppress(ReelsyncError):
                await stream.send(Failure(err.code, err.message))
        finally:
            stream.close()

    async def _accept(self, stream: FrameStream, authorizer: Authorizer) -> None:
        try:
            ev = await stream.recv(self.settings.connect_timeout)
        except ReelsyncError:
            stream.abort()
            return
        except BaseException:  # the engine closing while a peer's Hello is awaited
            stream.abort()
            raise
        if not isinstance(ev, Hello):
            stream.abort()
            return
        version = choose_version(ev.versions, self._versions)
        if version is None:
            await self._refuse(stream, ProtocolError("no common protocol version"))
            return
        if ev.stream > 0:
            pending = self._pending.get(ev.session)
            if (
                pending is None
                or pending.certificate != stream.peer_certificate
                or pending.hello.streams != ev.streams
                or pending.streams[ev.stream] is not None
            ):
                await self._refuse(stream, PermissionDeniedError("no such session to join"))
                return
            pending.streams[ev.stream] = stream
            await stream.send(Welcome(version, ev.session, ev.stream))
            pending.join(stream)  # the session runs already (cold start): it joins at once
            return
        request = SessionRequest(stream.peer_certificate, ev.ticket, ev.role, ev.streams)
        try:
            grant = authorizer.authorize(request)
        except ReelsyncError as exc:
            await self._refuse(stream, exc)
            return
        pending = _Pending(ev, grant, stream.peer_certificate, [None] * ev.streams)
        pending.streams[0] = stream
        self._pending[ev.session] = pending
        try:
            await stream.send(Welcome(version, ev.session, 0))
            await self._run_listener_session(pending, ev.role, grant, authorizer)
        except (ReelsyncError, TimeoutError):
            pass
        finally:
            self._pending.pop(ev.session, None)
            await asyncio.gather(*(s.aclose() for s in pending.streams if s is not None))

    async def _run_listener_session(
        self,
        pending: _Pending,
        dialer_role: Role,
        grant: Grant,
        authorizer: Authorizer,
    ) -> None:
        observer = grant.observer or NullObserver()
        scope = _Scope(grant)
        first = pending.streams[0]
        assert first is not None
        streams = [first]
        version = first.conn.version or 1

        def check_ticket(ticket: str) -> None:  # version 3: more work, another ticket
            request = SessionRequest(
                first.peer_certificate, ticket, dialer_role, pending.hello.streams
            )
            scope.widen(authorizer.authorize(request))

        if dialer_role == "send":

            def resolve(m: ManifestEntry) -> tuple[str, Volume, str]:
                volume, rel = scope.granted(
                    m.dst_volume, m.dst_path, in_folder=m.parent is not None
                )
                return f"{m.dst_volume}:{rel}", volume, rel

            def resolve_folder(
                parent: int, code: str, folder: str
            ) -> tuple[Callable[[str], str], Volume, str]:
                # files directly in ``folder``: granted when it or a folder above it is
                volume, rel = scope.granted(code, folder, in_folder=True)
                prefix = f"{code}:{rel}/"
                return (lambda name: prefix + name), volume, rel

            receiving = ReceiveSession(
                streams,
                resolve,
                self.settings,
                observer,
                self.executor,
                tickets=check_ticket if version >= 3 else None,
                resolve_folder=resolve_folder,
            )
            pending.bind(receiving)
            await receiving.run()
            return

        def wanted(want: Want) -> list[SendItem]:
            refused: ReelsyncError | None = None
            if want.ticket is not None:
                try:
                    check_ticket(want.ticket)
                except ReelsyncError as exc:  # this Want's files fail, the session goes on
                    refused = exc
            items = []
            for w in want.files:
                key = f"{w.src_volume}:{w.src_path}"
                try:
                    if refused is not None:
                        raise refused
                    volume, rel = scope.granted(w.src_volume, w.src_path)
                    items.append(SendItem(w.id, key, volume, rel, w.dst_volume, w.dst_path))
                except ReelsyncError as exc:
                    items.append(
                        SendItem(w.id, key, None, w.src_path, w.dst_volume, w.dst_path, exc)
                    )
            return items

        if version >= 3:  # Wants come and go until the dialer's Bye
            session = SendSession(
                streams, [], self.settings, observer, self.executor, self.limiter, wants=wanted
            )
            pending.bind(session)
            await session.run()
            return
        ev = await first.recv(self.settings.idle_timeout)
        if not isinstance(ev, Want):
            raise ProtocolError(f"expected Want, got {type(ev).__name__}", remote=True)
        session = SendSession(
            streams, wanted(ev), self.settings, observer, self.executor, self.limiter
        )
        pending.bind(session)
        await session.run()


class _Scope:
    """What a listener's session may touch: its first grant's, widened by each further ticket
    (version 3). Read by I/O threads while the loop widens it: it only grows."""

    def __init__(self, grant: Grant) -> None:
        self.volumes: Mapping[str, Volume] = grant.volumes
        self.paths: set[tuple[str, str]] | None = None if grant.paths is None else set(grant.paths)

    def widen(self, grant: Grant) -> None:
        self.volumes = {**self.volumes, **grant.volumes}
        if grant.paths is None:
            self.paths = None
        elif self.paths is not None:
            self.paths |= grant.paths

    def granted(self, volume_code: str, rel: str, *, in_folder: bool = False) -> tuple[Volume, str]:
        volume = self.volumes.get(volume_code)
        if volume is None:
            raise NotFoundError(f"volume {volume_code!r} is not served here")
        norm = normalize_relpath(rel)
        paths = self.paths
        if paths is not None and (volume_code, norm) not in paths:
            # a file of a folder: some folder above it must be granted
            above = _ancestors(norm) if in_folder else []
            if not any((volume_code, folder) in paths for folder in above):
                raise PermissionDeniedError(f"{volume_code}:{rel} is not part of this transfer")
        return volume, norm  # each session resolves it in the volume before touching it


def _below(folder: str, path: str) -> str | None:
    """``path`` relative to ``folder`` when it lies strictly inside it, else None."""
    norm, base = normalize_relpath(path), normalize_relpath(folder)
    if not base:
        return norm or None
    prefix = base + "/"
    return norm[len(prefix) :] if norm.startswith(prefix) and len(norm) > len(prefix) else None


def _ancestors(rel: str) -> list[str]:
    """The folders above ``rel``, nearest first (``a/b/c`` -> ``a/b``, ``a``, the root)."""
    parts = rel.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(len(parts), -1, -1)]


async def _in_thread(
    executor: concurrent.futures.Executor,
    fn: Callable[[A], S],
    arg: A,
    raw: socket.socket | None = None,
) -> S:
    """``fn(arg)`` in an I/O thread, for a socket. Cancelled while it runs (the engine closing,
    a session given up), the socket it makes -- or ``raw``, if it never ran -- is closed when the
    thread is done, instead of being left open."""
    job = executor.submit(fn, arg)
    try:
        return await asyncio.wrap_future(job)
    except asyncio.CancelledError:

        def close(done: concurrent.futures.Future[S]) -> None:
            if not done.cancelled() and done.exception() is None:
                done.result().close()
            elif raw is not None:
                raw.close()

        job.add_done_callback(close)
        raise
