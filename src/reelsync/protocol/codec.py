"""Frame encoding and decoding of the data plane, versions 1 to 4.

Rules: a frame is a 5-byte header, ``!IB`` = body length (bytes after the header) and frame type,
then the body. Bulk data frames (CHUNK, BATCH, FILE_END, ACK, NACK) have fixed binary layouts; the
control frames carry one UTF-8 JSON object. A body longer than :data:`MAX_BODY` or a malformed body
is a :class:`~reelsync.errors.ProtocolError`. Version 3 gives MANIFEST and FILE_DONE binary
bodies (:mod:`reelsync.protocol.binary`), version 4 PLAN too and MANIFEST carries runs (the
files of a folder in columns); a manifest's runs go to an older peer as one entry per file.
Bodies are encoded and decoded with the version the stream negotiated. See docs/protocol.md
for the byte layouts.
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum
from typing import Any

from reelsync.domain.chunks import CHECKSUM_SIZE
from reelsync.errors import ProtocolError
from reelsync.protocol.binary import (
    decode_file_done,
    decode_manifest,
    decode_plan,
    encode_file_done,
    encode_manifest,
    encode_plan,
)
from reelsync.protocol.events import (
    Ack,
    Batch,
    BatchEntry,
    Bye,
    Chunk,
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
    Want,
    WantEntry,
    Welcome,
)

__all__ = [
    "CHUNK_FIELDS",
    "HEADER",
    "MAX_BODY",
    "BatchFrame",
    "FrameType",
    "decode_body",
    "encode_event",
]

HEADER = struct.Struct("!IB")
MAX_BODY = 72 << 20  # a 64 MiB chunk plus its header, or a large manifest part
_CHUNK = CHUNK_FIELDS = struct.Struct("!QI16s")
_BATCH_COUNT = struct.Struct("!I")
_BATCH_ENTRY = struct.Struct("!QI16s")
_FILE_END = struct.Struct("!Q16s")
_PAIR = struct.Struct("!QI")


class FrameType(IntEnum):
    HELLO = 0x01
    WELCOME = 0x02
    WANT = 0x03
    MANIFEST = 0x04
    PLAN = 0x05
    CHUNK = 0x10
    BATCH = 0x11
    FILE_END = 0x12
    FILE_ABORT = 0x13
    ACK = 0x20
    NACK = 0x21
    FILE_DONE = 0x22
    BYE = 0x30
    FAILURE = 0x3F


class BatchFrame:
    """A BATCH frame laid out in a caller's buffer, so that small files are read straight into
    their place in the frame: no allocation, no copy per file, one buffer to write. For each
    file, :meth:`slot` gives the region after its entry header to read its bytes into, then
    :meth:`commit` writes that header (id, length, checksum); :meth:`frame` ends the frame.
    The bytes are those :func:`encode_event` makes of the same :class:`Batch`."""

    OVERHEAD = _BATCH_ENTRY.size  # bytes of each entry's header

    __slots__ = ("_pos", "_view", "count")

    def __init__(self, buf: bytearray) -> None:
        self._view = memoryview(buf)
        self._pos = HEADER.size + _BATCH_COUNT.size
        self.count = 0

    @staticmethod
    def room(count: int, data: int) -> int:
        """The buffer size for ``count`` files of ``data`` bytes in all, plus one spare byte
        (a caller may read one byte more than a file should have, to see that it grew)."""
        return HEADER.size + _BATCH_COUNT.size + count * _BATCH_ENTRY.size + data + 1

    def slot(self, length: int) -> memoryview:
        """The ``length`` bytes where the next file's bytes go (they may run over what the file
        finally commits: only the committed length counts)."""
        start = self._pos + _BATCH_ENTRY.size
        return self._view[start : start + length]

    def commit(self, file_id: int, length: int, checksum: bytes) -> None:
        """The next file is in its slot: its first ``length`` bytes, of this checksum."""
        _BATCH_ENTRY.pack_into(self._view, self._pos, file_id, length, checksum)
        self._pos += _BATCH_ENTRY.size + length
        self.count += 1

    def frame(self) -> memoryview:
        """The whole frame (a view of the caller's buffer)."""
        body = self._pos - HEADER.size
        if body > MAX_BODY:
            raise ProtocolError(f"a frame of {body} bytes exceeds the limit")
        HEADER.pack_into(self._view, 0, body, FrameType.BATCH)
        _BATCH_COUNT.pack_into(self._view, HEADER.size, self.count)
        return self._view[: self._pos]


def _json(kind: FrameType, obj: dict[str, Any]) -> list[bytes]:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return [HEADER.pack(len(body), kind) + body]


def _plan(files: tuple[PlanEntry, ...]) -> list[bytes]:
    """PLAN's JSON, the common entry (an action alone: most of a plan) written directly; the
    same bytes ``json.dumps`` makes of it (an id is an int, an action one of three words)."""
    rows = [
        f'{{"id":{p.id:d},"action":"{p.action}"}}'
        if not p.have and not p.error_code
        else json.dumps(
            {
                "id": p.id,
                "action": p.action,
                **({"have": [[i, c.hex()] for i, c in p.have]} if p.have else {}),
                **({"error": [p.error_code, p.error_message]} if p.error_code else {}),
            },
            separators=(",", ":"),
        )
        for p in files
    ]
    body = ('{"files":[' + ",".join(rows) + "]}").encode()
    return [HEADER.pack(len(body), FrameType.PLAN) + body]


def _pairs(kind: FrameType, items: tuple[tuple[int, int], ...]) -> list[bytes]:
    body = _BATCH_COUNT.pack(len(items)) + b"".join(_PAIR.pack(f, i) for f, i in items)
    return [HEADER.pack(len(body), kind) + body]


def _binary(kind: FrameType, body: bytes) -> list[bytes]:
    if len(body) > MAX_BODY:
        raise ProtocolError(f"a frame of {len(body)} bytes exceeds the limit")
    return [HEADER.pack(len(body), kind) + body]


def encode_event(event: Event, version: int = 1) -> list[bytes]:
    """The frame of ``event`` as buffers to write in order (bulk data is not copied), in the
    body format of protocol ``version``."""
    if isinstance(event, Manifest) and event.runs and version < 4:
        runs = [e for run in event.runs for e in run.entries()]  # files first, as in version 4
        event = Manifest(event.chunk_size, (*runs, *event.files), event.ticket)
    if version >= 3:
        if isinstance(event, Manifest):
            return _binary(FrameType.MANIFEST, encode_manifest(event, version))
        if isinstance(event, FileDone):
            return _binary(FrameType.FILE_DONE, encode_file_done(event))
        if version >= 4 and isinstance(event, Plan):
            return _binary(FrameType.PLAN, encode_plan(event))
    if isinstance(event, Plan) and event.runs:
        raise ProtocolError("runs in a plan need version 4")
    match event:
        case Chunk(file_id, index, checksum, data):
            head = _CHUNK.pack(file_id, index, checksum)
            return [HEADER.pack(len(head) + len(data), FrameType.CHUNK) + head, data]
        case Batch(entries):
            parts: list[bytes] = [b"", _BATCH_COUNT.pack(len(entries))]
            total = _BATCH_COUNT.size
            for e in entries:
                parts.append(_BATCH_ENTRY.pack(e.file_id, len(e.data), e.checksum))
                parts.append(e.data)
                total += _BATCH_ENTRY.size + len(e.data)
            parts[0] = HEADER.pack(total, FrameType.BATCH)
            return parts
        case FileEnd(file_id, digest):
            body = _FILE_END.pack(file_id, digest)
            return [HEADER.pack(len(body), FrameType.FILE_END) + body]
        case Ack(items):
            return _pairs(FrameType.ACK, items)
        case Nack(items):
            return _pairs(FrameType.NACK, items)
        case Hello():
            return _json(
                FrameType.HELLO,
                {
                    "magic": "reelsync",
                    "versions": list(event.versions),
                    "session": event.session,
                    "stream": event.stream,
                    "streams": event.streams,
                    "role": event.role,
                    "ticket": event.ticket,
                },
            )
        case Welcome(version, session, stream):
            return _json(
                FrameType.WELCOME, {"version": version, "session": session, "stream": stream}
            )
        case Want(files, ticket):
            return _json(
                FrameType.WANT,
                {
                    "files": [
                        [w.id, w.src_volume, w.src_path, w.dst_volume, w.dst_path] for w in files
                    ],
                    **({"ticket": ticket} if ticket is not None else {}),
                },
            )
        case Manifest(chunk_size, files, ticket, _):
            return _json(
                FrameType.MANIFEST,
                {
                    "chunk_size": chunk_size,
                    "files": [_manifest_row(m) for m in files],
                    **({"ticket": ticket} if ticket is not None else {}),
                },
            )
        case Plan(files, _):
            return _plan(files)
        case FileAbort(file_id, code, message):
            return _json(FrameType.FILE_ABORT, {"id": file_id, "code": code, "message": message})
        case FileDone(results):
            return _json(
                FrameType.FILE_DONE,
                {
                    "results": [
                        {
                            "id": r.file_id,
                            "ok": r.ok,
                            **({"skipped": True} if r.skipped else {}),
                            **({"digest": r.digest.hex()} if r.digest else {}),
                            **({"error": [r.code, r.message]} if r.code else {}),
                        }
                        for r in results
                    ]
                },
            )
        case Bye():
            return _json(FrameType.BYE, {})
        case Failure(code, message):
            return _json(FrameType.FAILURE, {"code": code, "message": message})
    raise TypeError(f"not a frame event: {event!r}")  # pragma: no cover - type checked


def _load(body: memoryview) -> dict[str, Any]:
    try:
        obj = json.loads(bytes(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"malformed control frame: {exc}", remote=True) from exc
    if not isinstance(obj, dict):
        raise ProtocolError("a control frame must be a JSON object", remote=True)
    return obj


def _read_pairs(body: memoryview) -> tuple[tuple[int, int], ...]:
    (count,) = _BATCH_COUNT.unpack_from(body, 0)
    if len(body) != _BATCH_COUNT.size + count * _PAIR.size:
        raise ProtocolError("ack/nack frame length does not match its count", remote=True)
    return tuple(_PAIR.unpack_from(body, _BATCH_COUNT.size + k * _PAIR.size) for k in range(count))


def _err(value: Any) -> tuple[str | None, str | None]:
    if value is None or value[0] is None:
        return None, None
    return str(value[0]), str(value[1])


def _manifest_row(m: ManifestEntry) -> list[Any]:
    row: list[Any] = [m.id, m.dst_volume, m.dst_path, m.size, m.mtime_ns, m.mode]
    if m.error_code or m.parent is not None or m.files is not None:
        row += [m.error_code, m.error_message]
    if m.parent is not None or m.files is not None:
        row += [m.parent, m.files]  # version 2: folders
    return row


def _optional_int(row: list[Any], index: int) -> int | None:
    return int(row[index]) if len(row) > index and row[index] is not None else None


def _optional_str(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return None if value is None else str(value)


def decode_body(kind: int, body: memoryview, *, copy: bool = True, version: int = 1) -> Event:
    """The event carried by a frame of type ``kind`` (``body`` excludes the header), in the body
    format of protocol ``version``. With ``copy=False`` the data of CHUNK and BATCH events are
    memoryviews of ``body`` (for a caller that consumes the event before it reuses the
    buffer)."""
    try:
        if version >= 3:
            if kind == FrameType.MANIFEST:
                return decode_manifest(body, version)
            if kind == FrameType.FILE_DONE:
                return decode_file_done(body)
            if version >= 4 and kind == FrameType.PLAN:
                return decode_plan(body)
        return _decode(FrameType(kind), body, copy)
    except ProtocolError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
        raise ProtocolError(f"malformed frame of type {kind:#04x}: {exc}", remote=True) from exc


def _decode(kind: FrameType, body: memoryview, copy: bool = True) -> Event:
    if kind is FrameType.CHUNK:
        file_id, index, checksum = _CHUNK.unpack_from(body, 0)
        data = body[_CHUNK.size :]
        return Chunk(file_id, index, checksum, bytes(data) if copy else data)  # type: ignore[arg-type]
    if kind is FrameType.BATCH:
        (count,) = _BATCH_COUNT.unpack_from(body, 0)
        pos = _BATCH_COUNT.size
        entries = []
        for _ in range(count):
            file_id, length, checksum = _BATCH_ENTRY.unpack_from(body, pos)
            pos += _BATCH_ENTRY.size
            if pos + length > len(body):
                raise ProtocolError("batch entry runs past its frame", remote=True)
            data = body[pos : pos + length]
            entries.append(BatchEntry(file_id, checksum, bytes(data) if copy else data))  # type: ignore[arg-type]
            pos += length
        if pos != len(body):
            raise ProtocolError("trailing bytes after the last batch entry", remote=True)
        return Batch(tuple(entries))
    if kind is FrameType.FILE_END:
        file_id, digest = _FILE_END.unpack(body)
        return FileEnd(file_id, digest)
    if kind is FrameType.ACK:
        return Ack(_read_pairs(body))
    if kind is FrameType.NACK:
        return Nack(_read_pairs(body))
    obj = _load(body)
    if kind is FrameType.HELLO:
        if obj.get("magic") != "reelsync":
            raise ProtocolError("the peer does not speak the reelsync protocol", remote=True)
        role = obj["role"]
        if role not in ("send", "receive"):
            raise ProtocolError(f"unknown role {role!r}", remote=True)
        ticket = obj.get("ticket")
        return Hello(
            versions=tuple(int(v) for v in obj["versions"]),
            session=str(obj["session"]),
            stream=int(obj["stream"]),
            streams=int(obj["streams"]),
            role=role,
            ticket=None if ticket is None else str(ticket),
        )
    if kind is FrameType.WELCOME:
        return Welcome(int(obj["version"]), str(obj["session"]), int(obj["stream"]))
    if kind is FrameType.WANT:
        return Want(
            tuple(
                WantEntry(int(i), str(sv), str(sp), str(dv), str(dp))
                for i, sv, sp, dv, dp in obj["files"]
            ),
            _optional_str(obj, "ticket"),
        )
    if kind is FrameType.MANIFEST:
        files = []
        for row in obj["files"]:
            code, message = _err(row[6:8] if len(row) > 6 else None)
            files.append(
                ManifestEntry(
                    int(row[0]),
                    str(row[1]),
                    str(row[2]),
                    int(row[3]),
                    int(row[4]),
                    int(row[5]),
                    code,
                    message,
                    _optional_int(row, 8),
                    _optional_int(row, 9),
                )
            )
        return Manifest(int(obj["chunk_size"]), tuple(files), _optional_str(obj, "ticket"))
    if kind is FrameType.PLAN:
        plan_entries: list[PlanEntry] = []
        for p in obj["files"]:
            action = p["action"]
            if action not in ("send", "skip", "fail"):
                raise ProtocolError(f"unknown plan action {action!r}", remote=True)
            have = tuple((int(i), bytes.fromhex(c)) for i, c in p.get("have", ()))
            if any(len(c) != CHECKSUM_SIZE for _, c in have):
                raise ProtocolError("a resume checksum must be 16 bytes", remote=True)
            code, message = _err(p.get("error"))
            plan_entries.append(PlanEntry(int(p["id"]), action, have, code, message))
        return Plan(tuple(plan_entries))
    if kind is FrameType.FILE_ABORT:
        return FileAbort(int(obj["id"]), str(obj["code"]), str(obj["message"]))
    if kind is FrameType.FILE_DONE:
        results = []
        for r in obj["results"]:
            code, message = _err(r.get("error"))
            digest = r.get("digest")
            results.append(
                FileOutcome(
                    int(r["id"]),
                    bool(r["ok"]),
                    bool(r.get("skipped", False)),
                    bytes.fromhex(digest) if digest else None,
                    code,
                    message,
                )
            )
        return FileDone(tuple(results))
    if kind is FrameType.BYE:
        return Bye()
    if kind is FrameType.FAILURE:
        return Failure(str(obj["code"]), str(obj["message"]))
    raise ProtocolError(f"unknown frame type {kind:#04x}", remote=True)  # pragma: no cover
