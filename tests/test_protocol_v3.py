"""Protocol version 3, sans-I/O: sessions kept open (several Wants, tickets, Bye from the
dialer) and the binary MANIFEST and FILE_DONE bodies; versions 1-2 keep their JSON."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelsync.errors import ProtocolError
from reelsync.protocol import (
    Bye,
    Connection,
    FileDone,
    FileOutcome,
    Hello,
    Manifest,
    ManifestEntry,
    Plan,
    Side,
    Want,
    WantEntry,
    Welcome,
)
from reelsync.protocol.codec import HEADER, decode_body, encode_event
from test_protocol import pump


def opened(role: str = "send", version: int = 3) -> tuple[Connection, Connection]:
    dialer, listener = Connection(Side.DIALER), Connection(Side.LISTENER)
    hello = Hello((1, 2, 3), "s3", 0, 4, role, ticket="first")  # type: ignore[arg-type]
    assert pump(dialer, listener, hello) == [hello]
    assert pump(listener, dialer, Welcome(version, "s3", 0)) == [Welcome(version, "s3", 0)]
    return dialer, listener


ENTRIES = (
    ManifestEntry(0, "proj", "sh010/plate.0001.exr", 1 << 40, -5, 0o644),
    ManifestEntry(1, "proj", "sh010/ünïcode ☃.txt", 0, 1_700_000_000_123_456_789, 0o600),
    ManifestEntry(2, "proj", "gone.exr", 0, 0, 0, "not_found", "proj:gone.exr does not exist"),
    ManifestEntry(1 << 40, "proj", "sh020/scans/f.1.exr", 5, 6, 0o644, parent=3),
    ManifestEntry(3, "proj", "sh020/scans", 5, 7, 0o755, files=1),
)
RESULTS = (
    FileOutcome(0, True, digest=os.urandom(16)),
    FileOutcome(1, True, skipped=True),
    FileOutcome(2, False, code="integrity", message="chunk 3 failed its checksum 6 times"),
    FileOutcome(1 << 40, True, skipped=True, digest=os.urandom(16)),
)


def test_version_3_bodies_are_binary_and_round_trip() -> None:
    dialer, listener = opened("send")
    manifest = Manifest(4 << 20, ENTRIES, ticket="second")
    wire = b"".join(dialer.send(manifest))
    assert b'"chunk_size"' not in wire
    assert b"second" in wire
    listener.receive_data(wire)
    assert listener.next_event() == manifest
    done = FileDone(RESULTS)
    wire = b"".join(listener.send(done))
    assert b'"results"' not in wire
    dialer.receive_data(wire)
    assert dialer.next_event() == done


def test_version_2_keeps_json() -> None:
    dialer, listener = opened("send", version=2)
    manifest = Manifest(4 << 20, ENTRIES)
    wire = b"".join(dialer.send(manifest))
    assert b'"chunk_size"' in wire
    listener.receive_data(wire)
    assert listener.next_event() == manifest
    with pytest.raises(ProtocolError, match="version 3"):
        dialer.send(Manifest(4 << 20, ENTRIES, ticket="t"))


@pytest.mark.parametrize("event", [Manifest(65536, ENTRIES, "t"), FileDone(RESULTS)])
def test_a_truncated_or_padded_binary_body_is_a_protocol_error(event: object) -> None:
    frame = b"".join(encode_event(event, 3))  # type: ignore[arg-type]
    kind, body = frame[4], frame[HEADER.size :]
    for bad in (body[:-1], body[: len(body) // 2], body + b"\0"):
        with pytest.raises(ProtocolError):
            decode_body(kind, memoryview(bad), version=3)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**64 - 1),
            st.text(min_size=1, max_size=20),
            st.text(max_size=60),
            st.integers(0, 2**64 - 1),
            st.integers(-(2**63), 2**63 - 1),
            st.integers(0, 2**32 - 1),
            st.none() | st.tuples(st.text(min_size=1, max_size=10), st.text(max_size=40)),
            st.none() | st.integers(0, 2**64 - 1),
            st.none() | st.integers(0, 2**64 - 1),
        ),
        max_size=8,
    ),
    st.none() | st.text(max_size=50),
)
def test_binary_manifest_round_trips(rows: list[tuple], ticket: str | None) -> None:  # type: ignore[type-arg]
    entries = tuple(
        ManifestEntry(i, v, p, size, mt, mode, *(err or (None, None)), parent, files)
        for i, v, p, size, mt, mode, err, parent, files in rows
    )
    event = Manifest(1 << 20, entries, ticket or None)
    frame = b"".join(encode_event(event, 3))
    assert decode_body(frame[4], memoryview(frame[HEADER.size :]), version=3) == event


def test_an_open_session_takes_more_wants_and_ends_with_the_dialers_bye() -> None:
    dialer, listener = opened("receive")
    for n in range(3):
        want = Want((WantEntry(n, "proj", f"f{n}", "proj", f"f{n}"),), ticket=f"t{n}")
        assert pump(dialer, listener, want) == [want]
        manifest = Manifest(65536, (ManifestEntry(n, "proj", f"f{n}", 1, 2, 0o644),))
        assert pump(listener, dialer, manifest) == [manifest]
        plan = Plan(())
        assert pump(dialer, listener, plan) == [plan]
    with pytest.raises(ProtocolError, match="listener"):
        listener.send(Bye())
    with pytest.raises(ProtocolError, match="ticket"):
        listener.send(Manifest(65536, (), ticket="forged"))
    assert pump(dialer, listener, Bye()) == [Bye()]


def test_version_2_allows_one_want_and_bye_from_the_sender() -> None:
    dialer, listener = opened("receive", version=2)
    want = Want((WantEntry(0, "proj", "f", "proj", "f"),))
    pump(dialer, listener, want)
    with pytest.raises(ProtocolError, match="twice"):
        dialer.send(want)
    with pytest.raises(ProtocolError):
        dialer.send(Bye())  # the receiving side does not end a version 2 session
    assert pump(listener, dialer, Bye()) == [Bye()]
