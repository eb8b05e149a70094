"""What the agent gives the engine and what it gets back.

Rules: paths are a volume code plus a path relative to that volume's root; each side resolves a
code to its own local :class:`~reelsync.fs.Volume`. ``key`` is the caller's id for a file (the
task id); results and progress are reported by key through a :class:`TransferObserver`, called
on the event loop's thread (it must not block). The listening side decides who may do what through
an :class:`Authorizer` that it implements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from reelsync.errors import ReelsyncError
from reelsync.fs import Volume
from reelsync.protocol import Role

__all__ = [
    "Assignment",
    "Authorizer",
    "FileResult",
    "FileSpec",
    "Grant",
    "NullObserver",
    "PeerAddress",
    "SessionRequest",
    "TransferObserver",
    "VolumePath",
]

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True, slots=True)
class VolumePath:
    volume: str
    path: str

    def __str__(self) -> str:
        return f"{self.volume}:{self.path}"


@dataclass(frozen=True, slots=True)
class FileSpec:
    """One file to move. ``size``/``mtime`` are the control plane's idea, for information; the
    sender stats the source itself."""

    key: str
    src: VolumePath
    dst: VolumePath
    size: int | None = None
    mtime: float | None = None


@dataclass(frozen=True, slots=True)
class PeerAddress:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Assignment:
    """A batch of files between this agent and one peer, run by the dialing side. With
    ``peer_id`` the listener's certificate must name that agent (else the session is refused).
    ``priority``: pushed into a session shared with other assignments, its bytes go before those
    of lower priorities (the job's queue priority: a high-priority job is not stuck behind work
    already queued in the session); above everything a busy session carries, it gets a session
    of its own (engine/pool.py, lanes)."""

    transfer_id: str
    peer: PeerAddress
    files: tuple[FileSpec, ...]
    ticket: str | None = None
    peer_id: str | None = None
    priority: int = 0


@dataclass(frozen=True, slots=True)
class FileResult:
    """Final outcome of one file (or folder). ``bytes_sent`` counts what crossed the wire in this
    transfer (less than ``size`` after a resume or a skip); ``digest`` is ``xxh3-128t:<hex>``;
    ``files`` is 1, or how many files a folder held."""

    key: str
    status: Status
    size: int = 0
    bytes_sent: int = 0
    digest: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False
    files: int = 1  # a folder: how many files it held

    @classmethod
    def failed(cls, key: str, error: ReelsyncError, *, size: int = 0, sent: int = 0) -> FileResult:
        return cls(
            key, "failed", size, sent, None, error.code, error.message, retryable=error.retryable
        )

    @property
    def ok(self) -> bool:
        return self.status != "failed"


class TransferObserver(Protocol):
    """Progress and results of files, implemented by the agent (called on the loop thread)."""

    def file_progress(self, key: str, bytes_done: int, size: int) -> None: ...

    def file_finished(self, result: FileResult) -> None: ...


class NullObserver:
    """An observer that ignores everything."""

    def file_progress(self, key: str, bytes_done: int, size: int) -> None:
        return None

    def file_finished(self, result: FileResult) -> None:
        return None


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What the listening side knows about a dialer before it accepts a session."""

    peer_certificate: bytes  # DER, already verified against the workspace CA
    ticket: str | None
    role: Role  # the dialer's role: "send" pushes to us, "receive" pulls from us
    streams: int


@dataclass(frozen=True, slots=True)
class Grant:
    """What an accepted session may touch on this side. ``paths`` (volume code, relative path)
    limits it to those files (e.g. a ticket's list); None allows any path in ``volumes``."""

    volumes: Mapping[str, Volume]
    paths: frozenset[tuple[str, str]] | None = None
    observer: TransferObserver | None = None
    transfer_id: str | None = None


class Authorizer(Protocol):
    """The listening agent's gate: return a Grant, or raise PermissionDeniedError to refuse."""

    def authorize(self, request: SessionRequest) -> Grant: ...
