"""/syncs: a site sync in one request (what ``reelsync sync`` sends): checked, sized at the
source agent through the app's file operator, and each project's day's job appended to or
created (:mod:`reelsync.services.syncs`)."""

from __future__ import annotations

from fastapi import APIRouter, Header, Request, status

from reelsync.server.api_v1.files import file_operator_of
from reelsync.server.api_v1.schemas import SyncCreate
from reelsync.server.dependencies import CurrentActor, DatabaseDep, SubmitHookDep
from reelsync.services import syncs

__all__ = ["router"]

router = APIRouter(prefix="/syncs", tags=["syncs"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_sync(
    body: SyncCreate,
    request: Request,
    db: DatabaseDep,
    actor: CurrentActor,
    hook: SubmitHookDep,
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        description="Send the same key again (a retry after a dropped connection) to get the "
        "jobs the first request made or appended to, with nothing appended twice.",
    ),
) -> syncs.SyncOutcome:
    return await syncs.site_sync(
        db,
        actor,
        file_operator_of(request),
        body.paths,
        body.site,
        body.direction,
        body.queue,
        volume=body.volume,
        idempotency_key=idempotency_key,
        hook=hook,
    )
