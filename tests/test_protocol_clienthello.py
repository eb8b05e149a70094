"""The routing label in a TLS ClientHello's SNI: parsed from genuine ClientHellos that Python's
ssl writes into a memory BIO, and never raising on truncated, flipped or random bytes."""

from __future__ import annotations

import functools
import random
import ssl

import pytest

from reelsync.protocol.clienthello import (
    ROUTE_SUFFIX,
    record_length,
    route_label,
    route_name,
    server_name,
)

LABEL = "0123456789abcdef"


@functools.cache
def client_context(tls13_only: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls13_only:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def client_hello(server_hostname: str | None, *, tls13_only: bool = False) -> bytes:
    """What an ssl client sends first: the ClientHello record(s), from memory, no socket."""
    outgoing = ssl.MemoryBIO()
    obj = client_context(tls13_only).wrap_bio(
        ssl.MemoryBIO(), outgoing, server_hostname=server_hostname
    )
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def first_record(stream: bytes) -> bytes:
    n = record_length(stream[:5])
    assert n is not None
    return stream[:n]


@pytest.fixture(scope="module")
def routed() -> bytes:
    return client_hello(route_name(LABEL))


@pytest.mark.parametrize("tls13_only", [False, True])
def test_route_name_round_trips_to_its_label(tls13_only: bool) -> None:
    stream = client_hello(route_name(LABEL), tls13_only=tls13_only)
    record = first_record(stream)
    assert server_name(record) == f"{LABEL}.route.reelsync"
    assert route_label(record) == LABEL


@pytest.mark.parametrize("tls13_only", [False, True])
def test_a_plain_host_name_is_a_server_name_but_no_route(tls13_only: bool) -> None:
    record = first_record(client_hello("files.example.com", tls13_only=tls13_only))
    assert server_name(record) == "files.example.com"
    assert route_label(record) is None


def test_server_name_is_lowercased_and_so_is_the_label() -> None:
    record = first_record(client_hello("0123456789ABCDEF.Route.ReelSync"))
    assert server_name(record) == route_name(LABEL)
    assert route_label(record) == LABEL


@pytest.mark.parametrize(
    "host",
    [
        "route.reelsync",
        "reelsync",
        "0123456789abcde.route.reelsync",  # 15 chars
        "0123456789abcdef0.route.reelsync",  # 17 chars
        "0123456789abcdeg.route.reelsync",  # not hex
        "x.0123456789abcdef.route.reelsync",
        "0123456789abcdef.route.reelsync.example.com",
        "0123456789abcdef.route.reelsync.evil",
    ],
)
def test_names_near_a_route_are_no_route(host: str) -> None:
    record = first_record(client_hello(host))
    assert server_name(record) == host
    assert route_label(record) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", None])
def test_no_sni_for_an_ip_address_or_no_host(host: str | None) -> None:
    record = first_record(client_hello(host))
    assert server_name(record) is None
    assert route_label(record) is None


@pytest.mark.parametrize("tls13_only", [False, True])
def test_record_length_of_real_bytes_is_the_first_record(tls13_only: bool) -> None:
    stream = client_hello(route_name(LABEL), tls13_only=tls13_only)
    n = record_length(stream[:5])
    assert n == 5 + int.from_bytes(stream[3:5], "big")
    assert n == len(stream)  # Python's ssl sends its ClientHello as one record
    # the peeked head may hold more than 5 bytes, even the next record: the same answer
    assert record_length(stream) == record_length(stream + b"\x17\x03\x03\x00\x01x") == n


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x80\x2e\x01\x03\x01",  # an SSLv2-compatible hello
        b"\x17\x03\x03\x00\x10",  # application data, not a handshake
        b"\x16\x02\x00\x00\x10",  # major version 2
        b"\x00\x00\x00\x00\x00",
    ],
)
def test_record_length_of_no_tls_handshake_is_none(head: bytes) -> None:
    assert record_length(head) is None
    assert server_name(head) is None
    assert route_label(head) is None


@pytest.mark.parametrize("head", [b"", b"\x16", b"\x16\x03\x01\x02"])
def test_record_length_needs_five_bytes(head: bytes) -> None:
    with pytest.raises(ValueError):
        record_length(head)


