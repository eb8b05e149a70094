"""The routing label in a TLS ClientHello's SNI, found without consuming the stream.

The agent's listener hands each accepted data-plane connection (before TLS) to one of its worker
processes; to keep every TCP connection of one session in one worker the dialer names the host
``<label>.route.reelsync`` (label: 16 lowercase hex chars) in the ClientHello's server_name
extension (RFC 6066). The listener peeks the first TLS record, asks :func:`record_length` how
many bytes it needs, peeks that many and asks :func:`route_label`.

Rules: sans-I/O, bytes in, answers out; never imports asyncio, socket or ssl. Nothing here raises
on what a peer sent: any input that is not exactly a well-formed ClientHello with one host_name,
complete within the one record, answers None (a ClientHello larger than one record, > 16 KiB,
too). Only :func:`route_name` and :func:`record_length` raise ValueError, on the caller's own
mistakes (a bad label, fewer than 5 bytes). Layouts (RFC 8446 5.1, 4.1.2, 4.2; RFC 6066 3):

record: ``!BHH`` content type (22 handshake), legacy version (major 3), length; the fragment.
handshake: ``!B`` type (1 client_hello), a 24-bit length; the ClientHello.
ClientHello: ``!H`` legacy version, 32 random bytes, ``!B`` session id length + it, ``!H`` cipher
suites length + them, ``!B`` compression methods length + them, ``!H`` extensions length + them
(absent: no extensions); per extension ``!HH`` type, length + data; server_name (type 0):
``!H`` list length; per entry ``!BH`` name type (0 host_name), length + the name.
"""

from __future__ import annotations

import re

__all__ = ["ROUTE_SUFFIX", "record_length", "route_label", "route_name", "server_name"]

ROUTE_SUFFIX = ".route.reelsync"

_LABEL = re.compile(r"[0-9a-f]{16}")
_HEADER = 5
_HANDSHAKE = 0x16
_CLIENT_HELLO = 1
_SERVER_NAME = 0
_HOST_NAME = 0


class _Malformed(Exception):
    """Internal: the bytes are not a well-formed ClientHello (never escapes this module)."""


class _Reader:
    """A cursor over ``data[pos:end]``; every read past ``end`` raises :class:`_Malformed`."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, n: int) -> bytes:
        if n > self.remaining():
            raise _Malformed
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def sub(self, length_size: int) -> _Reader:
        """The vector that follows (its length in ``length_size`` bytes), as its own reader."""
        n = self.uint(length_size)
        if n > self.remaining():
            raise _Malformed
        inner = _Reader(self.data, self.pos, self.pos + n)
        self.pos += n
        return inner

    def remaining(self) -> int:
        return self.end - self.pos

    def done(self) -> bool:
        return self.pos == self.end


def route_name(label: str) -> str:
    """The SNI host name that routes a connection to ``label``'s worker."""
    if not _LABEL.fullmatch(label):
        raise ValueError(f"a route label is 16 lowercase hex chars, not {label!r}")
    return f"{label}{ROUTE_SUFFIX}"


def record_length(head: bytes) -> int | None:
    """The bytes the first TLS record takes (header included), from at least its first 5 bytes;
    None when the stream does not start with a TLS handshake record (not TLS)."""
    if len(head) < _HEADER:
        raise ValueError(f"need the first {_HEADER} bytes of the stream, got {len(head)}")
    if head[0] != _HANDSHAKE or head[1] != 3:
        return None
    return _HEADER + int.from_bytes(head[3:5], "big")


def server_name(record: bytes) -> str | None:
    """The SNI host_name (ASCII, lowercased) of the ClientHello in one complete TLS record; None
    when it is not one, sends no SNI, or is malformed or truncated in any way."""
    try:
        return _server_name(bytes(record))
    except _Malformed:
        return None


def route_label(record: bytes) -> str | None:
    """The routing label named by the ClientHello in ``record``, or None when it names none."""
    name = server_name(record)
    if name is None or not name.endswith(ROUTE_SUFFIX):
        return None
    label = name[: -len(ROUTE_SUFFIX)]
    return label if _LABEL.fullmatch(label) else None


def _server_name(data: bytes) -> str | None:
    if len(data) < _HEADER or data[0] != _HANDSHAKE or data[1] != 3:
        return None
    record = _Reader(data)
    record.take(3)
    fragment = record.sub(2)  # bytes after the record are the caller's next record: ignored
    if fragment.uint(1) != _CLIENT_HELLO:
        return None
    hello = fragment.sub(3)  # a ClientHello continued in a later record: _Malformed
    hello.take(2 + 32)  # legacy_version, random
    if hello.sub(1).remaining() > 32:  # legacy_session_id, at most 32 bytes
        raise _Malformed
    suites = hello.sub(2)
    if suites.done() or suites.remaining() % 2:
        raise _Malformed
    if hello.sub(1).done():  # legacy_compression_methods: at least one
        raise _Malformed
    if hello.done():  # no extensions at all (TLS 1.2 and older may omit the block)
        return None
    extensions = hello.sub(2)
    if not hello.done():
        raise _Malformed
    name: str | None = None
    seen: set[int] = set()
    while not extensions.done():
        kind = extensions.uint(2)
        body = extensions.sub(2)
        if kind in seen:  # RFC 8446 4.2: one extension of a type at most
            raise _Malformed
        seen.add(kind)
        if kind == _SERVER_NAME:
            name = _host_name(body)
    return name


def _host_name(body: _Reader) -> str:
    names = body.sub(2)
    if not body.done() or names.done():
        raise _Malformed
    host: bytes | None = None
    while not names.done():
        kind = names.uint(1)
        value = names.sub(2)
        raw = value.take(value.remaining())
        if kind == _HOST_NAME:
            if host is not None:  # RFC 6066 3: one name of a type at most
                raise _Malformed
            host = raw
    if not host or not host.isascii():
        raise _Malformed
    text = host.decode("ascii")
    if not text.isprintable() or " " in text:
        raise _Malformed
    return text.lower()
