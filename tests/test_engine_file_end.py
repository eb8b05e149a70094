"""The end of a file on the wire, over real TCP and TLS on loopback: a chunk's header and its
file's FILE_END share TLS records with its data (no record of their own), the receiving stream
hands the chunk and the FILE_END that came with it to the loop in one wake-up, the chunk that
completes a file is not acked (its FILE_DONE follows) while the sender's progress still reaches
the file's size, with peers of every protocol version; and a stream's waits end at their own
deadlines with one timer per stream."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from reelsync.domain.chunks import chunk_checksum, file_digest
from reelsync.engine import Assignment, Engine, PeerAddress
from reelsync.engine import receiver as receiver_mod
from reelsync.engine.stream import FrameStream
from reelsync.errors import ConnectionLostError
from reelsync.fs import Volume
from reelsync.protocol import (
    Ack,
    Chunk,
    Connection,
    FileEnd,
    Hello,
    Side,
    Welcome,
)
from test_engine import SMALL, Gate, Recorder, pki, specs, tree, write
from test_engine_stream import SETTINGS, _tls_pair, _welcome

__all__ = ["pki"]  # the fixture, shared with test_engine

RECORD = 16 * 1024


def _read_exactly(sock, n: int) -> bytes:  # type: ignore[no-untyped-def]
    out = bytearray()
    while len(out) < n:
        got = sock.recv(n - len(out))
        assert got, "the stream closed early"
        out += got
    return bytes(out)


async def _dialer_stream(client, server, role: str) -> tuple[FrameStream, Connection]:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    stream = FrameStream(client, Side.DIALER, SETTINGS, loop)
    conns: list[Connection] = []
    welcome = threading.Thread(target=lambda: conns.append(_welcome(server, role)))
    welcome.start()
    await stream.send(Hello((4,), "s1", 0, 1, role))  # type: ignore[arg-type]
    assert isinstance(await stream.recv(30), Welcome)
    welcome.join(30)
    return stream, conns[0]


async def test_a_chunk_s_header_and_its_file_end_share_records_with_its_data(pki) -> None:
    """The header goes in the first record with the data's first bytes, and FILE_END in the
    record that carries the data's last bytes: the peer finds it there, already decrypted."""
    payload = os.urandom(300 * 1024)
    checksum = chunk_checksum(payload)
    released = threading.Event()
    with _tls_pair(pki) as (client, server):
        stream, conn = await _dialer_stream(client, server, "send")
        end = FileEnd(9, file_digest([checksum]))
        await stream.send(Chunk(9, 0, checksum, payload), released.set, then=end)
        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(None, server.recv, 1 << 20)
        assert len(first) == RECORD  # a whole record: the header did not go alone
        frame = 5 + 28 + len(payload)
        rest = await loop.run_in_executor(None, _read_exactly, server, frame - RECORD)
        assert server.pending() == 5 + 24  # FILE_END, in the chunk's last record
        tail = server.recv(64)
        conn.receive_data(first + rest + tail)  # the listener's side decodes them
        got = conn.next_event()
        assert isinstance(got, Chunk)
        assert bytes(got.data) == payload
        assert conn.next_event() == end
        assert released.wait(10)
        stream.abort()


async def test_a_chunk_and_the_file_end_with_it_reach_the_loop_in_one_wake_up(pki) -> None:
    payload = os.urandom(512 * 1024)  # read straight into its buffer (above 256 KiB)
    checksum = chunk_checksum(payload)
    with _tls_pair(pki) as (client, server):
        stream, conn = await _dialer_stream(client, server, "receive")
        stream.set_inline(lambda ev, _: ("written", ev.file_id, len(ev.data)))  # type: ignore[union-attr]
        deliveries: list[list[object]] = []
        deliver = stream._deliver

        def spy(events: list[object]) -> None:
            deliveries.append(list(events))
            deliver(events)

        stream._deliver = spy  # type: ignore[method-assign]
        end = FileEnd(7, file_digest([checksum]))
        frames = b"".join([*conn.send(Chunk(7, 0, checksum, payload)), *conn.send(end)])
        server.sendall(frames)  # one write: the peer's chunk and FILE_END, as a sender sends them
        assert await stream.recv(30) == ("written", 7, len(payload))
        assert await stream.recv(30) == end
        assert deliveries == [[("written", 7, len(payload)), end]]
        stream.abort()


