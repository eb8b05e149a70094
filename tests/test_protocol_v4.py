"""Protocol version 4: a folder's files as runs in columns in MANIFEST, a binary PLAN answering
each run with the indexes to send; a version 3 (or 2) peer negotiates down and gets the same
files as one entry each."""

from __future__ import annotations

from array import array

import pytest

from reelsync.domain.paths import plain_names
from reelsync.errors import ProtocolError
from reelsync.protocol import (
    NEED_DATA,
    Connection,
    FileRun,
    Hello,
    Manifest,
    ManifestEntry,
    Plan,
    PlanEntry,
    RunPlan,
    Side,
    Welcome,
)
from reelsync.protocol.codec import HEADER, decode_body, encode_event

RUN = FileRun(
    7,
    100,
    "proj",
    "shots/sh0010/scans",
    ["plate.1001.exr", "plate.1002.exr", "née.txt"],
    [10, 2**40, 0],
    [1_700_000_000 * 10**9, -5, 0],
    [0o644, 0o600, 0o755],
)
FOLDER = ManifestEntry(7, "proj", "shots/sh0010/scans", 10 + 2**40, 0, 0o755, files=3)


def roundtrip(event: object, version: int) -> object:
    frame = b"".join(encode_event(event, version))  # type: ignore[arg-type]
    length, kind = HEADER.unpack_from(frame)
    assert length == len(frame) - HEADER.size
    return decode_body(kind, memoryview(frame[HEADER.size :]), version=version)


def pair(dialer_versions: tuple[int, ...], listener_versions: tuple[int, ...]) -> tuple[
    Connection, Connection
]:  # fmt: skip
    """A pushing dialer and its listener, joined in memory, after the handshake."""
    dialer = Connection(Side.DIALER, versions=dialer_versions)
    listener = Connection(Side.LISTENER, versions=listener_versions)

    def carry(src: Connection, dst: Connection, event: object) -> object:
        for data in src.send(event):  # type: ignore[arg-type]
            dst.receive_data(data)
        got = dst.next_event()
        assert got is not NEED_DATA
        return got

    hello = carry(dialer, listener, Hello(dialer_versions, "s1", 0, 1, "send"))
    assert isinstance(hello, Hello)
    version = max(set(hello.versions) & set(listener_versions))
    carry(listener, dialer, Welcome(version, "s1", 0))
    return dialer, listener


def carry(src: Connection, dst: Connection, event: object) -> object:
    for data in src.send(event):  # type: ignore[arg-type]
        dst.receive_data(data)
    return dst.next_event()


def test_a_run_travels_in_columns_and_back() -> None:
    manifest = Manifest(4 << 20, (FOLDER,), "ticket", (RUN,))
    got = roundtrip(manifest, 4)
    assert isinstance(got, Manifest)
    assert got == manifest
    assert got.runs[0].entries() == RUN.entries()
    assert [m.dst_path for m in RUN.entries()] == [
        "shots/sh0010/scans/plate.1001.exr",
        "shots/sh0010/scans/plate.1002.exr",
        "shots/sh0010/scans/née.txt",
    ]
    assert {m.parent for m in RUN.entries()} == {7}
    assert [m.id for m in RUN.entries()] == [100, 101, 102]
    # a run in the volume's root folder names its files alone
    root = FileRun(7, 0, "proj", "", ["a"], [1], [2], [0o644])
    assert root.entries()[0].dst_path == "a"
    # far fewer bytes than an entry per file (version 3)
    assert len(b"".join(encode_event(manifest, 4))) < len(b"".join(encode_event(manifest, 3)))


@pytest.mark.parametrize("version", [2, 3])
def test_an_older_peer_gets_the_runs_as_entries_before_the_others(version: int) -> None:
    got = roundtrip(Manifest(4 << 20, (FOLDER,), None, (RUN,)), version)
    assert isinstance(got, Manifest)
    assert got.runs == ()
    assert got.files == (*RUN.entries(), FOLDER)  # the folder's entry still comes last