def test_record_length_of_a_bare_header() -> None:
    assert record_length(b"\x16\x03\x01\x00\x00") == 5
    assert record_length(b"\x16\x03\x03\xff\xff") == 5 + 0xFFFF


@pytest.mark.parametrize(
    "label",
    [
        "",
        "0123456789abcde",
        "0123456789abcdef0",
        "0123456789ABCDEF",
        "0123456789abcdeg",
        "0123456789abcde\n",
        "0123456789abcdef\n",
        " 0123456789abcdef",
        "０１２３４５６７８９ａｂｃｄｅｆ",  # fullwidth digits and letters
        "0123456789abcdef.route.reelsync",
    ],
)
def test_route_name_rejects_bad_labels(label: str) -> None:
    with pytest.raises(ValueError):
        route_name(label)


def test_route_name() -> None:
    assert route_name(LABEL) == "0123456789abcdef.route.reelsync"
    assert route_name("ffffffffffffffff").endswith(ROUTE_SUFFIX)


def test_bytes_after_the_record_are_ignored(routed: bytes) -> None:
    record = first_record(routed)
    assert route_label(record + b"\x16\x03\x01\x00\x04junk") == LABEL


def test_a_client_hello_split_over_two_records_is_none(routed: bytes) -> None:
    """A ClientHello larger than one record (> 16 KiB, very rare) is not found in the first."""
    body = routed[5:]
    cut = len(body) // 2
    first = b"\x16\x03\x01" + cut.to_bytes(2, "big") + body[:cut]
    rest = b"\x16\x03\x01" + (len(body) - cut).to_bytes(2, "big") + body[cut:]
    assert record_length(first) == len(first)
    assert server_name(first) is None
    assert server_name(first + rest) is None


def test_other_handshake_messages_are_none(routed: bytes) -> None:
    as_server_hello = routed[:5] + b"\x02" + routed[6:]
    assert server_name(as_server_hello) is None


def test_every_truncation_is_none_and_never_raises(routed: bytes) -> None:
    record = first_record(routed)
    for n in range(len(record)):
        assert server_name(record[:n]) is None
        assert route_label(record[:n]) is None
        if n >= 5:
            assert record_length(record[:n]) == len(record)


def test_a_truncated_hello_in_an_honest_record_is_none(routed: bytes) -> None:
    """The record's length field says the truncated length: the handshake length disagrees."""
    record = first_record(routed)
    for n in range(9, len(record)):
        short = record[:3] + (n - 5).to_bytes(2, "big") + record[5:n]
        assert server_name(short) is None


def test_every_single_byte_flip_never_raises(routed: bytes) -> None:
    record = first_record(routed)
    labels = 0
    for i in range(len(record)):
        for mask in (0x01, 0x80, 0xFF):
            flipped = bytearray(record)
            flipped[i] ^= mask
            name = server_name(bytes(flipped))
            assert name is None or isinstance(name, str)
            label = route_label(bytes(flipped))
            assert label is None or (len(label) == 16 and route_name(label))
            labels += label == LABEL
    assert labels > 0  # most flips land in random, key shares or padding: the label survives


def test_random_bytes_never_raise() -> None:
    rng = random.Random(20240601)
    for _ in range(2000):
        size = rng.randrange(0, 600)
        data = rng.randbytes(size)
        if rng.random() < 0.5 and size >= 6:  # look like a handshake record to get past the header
            data = b"\x16\x03\x01" + (size - 5).to_bytes(2, "big") + b"\x01" + data[6:]
        name = server_name(data)
        assert name is None or isinstance(name, str)
        assert route_label(data) in (None, name and name[:16])
        if size >= 5:
            n = record_length(data)
            assert n is None or n >= 5


def test_random_length_fields_in_a_real_hello_never_raise(routed: bytes) -> None:
    """Overwrite random 1-3 byte spans with extreme values: the nested lengths lie."""
    record = first_record(routed)
    rng = random.Random(7)
    for _ in range(3000):
        mutated = bytearray(record)
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(5, len(record))
            width = rng.randrange(1, 4)
            value = rng.choice([0, 1, 0xFF, 0xFFFF, 0xFFFFFF, rng.randrange(0, 1 << 24)])
            mutated[i : i + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "big")
        name = server_name(bytes(mutated[: len(record)]))
        assert name is None or isinstance(name, str)
