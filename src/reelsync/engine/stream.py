"""One TLS stream of a session: a blocking TLS socket driven by two threads, bridged to asyncio.

Why threads: asyncio's TLS transport encrypts in Python-managed memory buffers on the loop thread
and tops out near 130 MB/s here; a blocking ``ssl.SSLSocket`` releases the GIL for the whole of
``SSL_read``/``SSL_write`` and its syscalls (about 700 MB/s), so each stream gets a reader thread
and a writer thread, and the session logic stays on the event loop.

Rules: the reader thread parses frames with the stream's sans-I/O
:class:`~reelsync.protocol.Connection` (under a lock shared with the sending path) and hands
whole events to the loop; it stops reading while more than ``max_queued`` bytes of events wait
(backpressure to the peer through TCP). :meth:`FrameStream.send` queues a frame's buffers for the
writer thread and waits while more than ``high_water`` bytes are queued (on a long path about a
frame, the socket buffering the rest: engine/pathsize.py ``send_queue``); the writer packs a
large buffer into whole TLS records (its first bytes top up the small frames before it, its
last part-record waits for the small frames after it), so a chunk's header and the FILE_END
sent with it (``send(..., then=...)``) take no record, system call and TCP segment of their
own. A reader that finds more in a chunk's last record (that FILE_END) reads it at once and
hands both to the loop in one wake-up. :meth:`FrameStream.recv`'s timeout is watched by one
timer per stream, not a ``wait_for`` per event. Session tickets are
disabled on the server so the two threads never make one TLS object write at once. A dropped
stream surfaces as ConnectionLostError, a TLS refusal as AuthenticationError, a peer breaking the
protocol as ProtocolError.

A receiving session may install an *inline handler* (:meth:`FrameStream.set_inline`): the reader
thread then passes every CHUNK and BATCH event to it before anything else and delivers what it
returns instead. The handler verifies and writes the data right there (``pwrite`` and xxh3
release the GIL), so data never waits for the event loop or an executor, and a large chunk's
payload lands in a buffer the reader reuses (the handler must not keep the event's data). Two
such buffers: for a large chunk the handler may instead return a ``concurrent.futures.Future``
and finish in another thread (a write with direct I/O waits for the disk); the reader then reads
the next chunk into the other buffer, waits before reusing a buffer until its Future is done,
and :meth:`FrameStream.recv` hands the loop each Future's outcome in the stream's order.

With the handler comes a *read gate*, a lock shared by the session's streams: on a short path
(:attr:`FrameStream.short_path`: loopback, a LAN, see engine/pathsize.py) and a machine of at most
four cores (one that sends on one stream there; a sender spreading data over every stream, such
as an older one, still busies every reader), a reader holds it while it reads a large chunk's or
frame's payload, so one thread at a time runs the ``SSL_read`` loop. TLS hands over at most one
16 KiB record per read, each a release of the GIL; with every stream's reader in that loop at
once, nearly every release woke another reader (seq, 4 streams: ~765,000 futex calls on the
receiver for 2 GB). Gated, the readers take turns per chunk, and one verifies and writes its chunk
(outside the gate) while the next one is read. On a long path a stream's payload arrives at its
own pace, so there is no gate: a reader waiting for the network must not hold up the others.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import math
import socket
import ssl
import threading
from collections.abc import Callable

from reelsync.engine.pathsize import SHORT_RTT, path_rtt, send_queue, short_path_lanes
from reelsync.engine.ratelimit import TokenBucket
from reelsync.engine.settings import EngineSettings
from reelsync.errors import (
    AuthenticationError,
    ConnectionLostError,
    ReelsyncError,
)
from reelsync.fs.direct import aligned_buffer
from reelsync.protocol import (
    Batch,
    BatchFrame,
    Chunk,
    Connection,
    ConnectionClosed,
    Event,
    NeedData,
    Side,
)

__all__ = ["FrameStream", "InlineHandler", "tune_socket"]

InlineHandler = Callable[[Chunk | Batch, bool], object]
"""Runs in a stream's reader thread for each CHUNK and BATCH; returns what to deliver instead.
Its second argument says the event's data stays valid after the call (a large chunk read into one
of the stream's payload buffers): the handler may then return a :class:`concurrent.futures.Future`
of what to deliver, and finish the work in another thread (see the module)."""

_READ_BUFFER = 1 << 20
_COALESCE = 64 * 1024
_RECORD = 16 * 1024  # the largest TLS record's plaintext
_BIG_READ = 256 * 1024
_LIMITED_READ = 64 * 1024  # the largest read while a receive limit is on (smooth pacing)


_KEEPALIVE = (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))


def tune_socket(sock: socket.socket, settings: EngineSettings) -> None:
    """Ask for the configured congestion control and socket buffers, where available; and
    keepalives, so a session kept open notices a peer that vanished without a word (a machine
    gone, a NAT that forgot the flow) within about 25 s of silence, not at the idle timeout."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in _KEEPALIVE:
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
    tcp_congestion = getattr(socket, "TCP_CONGESTION", None)
    if settings.congestion and tcp_congestion is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, tcp_congestion, settings.congestion.encode())
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if settings.socket_buffer:
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, opt, settings.socket_buffer)


