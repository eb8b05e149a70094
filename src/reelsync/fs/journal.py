"""The resume journal: which chunks of a partial file are already verified and written.

Rules: the journal is a sidecar ``.<name>.reelsync-journal`` next to the part file. Its first line
is a JSON header naming the source version it belongs to (size, mtime, chunk size); then one
20-byte record per verified chunk (``!I16s``: index, checksum), appended after the chunk was
written. A journal whose header does not match the incoming source is discarded; a torn last
record is ignored. Records are only hints: the receiver re-reads and re-hashes each chunk before
offering it for resume, so a crash that lost page-cache data cannot produce a wrong file.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["JournalHeader", "ResumeJournal"]

_RECORD = struct.Struct("!I16s")


@dataclass(frozen=True, slots=True)
class JournalHeader:
    size: int
    mtime_ns: int
    chunk_size: int

    def encode(self) -> bytes:
        obj = {"v": 1, "size": self.size, "mtime_ns": self.mtime_ns, "chunk_size": self.chunk_size}
        return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class ResumeJournal:
    """An append-only record of verified chunks of one part file."""

    def __init__(self, path: Path, header: JournalHeader, fd: int, records: dict[int, bytes]):
        self.path = path
        self.header = header
        self._fd = fd
        self.records = records

    @classmethod
    def open(cls, path: Path, header: JournalHeader) -> ResumeJournal:
        """Open the journal at ``path`` for ``header``'s source, keeping records only if the
        existing journal belongs to the same source version."""
        records = cls._load(path, header)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        if records is None:
            flags |= os.O_TRUNC
        fd = os.open(path, flags, 0o600)
        if records is None:
            os.write(fd, header.encode())
            records = {}
        return cls(path, header, fd, records)

    @staticmethod
    def _load(path: Path, header: JournalHeader) -> dict[int, bytes] | None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        line, sep, rest = raw.partition(b"\n")
        try:
            obj = json.loads(line) if sep else None
        except ValueError:
            return None
        if not isinstance(obj, dict) or obj.get("v") != 1:
            return None
        found = JournalHeader(
            obj.get("size", -1), obj.get("mtime_ns", -1), obj.get("chunk_size", -1)
        )
        if found != header:
            return None
        whole = len(rest) - len(rest) % _RECORD.size
        records = {}
        for pos in range(0, whole, _RECORD.size):
            index, checksum = _RECORD.unpack_from(rest, pos)
            records[index] = checksum
        if whole != len(rest):  # drop the torn tail so later appends stay aligned
            with open(path, "r+b") as fh:
                fh.truncate(len(line) + 1 + whole)
        return records

    def record(self, index: int, checksum: bytes) -> None:
        """Note chunk ``index`` as written and verified (one atomic append)."""
        os.write(self._fd, _RECORD.pack(index, checksum))
        self.records[index] = checksum

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