def test_a_plan_answers_runs_by_indexes() -> None:
    plan = Plan(
        (
            PlanEntry(5, "send", ((0, b"c" * 16), (3, b"d" * 16))),
            PlanEntry(6, "fail", (), "path", "outside the volume"),
            PlanEntry(8, "skip"),
            PlanEntry(9, "send"),
        ),
        (
            RunPlan(100, 3, ()),  # a no-op folder
            RunPlan(200, 4, range(4)),  # a new one
            RunPlan(300, 1000, array("I", [1, 999])),  # two touched files
        ),
    )
    got = roundtrip(plan, 4)
    assert got == plan
    assert isinstance(got, Plan)
    assert list(got.runs[1].send) == [0, 1, 2, 3]
    small = len(b"".join(encode_event(Plan((), (RunPlan(0, 20_000, ()),)), 4)))
    assert small < 32  # 20,000 files skipped in a few bytes
    with pytest.raises(ProtocolError):
        encode_event(plan, 3)  # runs need version 4


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x00\x00\x00\x00\x00\x00\x01" + b"\x00" * 12 + b"\x03",  # unknown run form
        b"\x00\x00\x00\x01\x00\x00\x00\x00" + b"\x00" * 8 + b"\x07\x00\x00\x00\x00",  # action 7
        b"\x00\x00\x00\x00\x00\x00\x00\x01"  # indexes out of range
        + b"\x00" * 8
        + b"\x00\x00\x00\x02\x02"
        + b"\x00\x00\x00\x01\x00\x00\x00\x05",
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00",  # a trailing byte
    ],
)
def test_a_malformed_plan_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_body(0x05, memoryview(body), version=4)


def test_a_malformed_run_is_a_protocol_error() -> None:
    frame = b"".join(encode_event(Manifest(65536, (), None, (RUN,)), 4))
    body = frame[HEADER.size :]
    for cut in (body[:-1], body + b"\x00"):  # a column cut short, a trailing byte
        with pytest.raises(ProtocolError):
            decode_body(0x04, memoryview(cut), version=4)
    names = body.index(b"plate.1001.exr")
    two = body[:names] + body[names:].replace(b"\x00n", b"/n", 1)  # 2 names for a count of 3
    with pytest.raises(ProtocolError):
        decode_body(0x04, memoryview(two), version=4)
    bad = FileRun(7, 100, "proj", "x", ["a\x00b"], [1], [1], [0o644])
    with pytest.raises(ProtocolError):
        encode_event(Manifest(65536, (), None, (bad,)), 4)


@pytest.mark.parametrize(
    ("dialer", "listener", "version"),
    [((1, 2, 3, 4), (1, 2, 3), 3), ((1, 2, 3), (1, 2, 3, 4), 3), ((2, 3, 4), (1, 2), 2)],
)
def test_a_version_4_peer_negotiates_down(
    dialer: tuple[int, ...], listener: tuple[int, ...], version: int
) -> None:
    send, receive = pair(dialer, listener)
    assert send.version == receive.version == version
    got = carry(send, receive, Manifest(65536, (FOLDER,), None, (RUN,)))
    assert isinstance(got, Manifest)
    assert got.files == (*RUN.entries(), FOLDER)
    plan = Plan(tuple(PlanEntry(m.id, "skip") for m in got.files))
    assert carry(receive, send, plan) == plan
    with pytest.raises(ProtocolError):  # a run's answer needs version 4
        receive.send(Plan((), (RunPlan(100, 3, ()),)))


def test_version_4_between_version_4_peers() -> None:
    send, receive = pair((1, 2, 3, 4), (1, 2, 3, 4))
    assert send.version == 4
    manifest = Manifest(65536, (FOLDER,), None, (RUN,))
    assert carry(send, receive, manifest) == manifest
    plan = Plan((PlanEntry(7, "skip"),), (RunPlan(100, 3, (1,)),))
    assert carry(receive, send, plan) == plan


def test_version_1_carries_no_runs() -> None:
    send, _ = pair((1,), (1, 2, 3, 4))
    with pytest.raises(ProtocolError):
        send.send(Manifest(65536, (), None, (RUN,)))


def test_names_are_judged_together() -> None:
    assert plain_names("a/b", ["x.exr", "y.exr", "née", "v1/x.exr", ".hidden/v2/y"])
    assert plain_names("a/b", [])
    for names in (
        ["ok", ""],
        ["ok", "."],
        [".."],
        ["x/../y"],
        ["x//y"],
        ["x/"],
        ["/x"],
        ["a\\b"],
        ["bad\x01"],
        ["x.exr.reelsync-part"],
        ["n" * 256],
        ["ok/" + "n" * 256 + "/ok"],
        ["é" * 128],  # 256 bytes in UTF-8
    ):
        assert not plain_names("a/b", names), names
    assert not plain_names("a/\x02", ["x"])
    assert not plain_names("d" * 4000, ["x" * 100])
