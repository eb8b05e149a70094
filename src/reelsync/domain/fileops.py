"""File operations on a volume, as the accsyn ``workspace/file`` event asks for them.

The control plane never touches volume files itself: an operation is resolved (volume, path inside
it, the caller's ACL checked, the ACL's scope attached) and handed to a :class:`FileOperator`, which
the agent part implements by relaying it to an agent serving the volume. Until one is plugged in,
the server uses :class:`NoAgentFileOperator`, which answers that no agent serves the volume.

Rules: ``path`` and ``path_to`` are relative to the volume root, ``/``-separated, never absolute and
never containing ``..`` (the caller resolves and confines them first); results are plain JSON values
in the accsyn shapes (``ls``: a list of ``{type: 0 dir | 1 file, filename, size?, modified?,
files?}``; ``getsize``: int; ``exists``: bool; the others: ``True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from reelsync.errors import UnavailableError

__all__ = ["FileOp", "FileOperator", "FileRequest", "NoAgentFileOperator"]


class FileOp(StrEnum):
    LS = "ls"
    GETSIZE = "getsize"
    EXISTS = "exists"
    MKDIR = "mkdir"
    RENAME = "rename"
    MOVE = "move"
    DELETE = "delete"
    SIZES = "sizes"  # getsize of each of ``paths`` in one round trip (reelsync sync)

    @property
    def writes(self) -> bool:
        return self in (FileOp.MKDIR, FileOp.RENAME, FileOp.MOVE, FileOp.DELETE)


@dataclass(frozen=True, slots=True)
class FileRequest:
    """One resolved operation: ``volume_id`` / ``volume_code`` and a confined relative path."""

    op: FileOp
    volume_id: str
    volume_code: str
    path: str
    path_to: str | None = None
    recursive: bool = False
    maxdepth: int | None = None
    getsize: bool = False
    files_only: bool = False
    directories_only: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    force: bool = False
    site_code: str | None = None
    scope: str = ""  # the granted sub-path the resolved ``path`` must stay in ("" = the volume)
    scope_to: str = ""  # the same for ``path_to``
    paths: tuple[str, ...] = ()  # ``sizes``: the paths, with their scopes in ``scopes``
    scopes: tuple[str, ...] = ()


class FileOperator(Protocol):
    """Runs file operations on the agent that serves a volume (implemented by the agent part)."""

    async def run(self, request: FileRequest) -> Any:
        """The operation's result in the accsyn shape; raise a ReelsyncError on failure."""
        ...


class NoAgentFileOperator:
    """The operator used until agents exist: every operation is refused with a clear message."""

    async def run(self, request: FileRequest) -> Any:
        raise UnavailableError(
            f"no agent serves volume {request.volume_code!r}, so its files cannot be reached "
            f"({request.op.value} {request.path or '/'})",
            hint="file operations need a reelsync agent (site server) serving the volume",
        )
