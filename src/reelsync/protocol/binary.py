"""The binary bodies of MANIFEST and FILE_DONE in protocol version 3 (versions 1-2: JSON), and of
MANIFEST with runs and PLAN in version 4.

Rules: big-endian fixed fields, then variable ones as length-prefixed UTF-8; a body must be
consumed exactly (trailing or missing bytes are a ProtocolError, raised by the caller from the
struct or index errors). Layouts (docs/protocol.md, "Binary bodies"):

MANIFEST: ``!IIH`` chunk size, entry count, ticket length; the ticket; per entry ``!QqQIBHH``
id, mtime_ns, size, mode, flags, volume length, path length; the volume; the path; then, by
flag, 1 = error ``!HI`` code and message lengths + both, 2 = parent ``!Q``, 4 = files ``!Q``.

FILE_DONE: ``!I`` count; per entry ``!QB`` id, flags (1 ok, 2 skipped, 4 digest, 8 error); by
flag, the 16-byte digest, then ``!HI`` code and message lengths + both.

Version 4, MANIFEST: the version 3 body, then ``!I`` run count; per run ``!QQIHHI`` folder id,
first id, file count, volume length, folder length, names length; the volume; the folder; the
names (UTF-8, joined by NUL); then the columns, ``count`` x ``!Q`` sizes, ``count`` x ``!q``
mtime_ns, ``count`` x ``!I`` modes.
PLAN: ``!II`` entry count, run count; per entry ``!QBI`` id, action (0 send, 1 skip, 2 fail),
resume chunk count; that many ``!I16s`` (index, checksum); a fail: ``!HI`` code and message
lengths + both. Per run ``!QIB`` first id, file count, form (0 every file skipped, 1 every file
sent, 2 a list): form 2, ``!I`` n, then n x ``!I`` indexes to send, ascending.
"""

from __future__ import annotations

import itertools
import struct
import sys
from array import array
from collections.abc import Sequence

from reelsync.errors import ProtocolError
from reelsync.protocol.events import (
    FileDone,
    FileOutcome,
    FileRun,
    Manifest,
    ManifestEntry,
    Plan,
    PlanEntry,
    RunPlan,
)

__all__ = [
    "decode_file_done",
    "decode_manifest",
    "decode_plan",
    "encode_file_done",
    "encode_manifest",
    "encode_plan",
]

_M_HEAD = struct.Struct("!IIH")
_M_ENTRY = struct.Struct("!QqQIBHH")
_ERR = struct.Struct("!HI")
_U64 = struct.Struct("!Q")
_D_COUNT = struct.Struct("!I")
_D_ENTRY = struct.Struct("!QB")
_D_OK_DIGEST = struct.Struct("!QB16s")

_R_COUNT = struct.Struct("!I")
_R_HEAD = struct.Struct("!QQIHHI")
_P_HEAD = struct.Struct("!II")
_P_ENTRY = struct.Struct("!QBI")
_P_HAVE = struct.Struct("!I16s")
_P_RUN = struct.Struct("!QIB")
_SWAP = sys.byteorder == "little"  # the columns are big-endian on the wire
_ACTIONS = ("send", "skip", "fail")
_ACTION_CODES = {a: i for i, a in enumerate(_ACTIONS)}
_ALL_SKIP, _ALL_SEND, _LISTED = 0, 1, 2
assert array("I").itemsize == 4
assert array("Q").itemsize == array("q").itemsize == 8

_ERROR, _PARENT, _FILES = 1, 2, 4
_OK, _SKIPPED, _DIGEST, _FAILED = 1, 2, 4, 8


def _error_bytes(code: str | None, message: str | None) -> bytes:
    c, m = (code or "").encode(), (message or "").encode()
    return _ERR.pack(len(c), len(m)) + c + m


def _column(code: str, values: Sequence[int]) -> bytes:
    col = values if isinstance(values, array) and values.typecode == code else array(code, values)
    if _SWAP:
        col = array(code, col)  # a copy to swap, never the caller's
        col.byteswap()
    return col.tobytes()


def _read_column(code: str, body: memoryview, pos: int, count: int) -> tuple[array[int], int]:
    col = array(code)
    end = pos + count * col.itemsize
    if end > len(body):
        raise ProtocolError("a run's column runs past its frame", remote=True)
    col.frombytes(body[pos:end])
    if _SWAP:
        col.byteswap()
    return col, end


def _encode_runs(runs: tuple[FileRun, ...]) -> list[bytes]:
    parts = [_R_COUNT.pack(len(runs))]
    for run in runs:
        count = len(run.names)
        names = "\0".join(run.names).encode()
        if names.count(0) != max(count - 1, 0) or (not count and names):
            raise ProtocolError("a name in a run holds a NUL")
        if not len(run.sizes) == len(run.mtimes) == len(run.modes) == count:
            raise ProtocolError("a run's columns differ in length")
        volume, folder = run.dst_volume.encode(), run.folder.encode()
        parts += [
            _R_HEAD.pack(run.parent, run.first, count, len(volume), len(folder), len(names)),
            volume,
            folder,
            names,
            _column("Q", run.sizes),
            _column("q", run.mtimes),
            _column("I", run.modes),
        ]
    return parts


