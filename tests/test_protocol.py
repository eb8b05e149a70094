"""The data-plane protocol, sans-I/O: two connections joined in memory."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reelsync.protocol as p
from reelsync.errors import ConnectionLostError, DiskFullError, ProtocolError
from reelsync.protocol import (
    NEED_DATA,
    Ack,
    Batch,
    BatchEntry,
    Bye,
    Chunk,
    Connection,
    ConnectionClosed,
    Event,
    Failure,
    FileAbort,
    FileDone,
    FileEnd,
    FileOutcome,
    Hello,
    Manifest,
    ManifestEntry,
    Nack,
    Plan,
    PlanEntry,
    Side,
    State,
    Want,
    WantEntry,
    Welcome,
    choose_version,
    chunk_checksum,
    chunk_count,
    chunk_span,
    file_digest,
)


def pump(src: Connection, dst: Connection, event: Event, *, split: int = 0) -> list[Event]:
    """Send ``event`` from ``src``; feed the bytes to ``dst`` (in ``split``-byte pieces)."""
    wire = b"".join(bytes(b) for b in src.send(event))
    if split:
        for i in range(0, len(wire), split):
            dst.receive_data(wire[i : i + split])
    else:
        dst.receive_data(wire)
    out = []
    while (ev := dst.next_event()) is not NEED_DATA:
        assert not isinstance(ev, p.NeedData)
        out.append(ev)
    return out


def handshake(role: p.Role = "send", stream: int = 0) -> tuple[Connection, Connection]:
    dialer, listener = Connection(Side.DIALER), Connection(Side.LISTENER)
    hello = Hello((1, 7), "s1", stream, 4, role, ticket="t")
    assert pump(dialer, listener, hello) == [hello]
    version = choose_version(listener.hello.versions if listener.hello else (), (1,))
    assert version == 1
    assert pump(listener, dialer, Welcome(1, "s1", stream)) == [Welcome(1, "s1", stream)]
    assert dialer.state is listener.state is State.OPEN
    return dialer, listener


def test_public_api_is_pinned() -> None:
    assert "Connection" in p.__all__
    assert "NeedData" in p.__all__
    assert sorted(p.__all__) == sorted(set(p.__all__))
    for name in p.__all__:
        assert hasattr(p, name)


def test_handshake_negotiates_highest_common_version() -> None:
    assert choose_version((1, 2, 3), (2, 3, 4)) == 3
    assert choose_version((5,), (1,)) is None
    dialer, listener = handshake()
    assert dialer.role == "send"
    assert listener.role == "receive"
    assert dialer.version == listener.version == 1
    assert listener.session == "s1"
    assert listener.stream == 0
    assert listener.streams == 4


def test_welcome_with_an_unoffered_version_is_refused() -> None:
    dialer, listener = Connection(Side.DIALER), Connection(Side.LISTENER, versions=(1, 2))
    pump(dialer, listener, Hello((1,), "s", 0, 1, "send"))
    with pytest.raises(ProtocolError) as info:
        listener.send(Welcome(2, "s", 0))
    assert not info.value.remote


def test_no_common_version_ends_with_failure() -> None:
    dialer, listener = Connection(Side.DIALER), Connection(Side.LISTENER)
    pump(dialer, listener, Hello((9,), "s", 0, 1, "send"))
    assert choose_version((9,), listener.versions) is None
    [ev] = pump(listener, dialer, Failure("protocol", "no common protocol version"))
    assert isinstance(ev, Failure)
    assert dialer.state is State.CLOSED
    with pytest.raises(ProtocolError):
        dialer.send(Bye())


def test_frames_before_handshake_are_protocol_errors() -> None:
    dialer, listener = Connection(Side.DIALER), Connection(Side.LISTENER)
    with pytest.raises(ProtocolError):
        dialer.send(Manifest(4, ()))
    raw = Connection(Side.DIALER)
    raw._hello_sent = True  # a broken peer that skips its Hello
    raw.state = State.OPEN
    raw.role = "send"
    raw.stream = 0
    listener.receive_data(b"".join(raw.send(Manifest(4, ()))))
    with pytest.raises(ProtocolError) as info:
        listener.next_event()
    assert info.value.remote


def test_direction_and_primary_stream_rules() -> None:
    dialer, listener = handshake("send")
    with pytest.raises(ProtocolError):
        dialer.send(Ack(((1, 0),)))  # acks come from the receiver
    with pytest.raises(ProtocolError):
        listener.send(Chunk(1, 0, b"0" * 16, b"x"))  # chunks come from the sender
    with pytest.raises(ProtocolError):
        listener.send(Plan(()))  # a plan must answer a manifest
    with pytest.raises(ProtocolError):
        listener.send(Want(()))  # only a pulling dialer wants
    secondary, _ = handshake("send", stream=2)
    with pytest.raises(ProtocolError):
        secondary.send(Manifest(4, ()))
    secondary.send(Chunk(1, 0, chunk_checksum(b"x"), b"x"))  # data may use any stream


def test_pull_session_want_then_manifest() -> None:
    receiver, sender = handshake("receive")
    assert sender.role == "send"
    want = Want((WantEntry(0, "proj", "a/b.exr", "proj", "a/b.exr"),))
    assert pump(receiver, sender, want) == [want]
    with pytest.raises(ProtocolError):
        receiver.send(want)
    man = Manifest(8, (ManifestEntry(0, "proj", "a/b.exr", 10, 123, 0o644),))
    assert pump(sender, receiver, man) == [man]


def test_every_frame_roundtrips_even_byte_by_byte() -> None:
    sender, receiver = handshake("send")
    data = os.urandom(100)
    events: list[tuple[Connection, Connection, Event]] = [
        (
            sender,
            receiver,
            Manifest(
                64,
                (
                    ManifestEntry(0, "v", "a/é.bin", 100, 1_700_000_000_123_456_789, 0o640),
                    ManifestEntry(1, "v", "b", 0, 1, 0o600, "not_found", "gone"),
                ),
            ),
        ),
        (
            receiver,
            sender,
            Plan(
                (
                    PlanEntry(0, "send", ((0, chunk_checksum(data[:64])),)),
                    PlanEntry(1, "fail", (), "not_found", "gone"),
                )
            ),
        ),
        (sender, receiver, Chunk(0, 1, chunk_checksum(data[64:]), data[64:])),
        (
            sender,
            receiver,
            Batch((BatchEntry(3, chunk_checksum(b""), b""), BatchEntry(4, b"c" * 16, b"abc"))),
        ),
        (sender, receiver, FileEnd(0, file_digest([b"a" * 16]))),
        (sender, receiver, FileAbort(5, "integrity", "source changed")),
        (receiver, sender, Ack(((0, 1), (2**40, 7)))),
        (receiver, sender, Nack(((0, 0),))),
        (
            receiver,
            sender,
            FileDone(
                (
                    FileOutcome(0, True, digest=b"d" * 16),
                    FileOutcome(1, False, code="disk_full", message="full"),
                    FileOutcome(2, True, skipped=True),
                )
            ),
        ),
        (sender, receiver, Bye()),
    ]
    for src, dst, ev in events:
        assert pump(src, dst, ev, split=1 if not isinstance(ev, Chunk) else 7) == [ev]
    assert sender.state is State.CLOSED
    assert receiver.state is State.CLOSED


def test_eof_mid_frame_and_clean_eof() -> None:
    sender, receiver = handshake()
    wire = b"".join(sender.send(Chunk(0, 0, chunk_checksum(b"abc"), b"abc")))
    receiver.receive_data(wire[:-1])
    assert receiver.next_event() is NEED_DATA
    receiver.receive_data(b"")
    with pytest.raises(ProtocolError):
        receiver.next_event()
    _, listener = handshake()
    listener.receive_data(b"")
    assert isinstance(listener.next_event(), ConnectionClosed)


def test_sending_on_a_stream_the_peer_closed_is_a_lost_connection_not_a_rule_broken() -> None:
    # a sender whose reader saw the receiver vanish (killed: end of stream) may still be about to
    # send a chunk: that is a peer gone, to retry and resume, not a protocol error failing the file
    sender, receiver = handshake()
    sender.receive_data(b"")
    assert isinstance(sender.next_event(), ConnectionClosed)
    with pytest.raises(ConnectionLostError) as lost:
        sender.send(Chunk(0, 0, chunk_checksum(b"abc"), b"abc"))
    assert lost.value.retryable
    # after the peer's Failure: the error it carries
    sender, receiver = handshake()
    pump(receiver, sender, Failure("disk_full", "full"))
    with pytest.raises(DiskFullError, match="full"):
        sender.send(Chunk(0, 0, chunk_checksum(b"abc"), b"abc"))
    # a stream this side closed stays a rule broken, even once the peer closed its half too
    sender, receiver = handshake()
    pump(sender, receiver, Bye())
    sender.receive_data(b"")
    assert isinstance(sender.next_event(), ConnectionClosed)
    with pytest.raises(ProtocolError):
        sender.send(Chunk(0, 0, chunk_checksum(b"abc"), b"abc"))


@pytest.mark.parametrize(
    "wire",
    [
        b"\x00\x00\x00\x02\x01{}",  # hello without magic
        b"\x00\x00\x00\x01\x7f{",  # unknown type
        b"\xff\xff\xff\xff\x10",  # oversized
        b"\x00\x00\x00\x03\x01abc",  # not JSON
    ],
)
def test_garbage_is_a_remote_protocol_error(wire: bytes) -> None:
    listener = Connection(Side.LISTENER)
    listener.receive_data(wire)
    with pytest.raises(ProtocolError) as info:
        listener.next_event()
    assert info.value.remote


@given(st.integers(0, 10_000), st.integers(1, 512))
def test_chunks_cover_the_file_exactly(size: int, chunk_size: int) -> None:
    n = chunk_count(size, chunk_size)
    spans = [chunk_span(size, chunk_size, i) for i in range(n)]
    assert sum(length for _, length in spans) == size
    assert all(off == i * chunk_size for i, (off, _) in enumerate(spans))
    assert all(length > 0 for _, length in spans) or size == 0


class MemoryReceiver:
    """A minimal receiving side driven by events: verifies checksums, nacks bad chunks, offers
    resume from the chunks it holds."""

    def __init__(self, chunk_size: int, held: dict[int, bytes] | None = None) -> None:
        self.chunk_size = chunk_size
        self.chunks: dict[int, bytes] = dict(held or {})
        self.nacked = 0
        self.ended: bytes | None = None

    def plan(self, man: Manifest) -> Plan:
        have = tuple((i, chunk_checksum(d)) for i, d in sorted(self.chunks.items()))
        return Plan(tuple(PlanEntry(m.id, "send", have) for m in man.files))

    def on(self, ev: Event) -> list[Event]:
        if isinstance(ev, Chunk):
            if chunk_checksum(ev.data) != ev.checksum:
                self.nacked += 1
                return [Nack(((ev.file_id, ev.index),))]
            self.chunks[ev.index] = ev.data
            return [Ack(((ev.file_id, ev.index),))]
        if isinstance(ev, FileEnd):
            digest = file_digest(chunk_checksum(self.chunks[i]) for i in sorted(self.chunks))
            assert digest == ev.digest
            self.ended = b"".join(self.chunks[i] for i in sorted(self.chunks))
            return [FileDone((FileOutcome(ev.file_id, True, digest=digest),))]
        return []


def run_session(
    source: bytes, receiver: MemoryReceiver, corrupt: set[int]
) -> tuple[int, list[Event]]:
    """Push ``source`` over two streams joined in memory; returns (chunks sent, sender's events)."""
    cs = receiver.chunk_size
    s0, r0 = handshake("send", stream=0)
    s1, r1 = handshake("send", stream=1)
    [man] = pump(s0, r0, Manifest(cs, (ManifestEntry(0, "v", "f", len(source), 1, 0o644),)))
    assert isinstance(man, Manifest)
    [plan] = pump(r0, s0, receiver.plan(man))
    assert isinstance(plan, Plan)
    n = chunk_count(len(source), cs)
    sums = [chunk_checksum(source[i * cs : (i + 1) * cs]) for i in range(n)]
    skip = {i for i, c in plan.files[0].have if c == sums[i]}
    queue = [i for i in range(n) if i not in skip]
    sent = 0
    back: list[Event] = []
    while queue:
        i = queue.pop(0)
        data = source[i * cs : (i + 1) * cs]
        if i in corrupt:
            corrupt.discard(i)
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        sender, recv = (s0, r0) if i % 2 == 0 else (s1, r1)
        [ev] = pump(sender, recv, Chunk(0, i, sums[i], data))
        sent += 1
        for reply in receiver.on(ev):
            got = pump(recv, sender, reply)
            back.extend(got)
            queue.extend(idx for e in got if isinstance(e, Nack) for _, idx in e.items)
    [end] = pump(s1, r1, FileEnd(0, file_digest(sums)))
    for reply in receiver.on(end):
        back.extend(pump(r1, s1, reply))
    assert pump(s0, r0, Bye()) == [Bye()]
    return sent, back


def test_corrupted_chunk_is_nacked_and_resent() -> None:
    source = os.urandom(1000)
    receiver = MemoryReceiver(chunk_size=128)
    sent, back = run_session(source, receiver, corrupt={3})
    assert receiver.ended == source
    assert receiver.nacked == 1
    assert sent == chunk_count(1000, 128) + 1
    assert Nack(((0, 3),)) in back
    assert isinstance(back[-1], FileDone)
    assert back[-1].results[0].ok


def test_resume_offers_skip_verified_chunks_and_resend_stale_ones() -> None:
    source = os.urandom(1000)
    held = {0: source[:128], 1: source[128:256], 2: b"stale" * 25 + b"xxx"}
    receiver = MemoryReceiver(chunk_size=128, held=held)
    sent, _ = run_session(source, receiver, corrupt=set())
    assert receiver.ended == source
    assert sent == chunk_count(1000, 128) - 2  # chunk 2 did not match the source: sent again


@pytest.mark.parametrize("copy", [True, False])
def test_a_large_frame_body_can_be_read_into_the_callers_buffer(copy: bool) -> None:
    dialer, listener = handshake("send")
    files = [os.urandom(n) for n in (5, 70_000, 0, 1234)]
    batch = Batch(tuple(BatchEntry(i, chunk_checksum(d), d) for i, d in enumerate(files)))
    wire = b"".join(bytes(b) for b in dialer.send(batch))
    listener.receive_data(wire[:100])  # the header and a little of the body
    assert listener.next_event() is NEED_DATA
    pending = listener.pending_frame()
    assert pending is not None
    have, missing = pending
    assert (have, missing) == (95, len(wire) - 100)
    body = bytearray(have + missing)
    body[have:] = wire[100:]
    got = listener.receive_frame_body(body, have, copy=copy)
    assert isinstance(got, Batch)
    assert [bytes(e.data) for e in got.entries] == files
    assert all(isinstance(e.data, bytes) == copy for e in got.entries)
    assert listener.pending_frame() is None
    assert listener.next_event() is NEED_DATA
    with pytest.raises(ProtocolError):
        listener.receive_frame_body(bytearray(3), 0)  # nothing pending
    assert pump(dialer, listener, FileEnd(1, b"d" * 16)) == [FileEnd(1, b"d" * 16)]


def test_a_batch_laid_out_in_place_is_the_same_frame() -> None:
    """BatchFrame: small files read straight into their place in one buffer make the bytes
    encode_event makes of the same Batch, and pass the same direction rules."""
    files = [(7, b"alpha" * 900), (8, b""), (9, os.urandom(3000))]
    entries = tuple(BatchEntry(fid, chunk_checksum(data), data) for fid, data in files)
    dialer, listener = handshake("send")
    buf = bytearray(p.BatchFrame.room(3, sum(len(d) for _, d in files)) + 50)
    batch = p.BatchFrame(buf)
    for fid, data in files:
        slot = batch.slot(len(data) + 1)  # one byte more, as a reader checking growth does
        slot[: len(data)] = data
        batch.commit(fid, len(data), chunk_checksum(data))
    wire = bytes(dialer.send_batch(batch))
    assert wire == b"".join(bytes(b) for b in dialer.send(Batch(entries)))
    listener.receive_data(wire)
    assert listener.next_event() == Batch(entries)
    with pytest.raises(ProtocolError):
        listener.send_batch(p.BatchFrame(bytearray(64)))  # batches come from the sender
