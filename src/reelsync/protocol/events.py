"""The events of the reelsync data-plane protocol: what a :class:`~reelsync.protocol.Connection`
turns bytes into, and what it turns back into bytes. One event is one frame on the wire.

Rules: events are frozen, slotted value objects; ids are the per-session integer file ids the
sender gives each manifest entry; checksums are the 16-byte big-endian xxh3-128 digests of
:mod:`reelsync.domain.chunks`. Which side may send which event, and on which stream, is the
state machine's business (:mod:`reelsync.protocol.connection`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Ack",
    "Batch",
    "BatchEntry",
    "Bye",
    "Chunk",
    "ConnectionClosed",
    "Event",
    "Failure",
    "FileAbort",
    "FileDone",
    "FileEnd",
    "FileOutcome",
    "FileRun",
    "Hello",
    "Manifest",
    "ManifestEntry",
    "Nack",
    "Plan",
    "PlanEntry",
    "Role",
    "RunPlan",
    "Want",
    "WantEntry",
    "Welcome",
]

Role = Literal["send", "receive"]
PlanAction = Literal["send", "skip", "fail"]


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame of every stream, from the dialing side. ``stream`` 0 opens a session; streams
    1..``streams``-1 join the session ``session`` opened by stream 0. ``role`` is the dialer's."""

    versions: tuple[int, ...]
    session: str
    stream: int
    streams: int
    role: Role
    ticket: str | None = None


@dataclass(frozen=True, slots=True)
class Welcome:
    """The listening side's answer to :class:`Hello`: the version both will speak."""

    version: int
    session: str
    stream: int


@dataclass(frozen=True, slots=True)
class WantEntry:
    id: int
    src_volume: str
    src_path: str
    dst_volume: str
    dst_path: str


