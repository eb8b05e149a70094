"""A stream's send queue follows the path (engine/pathsize.py ``send_queue``), over real TCP and
TLS on loopback: on a short path a sender queues two chunks and more before it waits; on a long
path about a frame, so a stream whose peer stops taking data holds back little, and a whole
session still moves every file. The long path is loopback with the kernel's round trip read as
50 ms."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from reelsync.engine import Assignment, EngineSettings, PeerAddress
from reelsync.engine import engine as engine_mod
from reelsync.engine import stream as stream_mod
from reelsync.engine.pathsize import LONG_PATH_QUEUE, send_queue
from reelsync.engine.stream import FrameStream, tune_socket
from reelsync.protocol import Chunk, Connection, Hello, NeedData, Side, Welcome
from test_engine import SMALL, pki, specs, start_pair, tree, write

__all__ = ["pki"]  # the fixture, shared with test_engine

FRAME = 512 * 1024
SETTINGS = EngineSettings(socket_buffer=64 * 1024)  # 4 MiB chunks; small kernel buffers


def test_the_send_queue_follows_the_path() -> None:
    deep = 2 * SETTINGS.chunk_size + (1 << 20)
    assert send_queue(SETTINGS, None) == deep  # unknown round trip: as before
    assert send_queue(SETTINGS, 0.0002) == deep  # loopback, a LAN
    assert send_queue(SETTINGS, 0.05) == LONG_PATH_QUEUE == 1 << 20
    assert send_queue(SETTINGS, 0.2) == LONG_PATH_QUEUE


@contextmanager
def _tls_pair(pki_files: tuple) -> Iterator[tuple[ssl.SSLSocket, ssl.SSLSocket]]:
    """A connected client/server TLS socket pair on loopback, both with small buffers."""
    hq, lon, _ = pki_files
    listener = socket.create_server(("127.0.0.1", 0))
    raw = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    listener.close()
    for s in (raw, accepted):
        tune_socket(s, SETTINGS)
    server: list[ssl.SSLSocket] = []
    shake = threading.Thread(
        target=lambda: server.append(lon.server().wrap_socket(accepted, server_side=True))
    )
    shake.start()
    client = hq.client().wrap_socket(raw, server_hostname="127.0.0.1")
    shake.join(30)
    try:
        yield client, server[0]
    finally:
        client.close()
        server[0].close()


def _welcome(server: ssl.SSLSocket, role: str | None = None) -> Connection:
    """The listener's side of the handshake, by hand: read the Hello (of ``role``, when given),
    answer Welcome, then read nothing more (until the test drains the stream); the listener's
    Connection, to go on by hand."""
    conn = Connection(Side.LISTENER)
    while True:
        conn.receive_data(server.recv(64 * 1024))
        ev = conn.next_event()
        if not isinstance(ev, NeedData):
            assert isinstance(ev, Hello), ev
            assert role is None or ev.role == role, ev
            break
    server.sendall(b"".join(conn.send(Welcome(4, ev.session, 0))))
    return conn


async def _frames_taken(
    monkeypatch: pytest.MonkeyPatch, pki_files: tuple, rtt: float, peer_reads: bool
) -> tuple[int, int]:
    """Send 30 chunk frames of 512 KiB on a stream over a path of round trip ``rtt`` whose peer
    reads nothing at first: how many ``send`` calls returned while the peer read nothing (once
    the sender waits, or all 30 did), and, the peer then reading everything, how many in all."""
    monkeypatch.setattr(stream_mod, "path_rtt", lambda sock: rtt)
    loop = asyncio.get_running_loop()
    sent = 0
    with _tls_pair(pki_files) as (client, server):
        stream = FrameStream(client, Side.DIALER, SETTINGS, loop)
        welcome = threading.Thread(target=_welcome, args=(server,))
        welcome.start()
        await stream.send(Hello((4,), "s1", 0, 1, "send"))
        assert isinstance(await stream.recv(30), Welcome)
        welcome.join(30)
        payload = os.urandom(FRAME)

        async def sender() -> None:
            nonlocal sent
            for i in range(30):
                await stream.send(Chunk(1, i, bytes(16), payload))
                sent += 1

        task = asyncio.ensure_future(sender())
        # the queue fills without the peer: wait until the sender waits (or sent everything)
        deadline = time.monotonic() + 30
        last, still = -1, 0
        while not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            still = still + 1 if sent == last else 0
            last = sent
            if still >= 10:  # no send returned for 0.5 s: the sender waits for the peer
                break
        before = sent
        if task.done():
            task.result()  # a failed send fails the test with its error
        got = 0
        if peer_reads:
            want = 30 * FRAME

            def drain() -> None:
                nonlocal got
                buf = bytearray(1 << 20)
                while got < want:
                    n = server.recv_into(buf)
                    if not n:
                        return
                    got += n

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            await asyncio.wait_for(task, 60)
            await asyncio.get_running_loop().run_in_executor(None, reader.join, 60)
            assert got >= 30 * FRAME  # every frame reached the peer
        else:
            task.cancel()
        stream.abort()
        await asyncio.gather(task, return_exceptions=True)
    return before, sent


async def test_a_stream_on_a_short_path_queues_two_chunks_and_more(
    monkeypatch: pytest.MonkeyPatch, pki
) -> None:
    before, _ = await _frames_taken(monkeypatch, pki, 0.0001, peer_reads=False)
    assert before * FRAME >= 2 * SETTINGS.chunk_size, before  # 8 MiB and more queued, not sent


async def test_a_stream_on_a_long_path_queues_about_a_frame(
    monkeypatch: pytest.MonkeyPatch, pki
) -> None:
    """The peer takes nothing: the sender waits once about 1 MiB is queued (plus what the small
    kernel buffers took), not after 9 MiB; then every frame still arrives."""
    before, after = await _frames_taken(monkeypatch, pki, 0.05, peer_reads=True)
    assert before <= LONG_PATH_QUEUE // FRAME + 2, before  # 1 MiB queued + one frame written
    assert after == 30


async def test_a_session_on_a_long_path_moves_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki
) -> None:
    """Every stream of a session on a long path carries data through its short queue: chunked
    files, one-chunk files and batches all arrive."""
    monkeypatch.setattr(stream_mod, "path_rtt", lambda sock: 0.05)
    monkeypatch.setattr(engine_mod, "path_rtt", lambda sock: 0.05)
    settings = replace(SMALL, chunk_size=256 * 1024)
    dialer, listening, _gate, port, src, dst = await start_pair(tmp_path, pki, settings)
    files = {f"plate/f.{i:04d}.exr": os.urandom(200_000 + i) for i in range(24)}
    files["reel.mov"] = os.urandom(3 * 1024 * 1024 + 5)  # 13 chunks over the streams
    files.update({f"small/s{i}.json": os.urandom(3_000 + i) for i in range(40)})
    for rel, data in files.items():
        write(src, rel, data)
    job = Assignment("t1", PeerAddress("127.0.0.1", port), specs(sorted(files)), "ticket-ok")
    results = await dialer.push(job)
    assert [r.status for r in results] == ["done"] * len(files), results
    assert tree(dst) == files
    await dialer.aclose()
    await listening.aclose()