async def test_a_stream_cut_in_a_large_payload_is_lost(pki) -> None:
    """A large payload is read with the TLS object's own read: a peer gone in its middle
    without TLS's close_notify (a ragged end) is a lost stream (retried), never a short
    chunk."""
    payload = os.urandom(512 * 1024)
    with _tls_pair(pki) as (client, server):
        stream, conn = await _dialer_stream(client, server, "receive")
        stream.set_inline(lambda ev, _: ("written", ev.file_id, len(ev.data)))  # type: ignore[union-attr]
        frame = b"".join(conn.send(Chunk(7, 0, chunk_checksum(payload), payload)))
        server.sendall(frame[: len(frame) // 2])
        server.shutdown(socket.SHUT_RDWR)  # no close_notify
        with pytest.raises(ConnectionLostError):
            await stream.recv(30)
        stream.abort()


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython's ssl internals")
async def test_payloads_are_read_with_the_tls_objects_own_read_on_cpython(pki) -> None:
    """On CPython the stream reads a large payload through the TLS object's own ``read`` (a
    private attribute of ``ssl.SSLSocket``, with ``recv_into`` as the fallback): a Python whose
    ``ssl`` drops it still works, only slower, and this says so."""
    with _tls_pair(pki) as (client, server):
        stream, _ = await _dialer_stream(client, server, "receive")
        read = stream._read_into
        assert getattr(read, "__self__", None) is client._sslobj, read
        stream.abort()


async def test_a_stream_s_waits_end_at_their_own_deadlines(pki) -> None:
    """One timer watches a stream's waits: a wait ends after its own timeout (not a longer
    earlier one's), a wait answered in time is not ended by an earlier wait's timer, and a wait
    without a timeout never ends for lack of data."""
    with _tls_pair(pki) as (client, server):
        stream, conn = await _dialer_stream(client, server, "receive")
        loop = asyncio.get_running_loop()

        def later(delay: float, file_id: int) -> None:
            frame = b"".join(conn.send(FileEnd(file_id, bytes(16))))
            loop.call_later(delay, lambda: server.sendall(frame))

        later(0.05, 1)
        assert (await stream.recv(30)).file_id == 1  # type: ignore[attr-defined]
        # answered within each wait's 0.5 s, but 0.6 s after the first wait began
        for i in (2, 3):
            later(0.3, i)
            assert (await stream.recv(0.5)).file_id == i  # type: ignore[attr-defined]
        later(0.6, 4)  # no timeout: the timer armed for the waits before does not end it
        assert (await stream.recv(None)).file_id == 4  # type: ignore[attr-defined]
        t0 = time.monotonic()
        with pytest.raises(ConnectionLostError, match="no word from"):
            await stream.recv(0.3)  # after a 30 s wait's timer: ends at 0.3 s all the same
        assert 0.25 <= time.monotonic() - t0 < 5


@pytest.mark.parametrize(("dialer_max", "listener_max"), [(4, 4), (4, 3), (3, 4), (1, 4), (4, 1)])
async def test_the_chunk_that_completes_a_file_is_not_acked(
    tmp_path: Path, pki, monkeypatch: pytest.MonkeyPatch, dialer_max: int, listener_max: int
) -> None:
    """Whatever version the peers speak (a sender uses acks for progress only, in every
    version): every chunk is acked but the one that completes its file, every file arrives,
    and the sender's progress still reaches each file's size before its result."""
    acked: list[tuple[int, int]] = []

    def ack(items: tuple[tuple[int, int], ...]) -> Ack:
        acked.extend(items)
        return Ack(items)

    monkeypatch.setattr(receiver_mod, "Ack", ack)
    hq, lon, _ = pki
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    dialer = Engine(
        replace(SMALL, protocol_max=dialer_max),
        client_ssl=hq.client(),
        volumes={"proj": Volume("proj", src)},
    )
    listening = Engine(
        replace(SMALL, protocol_max=listener_max),
        server_ssl=lon.server(),
        volumes={"proj": Volume("proj", dst)},
    )
    gate = Gate({"proj": Volume("proj", dst)})
    server = await listening.serve("127.0.0.1", 0, gate)
    files = {
        "reel.mov": os.urandom(4 * 64 * 1024 + 5),  # five chunks
        "plate.exr": os.urandom(40_000),  # one chunk (above the small-file size)
    }
    for rel, data in files.items():
        write(src, rel, data)
    rec = Recorder()
    job = Assignment("t1", PeerAddress("127.0.0.1", server.port), specs(sorted(files)), "ticket-ok")
    results = await dialer.push(job, rec)
    assert [r.status for r in results] == ["done", "done"], results
    assert tree(dst) == files
    ids = {r.key: r for r in results}
    assert set(ids) == {"t-plate.exr", "t-reel.mov"}
    by_file: dict[int, list[int]] = {}
    for fid, index in acked:
        by_file.setdefault(fid, []).append(index)
    counts = sorted(len(v) for v in by_file.values())
    assert counts == [4], by_file  # reel.mov: 4 of its 5 chunks; plate.exr: none
    for key, size in (("t-reel.mov", len(files["reel.mov"])), ("t-plate.exr", 40_000)):
        assert (key, size, size) in rec.progress, rec.progress
    await dialer.aclose()
    await listening.aclose()