@dataclass(frozen=True, slots=True)
class Want:
    """A pulling receiver asks the sender for these files (the sender answers with a manifest).

    Version 3: a dialer may send several; ``ticket`` (if set) is a further transfer ticket whose
    paths the listener adds to what the session may touch (see docs/protocol.md, Sessions)."""

    files: tuple[WantEntry, ...]
    ticket: str | None = None


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One file the sender offers. ``error`` set: the sender cannot read it (nothing follows).

    Version 2 adds folders: a requested id that is a folder is announced as its files first, each
    with a new id and ``parent`` = the folder's id (``dst_path`` under the folder's), then as one
    entry with ``files`` = how many were announced (``size`` their total; nothing follows it)."""

    id: int
    dst_volume: str
    dst_path: str
    size: int
    mtime_ns: int
    mode: int
    error_code: str | None = None
    error_message: str | None = None
    parent: int | None = None
    files: int | None = None

    @property
    def is_folder(self) -> bool:
        return self.files is not None


@dataclass(frozen=True, slots=True, eq=False)
class FileRun:
    """Version 4: files of folder ``parent`` (its destination path: ``folder``), in columns:
    file ``i`` has id ``first + i``, ``names[i]`` its path below the folder (``/``-separated),
    so ``dst_path`` = ``folder`` + ``/`` + ``names[i]`` (``names[i]`` alone when ``folder`` is
    empty, the volume's root)
    and ``sizes[i]``, ``mtimes[i]``, ``modes[i]``. The same files as so many
    :class:`ManifestEntry` rows with ``parent`` set (:meth:`entries`), for a fraction of the
    work per file. The columns may be arrays (``array.array``) or tuples."""

    parent: int
    first: int
    dst_volume: str
    folder: str
    names: Sequence[str]
    sizes: Sequence[int]
    mtimes: Sequence[int]
    modes: Sequence[int]

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FileRun):
            return NotImplemented
        return (self.parent, self.first, self.dst_volume, self.folder) == (
            other.parent,
            other.first,
            other.dst_volume,
            other.folder,
        ) and all(
            list(a) == list(b)
            for a, b in (
                (self.names, other.names),
                (self.sizes, other.sizes),
                (self.mtimes, other.mtimes),
                (self.modes, other.modes),
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def entries(self) -> list[ManifestEntry]:
        """The run as one manifest entry per file (what versions 2-3 send)."""
        parent, first, volume = self.parent, self.first, self.dst_volume
        head = f"{self.folder}/" if self.folder else ""
        return [
            ManifestEntry(first + i, volume, head + name, size, mtime, mode, parent=parent)
            for i, (name, size, mtime, mode) in enumerate(
                zip(self.names, self.sizes, self.mtimes, self.modes, strict=True)
            )
        ]


@dataclass(frozen=True, slots=True)
class Manifest:
    """Part of the file list, in bulk. A session may carry several parts; each gets one plan.

    Version 3: ``ticket`` (a pushing dialer's) as in :class:`Want`. Version 4: ``runs``, files
    of folders in columns (:class:`FileRun`), announced before ``files``; an older version
    sends them as entries of ``files``."""

    chunk_size: int
    files: tuple[ManifestEntry, ...]
    ticket: str | None = None
    runs: tuple[FileRun, ...] = ()


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """What the receiver needs of one file. ``have`` lists (chunk index, checksum) pairs it already
    holds verified from an earlier session (resume); the sender re-checks them against its
    source."""

    id: int
    action: PlanAction
    have: tuple[tuple[int, bytes], ...] = ()
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class RunPlan:
    """Version 4: the answer for the :class:`FileRun` whose ids start at ``first``: the files at
    the indexes in ``send`` are to be sent (no chunks held), the others skipped, except a file
    an entry of the plan's ``files`` names (that entry decides). A no-op folder: ``send``
    empty."""

    first: int
    count: int
    send: Sequence[int] = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunPlan):
            return NotImplemented
        return (self.first, self.count, list(self.send)) == (
            other.first,
            other.count,
            list(other.send),
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Plan:
    """The answer to one Manifest: one entry per file of its ``files``; version 4, one
    :class:`RunPlan` per run of it too."""

    files: tuple[PlanEntry, ...]
    runs: tuple[RunPlan, ...] = ()


@dataclass(frozen=True, slots=True)
class Chunk:
    """``data`` is bytes ``index * chunk_size`` onwards of file ``file_id``."""

    file_id: int
    index: int
    checksum: bytes
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """A whole small file (a single chunk, index 0)."""

    file_id: int
    checksum: bytes
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Batch:
    entries: tuple[BatchEntry, ...]


@dataclass(frozen=True, slots=True)
class FileEnd:
    """Every chunk of the file has been sent and the source did not change while it was read."""

    file_id: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class FileAbort:
    """The sender gives up on a file (source changed or unreadable); the receiver drops it."""

    file_id: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Ack:
    """(file id, chunk index) pairs verified and written by the receiver."""

    items: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Nack:
    """(file id, chunk index) pairs that failed their checksum: send them again."""

    items: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """Final word of the receiver on one file. ``ok`` with a digest: published under its final
    name; ``skipped``: it was already there unchanged; otherwise ``code``/``message`` say why
    not."""

    file_id: int
    ok: bool
    skipped: bool = False
    digest: bytes | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class FileDone:
    results: tuple[FileOutcome, ...]


@dataclass(frozen=True, slots=True)
class Bye:
    """The session ends: versions 1-2, the sender has every outcome it waited for; version 3,
    the dialer has no more work for the session (see docs/protocol.md, Sessions)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A fatal error for the session: ``code`` is a :mod:`reelsync.errors` code."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its end of the stream (not a frame: end of input)."""


Event = (
    Hello
    | Welcome
    | Want
    | Manifest
    | Plan
    | Chunk
    | Batch
    | FileEnd
    | FileAbort
    | Ack
    | Nack
    | FileDone
    | Bye
    | Failure
    | ConnectionClosed
)