def _decode_runs(body: memoryview, pos: int) -> tuple[FileRun, ...]:
    (nruns,) = _R_COUNT.unpack_from(body, pos)
    pos += _R_COUNT.size
    runs = []
    for _ in range(nruns):
        parent, first, count, vlen, flen, nlen = _R_HEAD.unpack_from(body, pos)
        pos += _R_HEAD.size
        volume = _text(body, pos, vlen)
        pos += vlen
        folder = _text(body, pos, flen)
        pos += flen
        names = _text(body, pos, nlen).split("\0") if count else []
        if len(names) != count or (not count and nlen):
            raise ProtocolError("a run's names do not match its count", remote=True)
        pos += nlen
        sizes, pos = _read_column("Q", body, pos, count)
        mtimes, pos = _read_column("q", body, pos, count)
        modes, pos = _read_column("I", body, pos, count)
        runs.append(FileRun(parent, first, volume, folder, names, sizes, mtimes, modes))
    if pos != len(body):
        raise ProtocolError("trailing bytes after the last run", remote=True)
    return tuple(runs)


def encode_manifest(event: Manifest, version: int = 3) -> bytes:
    """The binary MANIFEST of ``version`` (3, or 4 with its runs; for 3, the runs must have
    been made entries, see :meth:`FileRun.entries`)."""
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
    if version >= 4:
        parts += _encode_runs(event.runs)
    elif event.runs:
        raise ProtocolError("runs in a manifest need version 4")
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


def decode_manifest(body: memoryview, version: int = 3) -> Manifest:
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
    runs: tuple[FileRun, ...] = ()
    if version >= 4:
        runs = _decode_runs(body, pos)
    elif pos != len(body):
        raise ProtocolError("trailing bytes after the last manifest entry", remote=True)
    return Manifest(chunk_size, tuple(entries), ticket, runs)


def encode_plan(event: Plan) -> bytes:
    """Version 4's binary PLAN."""
    parts = [_P_HEAD.pack(len(event.files), len(event.runs))]
    append = parts.append
    pack = _P_ENTRY.pack
    codes = _ACTION_CODES
    for p in event.files:
        append(pack(p.id, codes[p.action], len(p.have)))
        for index, checksum in p.have:
            if len(checksum) != 16:
                raise ProtocolError("a resume checksum must be 16 bytes")
            append(_P_HAVE.pack(index, checksum))
        if p.action == "fail":
            append(_error_bytes(p.error_code, p.error_message))
    for r in event.runs:
        n = len(r.send)
        if n == 0:
            append(_P_RUN.pack(r.first, r.count, _ALL_SKIP))
        elif n == r.count:
            append(_P_RUN.pack(r.first, r.count, _ALL_SEND))
        else:
            append(_P_RUN.pack(r.first, r.count, _LISTED))
            append(_R_COUNT.pack(n))
            append(_column("I", r.send))
    return b"".join(parts)


def decode_plan(body: memoryview) -> Plan:
    nfiles, nruns = _P_HEAD.unpack_from(body, 0)
    pos = _P_HEAD.size
    files = []
    unpack = _P_ENTRY.unpack_from
    for _ in range(nfiles):
        fid, action, nhave = unpack(body, pos)
        pos += _P_ENTRY.size
        if action >= len(_ACTIONS):
            raise ProtocolError(f"unknown plan action {action}", remote=True)
        have = []
        for _ in range(nhave):
            have.append(_P_HAVE.unpack_from(body, pos))
            pos += _P_HAVE.size
        code = message = None
        if action == 2:
            code, message, pos = _read_error(body, pos)
        files.append(PlanEntry(fid, _ACTIONS[action], tuple(have), code, message))  # type: ignore[arg-type]
    runs = []
    for _ in range(nruns):
        first, count, form = _P_RUN.unpack_from(body, pos)
        pos += _P_RUN.size
        send: Sequence[int]
        if form == _ALL_SKIP:
            send = ()
        elif form == _ALL_SEND:
            send = range(count)
        elif form == _LISTED:
            (n,) = _R_COUNT.unpack_from(body, pos)
            send, pos = _read_column("I", body, pos + _R_COUNT.size, n)
            if n and (send[-1] >= count or any(a >= b for a, b in itertools.pairwise(send))):
                raise ProtocolError("a run's indexes are out of order or range", remote=True)
        else:
            raise ProtocolError(f"unknown run form {form}", remote=True)
        runs.append(RunPlan(first, count, send))
    if pos != len(body):
        raise ProtocolError("trailing bytes after the last run", remote=True)
    return Plan(tuple(files), tuple(runs))


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
