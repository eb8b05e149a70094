"""A receiving stream reads the next chunk while the last one is being written: an inline handler
may finish a large chunk in another thread (a Future) and the reader goes on into the stream's
second payload buffer; a buffer is reused only once the work on its chunk is done, and the loop
gets the outcomes in the stream's order, whatever order the work ends in. Over real TCP and TLS
on loopback."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading

import pytest

from reelsync.domain.chunks import chunk_checksum
from reelsync.errors import ProtocolError
from reelsync.protocol import Batch, Chunk, FileEnd
from test_engine import pki
from test_engine_file_end import _dialer_stream
from test_engine_stream import _tls_pair
from test_fs_direct import _address

__all__ = ["pki"]  # the fixture, shared with test_engine

SIZE = 512 * 1024  # read straight into a payload buffer (above 256 KiB)


class _Deferring:
    """An inline handler finishing each large chunk in a pool thread once it is let go."""

    def __init__(self, workers: int = 4) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)
        self.go = [threading.Event() for _ in range(8)]
        self.handed: list[tuple[int, bool, int]] = []  # (file id, deferrable, buffer address)
        self.seen = threading.Condition()
        self.intact: dict[int, bool] = {}  # the chunk's bytes were whole when its work ran
        self.fail: int | None = None  # the file id whose work raises

    def __call__(self, ev: Chunk | Batch, deferrable: bool) -> object:
        assert isinstance(ev, Chunk)
        with self.seen:
            where = _address(ev.data) if deferrable else 0  # type: ignore[arg-type]  # else read-only
            self.handed.append((ev.file_id, deferrable, where))
            self.seen.notify_all()
        if not deferrable:
            return ("inline", ev.file_id)
        return self.pool.submit(self._work, ev)

    def _work(self, ev: Chunk) -> object:
        assert self.go[ev.file_id].wait(30)
        if ev.file_id == self.fail:
            raise ProtocolError(f"chunk of unknown file {ev.file_id}", remote=True)
        self.intact[ev.file_id] = chunk_checksum(ev.data) == ev.checksum
        return ("written", ev.file_id)

    def wait_handed(self, n: int) -> None:
        with self.seen:
            assert self.seen.wait_for(lambda: len(self.handed) >= n, 30), self.handed


def _chunks(conn, ids: list[int]) -> bytes:  # type: ignore[no-untyped-def]
    out = []
    for fid in ids:
        payload = os.urandom(SIZE)
        out += conn.send(Chunk(fid, 0, chunk_checksum(payload), payload))
    return b"".join(out)


@contextlib.asynccontextmanager
async def _receiving(pki, handler: _Deferring):  # type: ignore[no-untyped-def]
    """A receiving stream with ``handler`` inline, the peer's Connection, and ``send``: the
    peer's bytes sent from a thread (the reader may hold back, the socket buffers are small)."""
    with _tls_pair(pki) as (client, server):
        stream, conn = await _dialer_stream(client, server, "receive")
        stream.set_inline(handler)
        sender = threading.Thread()

        def send(data: bytes) -> None:
            nonlocal sender
            sender = threading.Thread(target=server.sendall, args=(data,), daemon=True)
            sender.start()

        try:
            yield stream, conn, send
        finally:
            for go in handler.go:
                go.set()
            stream.abort()
            handler.pool.shutdown()
            if sender.is_alive():
                sender.join(30)


async def test_the_next_chunk_is_read_while_the_last_one_is_written(pki) -> None:
    handler = _Deferring()
    async with _receiving(pki, handler) as (stream, conn, send):
        end = FileEnd(2, b"\0" * 16)
        send(_chunks(conn, [0, 1, 2]) + b"".join(conn.send(end)))
        loop = asyncio.get_running_loop()
        # chunk 1 is read into the second buffer while chunk 0's work has not even begun
        await loop.run_in_executor(None, handler.wait_handed, 2)
        (f0, d0, a0), (f1, d1, a1) = handler.handed
        assert (f0, f1, d0, d1) == (0, 1, True, True)
        assert a0 != a1
        # chunk 2 needs chunk 0's buffer: it waits until chunk 0's work is done
        await asyncio.sleep(0.3)
        assert len(handler.handed) == 2
        handler.go[1].set()  # chunk 1 finishes first: the loop still hears chunk 0 first
        handler.go[0].set()
        await loop.run_in_executor(None, handler.wait_handed, 3)
        assert handler.handed[2][2] == a0  # the buffer of chunk 0, reused
        handler.go[2].set()
        got = [await stream.recv(30) for _ in range(4)]
        assert got == [("written", 0), ("written", 1), ("written", 2), end]
        assert handler.intact == {0: True, 1: True, 2: True}  # no buffer reused too early


async def test_a_failure_in_the_work_ends_the_stream_with_its_error(pki) -> None:
    handler = _Deferring()
    handler.fail = 0
    handler.go[0].set()
    async with _receiving(pki, handler) as (stream, conn, send):
        send(_chunks(conn, [0]))
        with pytest.raises(ProtocolError, match="chunk of unknown file 0"):
            await stream.recv(30)
        with pytest.raises(ProtocolError):  # the stream stays failed
            await stream.recv(30)


async def test_a_cancelled_receive_leaves_the_work_running(pki) -> None:
    """The handler counts its work as running (a session waits for it before closing files):
    a receive cancelled while it waits for the outcome must not cancel the work, even one not
    started yet (here the pool's one thread is busy)."""
    handler = _Deferring(workers=1)
    busy = threading.Event()
    handler.pool.submit(busy.wait, 30)
    async with _receiving(pki, handler) as (stream, conn, send):
        send(_chunks(conn, [0]))
        await asyncio.get_running_loop().run_in_executor(None, handler.wait_handed, 1)
        while not stream._events:  # the Future, handed to the loop
            await asyncio.sleep(0.01)
        receive = asyncio.ensure_future(stream.recv(30))
        while stream._events:  # until the receive took it and waits on it
            await asyncio.sleep(0.01)
        assert not receive.done()
        receive.cancel()
        with pytest.raises(asyncio.CancelledError):
            await receive
        handler.go[0].set()
        busy.set()
        handler.pool.shutdown(wait=True)
        assert handler.intact == {0: True}  # it ran, after the receive was cancelled


async def test_small_chunks_are_not_deferrable(pki) -> None:
    """A chunk decoded from the stream's read buffer (below 256 KiB) is overwritten by the next
    read: the handler is told it must finish it before returning."""
    handler = _Deferring()
    async with _receiving(pki, handler) as (stream, conn, send):
        payload = os.urandom(64 * 1024)
        send(b"".join(conn.send(Chunk(5, 0, chunk_checksum(payload), payload))))
        assert await stream.recv(30) == ("inline", 5)
        assert handler.handed[0][:2] == (5, False)