def _size(event: object) -> int:
    if isinstance(event, Chunk):
        return len(event.data)
    if isinstance(event, Batch):
        return sum(len(e.data) for e in event.entries)
    return 64


def _lost_error(exc: BaseException | None, peer: str) -> ReelsyncError:
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError):
        return AuthenticationError(
            f"TLS with {peer} failed: {exc.reason or exc}",
            hint="is the peer an agent of this workspace, with a certificate from its CA?",
        )
    if isinstance(exc, ReelsyncError):
        return exc
    reason = f": {exc}" if exc else ""
    return ConnectionLostError(f"stream to {peer} closed{reason}")


class FrameStream:
    """A connected, handshaken TLS socket carrying one stream of a session."""

    def __init__(
        self,
        sock: ssl.SSLSocket,
        side: Side,
        settings: EngineSettings,
        loop: asyncio.AbstractEventLoop,
        read_limiter: TokenBucket | None = None,
    ) -> None:
        self.sock = sock
        self._read_limiter = read_limiter
        self.conn = Connection(side)
        self.settings = settings
        self.peer_certificate: bytes = sock.getpeercert(binary_form=True) or b""
        try:
            host, port = sock.getpeername()[:2]
            self.peer_name = f"{host}:{port}"
        except OSError:
            self.peer_name = "?"
        self._loop = loop
        self._lock = threading.Lock()  # guards self.conn between the loop and the reader
        # reading
        self._events: collections.deque[object] = collections.deque()
        self._inline: InlineHandler | None = None
        self._gate: threading.Lock | contextlib.nullcontext[None] = contextlib.nullcontext()
        rtt = path_rtt(sock)
        self.short_path = rtt is not None and rtt < SHORT_RTT  # see engine/pathsize.py
        # A large payload's reads go to the TLS object's own read: ssl.SSLSocket.recv_into
        # wraps it in two Python calls (and a check that does nothing), paid once per 16 KiB
        # record, ~130 times per 2 MiB chunk. A ragged end of stream then raises SSLEOFError
        # (a lost stream, as a close mid-payload is anyway) instead of reading 0 bytes.
        read = getattr(getattr(sock, "_sslobj", None), "read", None)
        self._read_into: Callable[[int, memoryview], int] = read or (
            lambda n, view: sock.recv_into(view, n)
        )
        # reused for chunk payloads when a handler consumes them; page-aligned, so a chunk can
        # go to the disk with direct I/O straight from it (fs/direct.py). Two: while a handler
        # finishes a chunk from one in another thread (its Future), the next is read into the
        # other; a buffer is reused once its Future is done.
        self._payload_bufs = [aligned_buffer(0), aligned_buffer(0)]
        self._payload_busy: list[concurrent.futures.Future[object] | None] = [None, None]
        self._payload_at = 0
        self._frame_buf = bytearray()  # reused for large frames (the Connection copies them)
        self._queued = 0
        self._max_queued = max(32 << 20, 3 * settings.chunk_size)
        self._space = threading.Condition()
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0  # when the wait under way times out (see _watched)
        self._watch: asyncio.TimerHandle | None = None
        self._error: ReelsyncError | None = None
        self._closed = False
        # writing
        # frame buffers to write, and release callbacks of reusable ones (see send)
        self._out: collections.deque[bytes | memoryview | Callable[[], None]] = collections.deque()
        self._out_bytes = 0
        self._high_water = send_queue(settings, rtt)  # short path: deep; long: ~a frame
        self._out_cv = threading.Condition()
        self._closing = False
        self._drained = asyncio.Event()
        self._draining = False  # a sender waits for the queue to drain (guarded by _out_cv)
        self._flushed = asyncio.Event()
        self._read_done = asyncio.Event()
        self._discard = False
        self._reader = threading.Thread(target=self._read_loop, name="reelsync-rx", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="reelsync-tx", daemon=True)
        self._reader.start()
        self._writer.start()

    def set_inline(self, handler: InlineHandler, gate: threading.Lock | None = None) -> None:
        """Have the reader thread hand every CHUNK and BATCH to ``handler``; on a short path,
        read large payloads holding ``gate`` (see the module)."""
        self._inline = handler
        if gate is not None and self.short_path and short_path_lanes() == 1:
            self._gate = gate  # with more cores, readers decrypt in parallel (not measured)

    # -- threads ---------------------------------------------------------------------------------
    def _call(self, fn: object, *args: object) -> bool:
        try:
            self._loop.call_soon_threadsafe(fn, *args)  # type: ignore[arg-type]
        except RuntimeError:  # the loop is gone
            return False
        return True

    def _read_loop(self) -> None:
        buf = bytearray(_READ_BUFFER)
        view = memoryview(buf)
        try:
            while True:
                with self._lock:
                    pending = self.conn.pending_chunk()
                    frame = self.conn.pending_frame()
                events: list[object] = []
                if pending is not None and pending[1] > _BIG_READ and not self._discard:
                    # a chunk's data, straight into its buffer
                    events.append(self._read_payload(*pending))
                elif frame is not None and frame[1] > _BIG_READ and not self._discard:
                    events.append(self._read_frame(*frame))  # another large frame, in one go
                if events and not self.sock.pending():
                    self._hand_over(events[0])
                    continue
                # what follows a large payload in its last TLS record (a FILE_END) is read
                # without waiting and handed over with it: one wake-up of the loop
                n = self._recv(view)
                data = view[:n]
                if self._discard:  # closing: drain until the peer closes too (no RST)
                    if n == 0:
                        return
                    continue
                with self._lock:
                    self.conn.receive_data(data if n else b"")
                    while not isinstance(ev := self.conn.next_event(), NeedData):
                        events.append(ev)
                        if isinstance(ev, ConnectionClosed):
                            break
                inline = self._inline
                if inline is not None:
                    events = [
                        inline(e, False) if isinstance(e, Chunk | Batch) else e for e in events
                    ]
                size = sum(_size(e) for e in events)
                if events:
                    with self._space:
                        self._queued += size
                    if not self._call(self._deliver, events):
                        return
                if n == 0:
                    return
                with self._space:
                    while self._queued > self._max_queued and not self._discard:
                        self._space.wait()
        except (OSError, ReelsyncError, ValueError) as exc:
            if not self._discard:
                self._call(self._lost, exc)
        except Exception as exc:  # a bug in the inline handler: end the stream, do not hang
            self._call(self._lost, exc)
            raise
        finally:
            with contextlib.suppress(OSError):
                self.sock.close()
            self._call(self._read_done.set)

    def _recv(self, view: memoryview) -> int:
        """One socket read into ``view``, paced by the receive limit (reader thread)."""
        limiter = self._read_limiter
        if limiter is None:
            return self.sock.recv_into(view)
        if limiter.rate is not None:
            view = view[:_LIMITED_READ]
        n = self.sock.recv_into(view)
        if n:
            limiter.take_blocking(n)
        return n

    def _recv_all(self, view: memoryview, pos: int, what: str) -> None:
        """Fill ``view[pos:]`` (a large payload). TLS hands over one 16 KiB record per read:
        without a receive limit the loop is kept short and the bytes are counted once, at the
        end (a limit set meanwhile is paid then)."""
        size = len(view)
        limiter = self._read_limiter
        if limiter is not None and limiter.rate is not None:
            while pos < size:
                k = self._recv(view[pos:])
                if k == 0:
                    raise ConnectionLostError(f"stream to {self.peer_name} closed mid-{what}")
                pos += k
            return
        start, read = pos, self._read_into
        while pos < size:
            k = read(size - pos, view[pos:])
            if k == 0:
                raise ConnectionLostError(f"stream to {self.peer_name} closed mid-{what}")
            pos += k
        if limiter is not None:
            limiter.take_blocking(size - start)

    def _read_payload(self, have: int, missing: int) -> object:
        size = have + missing
        inline = self._inline
        at = self._payload_at
        if inline is None:
            payload: bytearray | memoryview = bytearray(size)
        else:  # the handler is done with the chunk (or its Future is): reuse the buffer
            busy = self._payload_busy[at]
            if busy is not None:
                concurrent.futures.wait((busy,))
                self._payload_busy[at] = None
            if len(self._payload_bufs[at]) < size:
                self._payload_bufs[at] = aligned_buffer(size)
            payload = self._payload_bufs[at][:size]
        view = memoryview(payload)
        with self._gate:
            self._recv_all(view, have, "chunk")
        del view
        with self._lock:
            chunk = self.conn.receive_chunk_payload(payload, have)
        if inline is None:
            return chunk
        event = inline(chunk, True)
        if isinstance(event, concurrent.futures.Future):  # finishing elsewhere: read on
            self._payload_busy[at] = event
            self._payload_at = 1 - at
        return event

    def _read_frame(self, have: int, missing: int) -> object:
        """Read the rest of a large frame into the reused frame buffer and decode it from
        there: no copy into the Connection's buffer; with an inline handler, no copy of the
        batch entries either (the handler consumes them before the next read)."""
        size = have + missing
        if len(self._frame_buf) < size:  # with room to spare: batches differ a little in size
            self._frame_buf = bytearray(size + (size >> 3))
        body = memoryview(self._frame_buf)[:size]
        with self._gate:
            self._recv_all(body, have, "frame")
        inline = self._inline
        with self._lock:
            event: object = self.conn.receive_frame_body(body, have, copy=inline is None)
        if inline is not None and isinstance(event, Chunk | Batch):
            event = inline(event, False)
        del body
        return event

    def _hand_over(self, event: object) -> None:
        """Deliver one event to the loop, then wait while too much is queued."""
        queued = _size(event)
        with self._space:
            self._queued += queued
        self._call(self._deliver, [event])
        with self._space:
            while self._queued > self._max_queued and not self._discard:
                self._space.wait()

    def _write_loop(self) -> None:
        try:
            while True:
                with self._out_cv:
                    while not self._out and not self._closing:
                        self._out_cv.wait()
                    items = list(self._out)
                    self._out.clear()
                    if not items and self._closing:
                        break
                sent = 0
                small: list[bytes | memoryview] = []
                held = 0  # bytes in small
                sendall = self.sock.sendall
                for item in items:
                    if callable(item):  # what came before is written: its buffer is free
                        if small:
                            sendall(b"".join(small))
                            small, held = [], 0
                        item()
                        continue
                    size = len(item)
                    sent += size
                    if size < _COALESCE:
                        small.append(item)
                        held += size
                        continue
                    # a large buffer goes out in whole TLS records: its first bytes top up the
                    # small frames before it into a record, its last part-record waits for what
                    # follows (a chunk's header and its FILE_END share records with its data,
                    # not a record and a TCP segment each)
                    view = memoryview(item)
                    if small:
                        k = _RECORD - held % _RECORD
                        small.append(view[:k])
                        sendall(b"".join(small))
                        view = view[k:]
                    k = len(view) - len(view) % _RECORD
                    if k:
                        sendall(view[:k])
                    held = len(view) - k
                    small = [view[k:]] if held else []
                if held:
                    sendall(b"".join(small))
                with self._out_cv:
                    self._out_bytes -= sent
                    # wake the loop only for a sender waiting below the high-water mark: most
                    # writes have none, and each wake is a round through the event loop
                    wake = self._draining and self._out_bytes <= self._high_water
                    if wake:
                        self._draining = False
                if wake:
                    self._call(self._drained.set)
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)  # our half; the reader drains the peer's
        except (OSError, ValueError) as exc:
            self._call(self._lost, exc)
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        finally:
            self._call(self._flushed.set)

    # -- loop side -------------------------------------------------------------------------------
    def _deliver(self, events: list[object]) -> None:
        self._events.extend(events)
        self._wake()

    def _lost(self, exc: BaseException | None) -> None:
        if self._error is None:
            self._error = _lost_error(exc, self.peer_name)
        self._closed = True
        self._drained.set()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # One timer watches a stream's waits, not one per wait (asyncio.wait_for made a timer, a
    # future and callbacks for every event received): it is armed for the first wait's deadline
    # and, when it fires, ends the wait under way if that wait's deadline has come, else moves
    # on to it (or stops, when nobody waits). A wait still ends at its own deadline.
    def _arm(self, when: float) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self._watch = self._loop.call_at(when, self._watched, when)

    def _watched(self, when: float) -> None:
        self._watch = None
        waiter = self._waiter
        if waiter is None or waiter.done() or self._deadline == math.inf:
            return
        if self._deadline <= when:
            waiter.set_exception(TimeoutError())
        else:
            self._arm(self._deadline)

    async def recv(self, timeout: float | None = None) -> object:
        """The next event (or what the inline handler made of it); ConnectionClosed once the
        peer closed cleanly."""
        while not self._events:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise ConnectionLostError(f"stream to {self.peer_name} closed")
            self._waiter = waiter = self._loop.create_future()
            if timeout is None:
                self._deadline = math.inf
            else:
                self._deadline = deadline = self._loop.time() + timeout
                if self._watch is None or self._watch.when() > deadline:
                    self._arm(deadline)
            try:
                await waiter
            except TimeoutError as exc:
                self.abort()
                raise ConnectionLostError(
                    f"no word from {self.peer_name} for {timeout:.0f} s"
                ) from exc
            finally:
                self._waiter = None
        ev = self._events.popleft()
        size = _size(ev)
        with self._space:
            self._queued -= size
            if self._queued <= self._max_queued:
                self._space.notify()
        if isinstance(ev, concurrent.futures.Future):
            # what the handler finishes in another thread, in the stream's order; shielded: a
            # cancelled receive must not cancel it (the handler counts on it running)
            try:
                return await asyncio.shield(asyncio.wrap_future(ev))
            except Exception as exc:  # as when the handler raises in the reader thread
                self._lost(exc)
                raise _lost_error(exc, self.peer_name) from exc
        if isinstance(ev, ConnectionClosed):
            self._closed = True
        return ev

    async def send(
        self,
        event: Event,
        release: Callable[[], None] | None = None,
        *,
        then: Event | None = None,
    ) -> None:
        """Queue ``event`` (and ``then`` right after it, in the same writes: a chunk and its
        file's FILE_END) for the writer; waits while too much is queued already.

        Without ``release`` a frame's buffers that are not ``bytes`` are copied; with it they
        are sent as they are and the writer thread calls ``release()`` once they are written
        (the caller reuses the buffer then). ``release`` is not called if the stream fails."""
        self._check_open()
        with self._lock:
            bufs = self.conn.send(event)
            if then is not None:
                bufs += self.conn.send(then)
        await self._queue(bufs, release)

    async def send_batch(self, batch: BatchFrame, release: Callable[[], None]) -> None:
        """Queue a BATCH frame laid out in a reusable buffer; ``release`` as in :meth:`send`."""
        self._check_open()
        with self._lock:
            frame = self.conn.send_batch(batch)
        await self._queue([frame], release)

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closing or self._closed:
            raise ConnectionLostError(f"stream to {self.peer_name} is closed")

    async def _queue(
        self, bufs: list[bytes] | list[memoryview], release: Callable[[], None] | None
    ) -> None:
        with self._out_cv:
            if release is None:
                self._out.extend(bytes(b) if not isinstance(b, bytes) else b for b in bufs)
            else:
                self._out.extend(bufs)
                self._out.append(release)
            self._out_bytes += sum(len(b) for b in bufs)
            self._out_cv.notify()
        while True:
            with self._out_cv:
                if self._out_bytes <= self._high_water:
                    break
                self._drained.clear()
                self._draining = True
            await self._drained.wait()
            if self._error is not None:
                raise self._error

    def close(self) -> None:
        """Flush what is queued, then close."""
        with self._out_cv:
            self._closing = True
            self._out_cv.notify()
        self._release_reader()

    async def aclose(self, timeout: float = 10.0) -> None:
        """Flush what is queued, half-close, and wait (up to ``timeout``) for the peer to close
        its half, so no unread bytes turn the close into a reset that could eat our last frames."""
        self.close()
        try:
            await asyncio.wait_for(self._flushed.wait(), timeout)
            await asyncio.wait_for(self._read_done.wait(), timeout)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        """Close now, dropping anything queued."""
        with self._out_cv:
            self._closing = True
            self._out.clear()
            self._out_cv.notify()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._release_reader()

    def _release_reader(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        with self._space:
            self._closed = True
            self._discard = True
            self._space.notify_all()
