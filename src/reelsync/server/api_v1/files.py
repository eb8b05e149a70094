"""/files/{op}: read-only file operations on a volume at a site (exists, ls, getsize).

Rules: the path is relative to the volume root and confined (no ``..``); the caller needs read
access (ACL) on it, judged again by the agent on where the path really leads (its scope); the
operation itself runs on an agent serving the volume at ``site`` (the main site when omitted)
through the ``FileOperator`` on ``app.state.file_operator``, which the agent part plugs in; without
one every call answers 503 "no agent serves volume ...".
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from reelsync.domain.fileops import FileOp, FileOperator, FileRequest, NoAgentFileOperator
from reelsync.domain.party import normalise_relative
from reelsync.server.dependencies import CurrentActor, DatabaseDep
from reelsync.services import acls, sites, volumes

__all__ = ["ReadOp", "file_operator_of", "router"]

router = APIRouter(prefix="/files", tags=["files"])


class ReadOp(StrEnum):
    EXISTS = "exists"
    LS = "ls"
    GETSIZE = "getsize"


def file_operator_of(request: Request) -> FileOperator:
    """The app's file operator (set by the agent part), else one that says no agent serves it."""
    operator: FileOperator | None = getattr(request.app.state, "file_operator", None)
    return operator if operator is not None else NoAgentFileOperator()


@router.get("/{op}")
async def file_operation(
    op: ReadOp,
    request: Request,
    db: DatabaseDep,
    actor: CurrentActor,
    volume: str = "(default)",
    path: str = "",
    site: str | None = None,
    recursive: bool = False,
    files_only: bool = False,
) -> dict[str, Any]:
    rel = normalise_relative(path)

    def resolve() -> tuple[str, str, str | None, str]:
        vol = volumes.get_volume(db, actor, volume)
        scope = acls.check_access(db, actor, vol.id, rel, read=True)
        site_code = sites.get_site(db, actor, site).code if site else None
        return vol.id, vol.code, site_code, scope

    volume_id, volume_code, site_code, scope = await run_in_threadpool(resolve)
    file_request = FileRequest(
        op=FileOp(op.value),
        volume_id=volume_id,
        volume_code=volume_code,
        path=rel,
        recursive=recursive,
        files_only=files_only,
        site_code=site_code,
        scope=scope,
    )
    result = await file_operator_of(request).run(file_request)
    return {"op": op.value, "volume": volume_code, "path": rel, "site": site_code, "result": result}
