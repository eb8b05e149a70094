"""The binary bodies of MANIFEST and FILE_DONE in protocol version 3 (versions 1-2: JSON).

Rules: big-endian fixed fields, then variable ones as length-prefixed UTF-8; a body must be
consumed exactly (trailing or missing bytes are a ProtocolError, raised by the caller from the
struct or index errors). Layouts (docs/protocol.md, "Binary bodies"):

MANIFEST: ``!IIH`` chunk size, entry count, ticket length; the ticket; per entry ``!QqQIBHH``
id, mtime_ns, size, mode, flags, volume length, path length; the volume; the path; then, by
flag, 1 = error ``!HI`` code and message lengths + both, 2 = parent ``!Q``, 4 = files ``!Q``.

FILE_DONE: ``!I`` count; per entry ``!QB`` id, flags (1 ok, 2 skipped, 4 digest, 8 error); by
flag, the 16-byte digest, then ``!HI`` code and message lengths + both.
"""

from __future__ import annotations

import struct

from reelsync.errors import ProtocolError
from reelsync.protocol.events import FileDone, FileOutcome, Manifest, ManifestEntry

__all__ = ["decode_file_done", "decode_manifest", "encode_file_done", "encode_manifest"]

_M_HEAD = struct.Struct("!IIH")
_M_ENTRY = struct.Struct("!QqQIBHH")
_ERR = struct.Struct("!HI")
_U64 = struct.Struct("!Q")
_D_COUNT = struct.Struct("!I")
_D_ENTRY = struct.Struct("!QB")
_D_OK_DIGEST = struct.Struct("!QB16s")

_ERROR, _PARENT, _FILES = 1, 2, 4
_OK, _SKIPPED, _DIGEST, _FAILED = 1, 2, 4, 8


def _error_bytes(code: str | None, message: str | None) -> bytes:
    c, m = (code or "").encode(), (message or "").encode()
    return _ERR.pack(len(c), len(m)) + c + m


def encode_manifest(event: Manifest) -> bytes:
    ticket = (event.ticket or "").encode()
    parts = [_M_HEAD.pack(event.chunk_size, len(event.files), len(ticket)), ticket]
    append = parts.append
    pack = _M_ENTRY.pack
    for m in event.files:
        volume, path = m.dst_volume.encode(), m.dst_path.encode()
        flags = (
            (_ERROR if m.error_code else 0)
            | (_PARENT if m.parent is not None else 0)
            | (_FILES if m.files is not None else 0)
        )
        append(pack(m.id, m.mtime_ns, m.size, m.mode, flags, len(volume), len(path)))
        append(volume)
        append(path)
        if flags:
            if flags & _ERROR:
                append(_error_bytes(m.error_code, m.error_message))
            if m.parent is not None:
                append(_U64.pack(m.parent))
            if m.files is not None:
                append(_U64.pack(m.files))
    return b"".join(parts)


def _text(body: memoryview, start: int, length: int) -> str:
    end = start + length
    if end > len(body):
        raise ProtocolError("a text field runs past its frame", remote=True)
    return str(body[start:end], "utf-8")


def _read_error(body: memoryview, pos: int) -> tuple[str, str, int]:
    """An error's code and message at ``pos``, and the position after them."""
    clen, mlen = _ERR.unpack_from(body, pos)
    pos += _ERR.size
    return _text(body, pos, clen), _text(body, pos + clen, mlen), pos + clen + mlen


def decode_manifest(body: memoryview) -> Manifest:
    chunk_size, count, ticket_len = _M_HEAD.unpack_from(body, 0)
    pos = _M_HEAD.size
    ticket = _text(body, pos, ticket_len) if ticket_len else None
    pos += ticket_len
    entries = []
    unpack = _M_ENTRY.unpack_from
    size = _M_ENTRY.size
    volumes: dict[bytes, str] = {}  # one volume code for most entries: decode it once
    for _ in range(count):
        fid, mtime_ns, fsize, mode, flags, vlen, plen = unpack(body, pos)
        pos += size
        raw_volume = bytes(body[pos : pos + vlen])
        volume = volumes.get(raw_volume)
        if volume is None:
            volume = volumes[raw_volume] = _text(body, pos, vlen)
        pos += vlen
        path = _text(body, pos, plen)
        pos += plen
        code = message = None
        parent = files = None
        if flags:
            if flags & _ERROR:
                code, message, pos = _read_error(body, pos)
            if flags & _PARENT:
                (parent,) = _U64.unpack_from(body, pos)
                pos += _U64.size
            if flags & _FILES:
                (files,) = _U64.unpack_from(body, pos)
                pos += _U64.size
        entries.append(
            ManifestEntry(fid, volume, path, fsize, mtime_ns, mode, code, message, parent, files)
        )
    if pos != len(body):
        raise ProtocolError("trailing bytes after the last manifest entry", remote=True)
    return Manifest(chunk_size, tuple(entries), ticket)


def encode_file_done(event: FileDone) -> bytes:
    parts = [_D_COUNT.pack(len(event.results))]
    append = parts.append
    for r in event.results:
        if r.ok and r.digest is not None and not r.skipped and not r.code:
            append(_D_OK_DIGEST.pack(r.file_id, _OK | _DIGEST, r.digest))
            continue
        flags = (
            (_OK if r.ok else 0)
            | (_SKIPPED if r.skipped else 0)
            | (_DIGEST if r.digest is not None else 0)
            | (_FAILED if r.code else 0)
        )
        append(_D_ENTRY.pack(r.file_id, flags))
        if r.digest is not None:
            if len(r.digest) != 16:
                raise ProtocolError("a file digest must be 16 bytes")
            append(r.digest)
        if r.code:
            append(_error_bytes(r.code, r.message))
    return b"".join(parts)


def decode_file_done(body: memoryview) -> FileDone:
    (count,) = _D_COUNT.unpack_from(body, 0)
    pos = _D_COUNT.size
    results = []
    unpack = _D_ENTRY.unpack_from
    common = _D_OK_DIGEST.unpack_from
    end = len(body)
    for _ in range(count):
        if pos + _D_OK_DIGEST.size <= end and body[pos + 8] == _OK | _DIGEST:  # a file published
            fid, _, digest = common(body, pos)
            pos += _D_OK_DIGEST.size
            results.append(FileOutcome(fid, True, False, digest))
            continue
        fid, flags = unpack(body, pos)
        pos += _D_ENTRY.size
        digest = None
        code = message = None
        if flags & _DIGEST:
            if pos + 16 > len(body):
                raise ProtocolError("a digest runs past its frame", remote=True)
            digest = bytes(body[pos : pos + 16])
            pos += 16
        if flags & _FAILED:
            code, message, pos = _read_error(body, pos)
        results.append(
            FileOutcome(fid, bool(flags & _OK), bool(flags & _SKIPPED), digest, code, message)
        )
    if pos != len(body):
        raise ProtocolError("trailing bytes after the last result", remote=True)
    return FileDone(tuple(results))
