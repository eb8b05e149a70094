"""/jobs and /jobs/{id}/tasks. A job is submitted in the accsyn job JSON (forms A, B and C)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from reelsync.domain.records import Job, Task
from reelsync.domain.status import JobStatus
from reelsync.errors import ValidationError
from reelsync.server.api_v1.schemas import ItemList, JobUpdate, TaskAppend, TaskEdit, page_of
from reelsync.server.dependencies import (
    CurrentActor,
    DatabaseDep,
    ServerConfigDep,
    SubmitHookDep,
)
from reelsync.server.jobbell import TICK_S, JobBell
from reelsync.services import jobs, tasks

router = APIRouter(prefix="/jobs", tags=["jobs"])
_ENDED = (JobStatus.DONE, JobStatus.FAILED, JobStatus.ABORTED)

_JOB_EXAMPLE = {
    "name": "proj001 download london",
    "queue": "proj001",
    "tasks": [
        {"source": "share=projects/proj001/sc0010/sh0010/scans", "destination": "site=london"}
    ],
}


@router.post("", status_code=status.HTTP_201_CREATED)
def submit_job(
    db: DatabaseDep,
    actor: CurrentActor,
    hook: SubmitHookDep,
    payload: dict[str, Any] = Body(..., examples=[_JOB_EXAMPLE]),
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        description="Send the same key again (e.g. a retry after a dropped connection) to get "
        "the job the first request made instead of a second one.",
    ),
) -> Job:
    return jobs.submit_job(db, actor, payload, hook=hook, idempotency_key=idempotency_key)


@router.get("")
def list_jobs(
    db: DatabaseDep,
    actor: CurrentActor,
    status: str | None = None,
    queue: str | None = None,
    user: str | None = None,
    name: str | None = None,
    finished: bool | None = Query(
        None,
        description="false: not done or aborted (accsyn's meaning: a failed job is not finished,"
        " it can be retried); true: done or aborted",
    ),
    active: bool | None = Query(
        None,
        description="true: init, waiting, running or paused (the web UI's Active and `reelsync"
        " job list --active`: a failed job has ended); false: the others",
    ),
    limit: int = Query(100, ge=1, le=jobs.MAX_PAGE),
    offset: int = Query(0, ge=0),
    after: str | None = Query(
        None, max_length=64, description="the `next` of the previous page (paging by key)"
    ),
) -> ItemList[Job]:
    """Jobs, newest first. Page with `after` (each page costs the same however deep); `total`
    is exact up to 10,000 matches and null past that."""
    return page_of(
        jobs.list_jobs(
            db,
            actor,
            status=status,
            queue=queue,
            user=user,
            name=name,
            finished=finished,
            active=active,
            limit=limit,
            offset=offset,
            after=after,
        )
    )


@router.get("/{job_id}")
async def get_job(
    job_id: str,
    request: Request,
    db: DatabaseDep,
    actor: CurrentActor,
    wait: Annotated[float, Query(ge=0, le=60, description="long-poll: seconds to wait")] = 0,
    since: Annotated[
        str | None, Query(max_length=64, description="the job's modified as last seen")
    ] = None,
) -> Job:
    """The job; with ``wait`` and ``since``, answered once the job's ``modified`` differs from
    ``since``, the job has ended, or ``wait`` seconds passed (follow a job without a timer)."""
    job = await run_in_threadpool(jobs.get_job, db, actor, job_id)
    if not wait or since is None:
        return job
    seen = _moment(since)
    bell: JobBell = request.app.state.job_bell
    deadline = time.monotonic() + wait
    while job.modified == seen and job.status not in _ENDED:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        await bell.wait(min(remaining, TICK_S))
        job = await run_in_threadpool(jobs.get_job, db, actor, job_id)
    return job


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"since must be the job's modified time, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.patch("/{job_id}")
def update_job(
    job_id: str, body: JobUpdate, db: DatabaseDep, actor: CurrentActor, config: ServerConfigDep
) -> Job:
    return jobs.update_job(
        db,
        actor,
        job_id,
        status=body.status,
        name=body.name,
        queue=body.queue,
        settings=body.settings,
        metadata=body.metadata,
        fence_s=config.fence_s,
    )


@router.post("/{job_id}/retry")
def retry_job(job_id: str, db: DatabaseDep, actor: CurrentActor) -> Job:
    """Failed tasks are queued again with their tries reset and retry backoffs are skipped (the
    same as PATCH {"status": "waiting"}; pause, resume and abort are PATCH status writes)."""
    return jobs.update_job(db, actor, job_id, status=JobStatus.WAITING)


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_job(job_id: str, db: DatabaseDep, actor: CurrentActor, force: bool = False) -> Response:
    jobs.delete_job(db, actor, job_id, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{job_id}/tasks")
def list_tasks(
    job_id: str,
    db: DatabaseDep,
    actor: CurrentActor,
    status: str | None = None,
    limit: int = Query(1000, ge=1, le=tasks.MAX_PAGE),
    offset: int = Query(0, ge=0),
    after: str | None = Query(
        None, max_length=255, description="the `next` of the previous page (the last uri)"
    ),
) -> ItemList[Task]:
    """A job's tasks in uri order. Page with `after` (each page costs the same however deep);
    `total` is the job's task count (with `status`, counted among the job's tasks)."""
    return page_of(
        tasks.list_tasks(db, actor, job_id, status=status, limit=limit, offset=offset, after=after)
    )


@router.get("/{job_id}/task-counts")
def count_tasks(job_id: str, db: DatabaseDep, actor: CurrentActor) -> dict[str, int]:
    """How many of the job's tasks are in each status, e.g. ``{"done": 18, "failed": 2}``
    (statuses with no task left out)."""
    return tasks.count_tasks(db, actor, job_id)


@router.post("/{job_id}/tasks", status_code=status.HTTP_201_CREATED)
def add_tasks(
    job_id: str,
    body: TaskAppend,
    db: DatabaseDep,
    actor: CurrentActor,
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        description="Send the same key again (e.g. a retry after a dropped connection) to get "
        "the tasks the first request appended instead of appending them again.",
    ),
) -> list[Task]:
    return tasks.add_tasks(
        db,
        actor,
        job_id,
        body.tasks,
        allow_duplicates=body.allow_duplicates,
        idempotency_key=idempotency_key,
    )


@router.patch("/{job_id}/tasks")
def edit_tasks(
    job_id: str, body: list[TaskEdit], db: DatabaseDep, actor: CurrentActor
) -> list[Task]:
    edits = [edit.model_dump(exclude_none=True) for edit in body]
    return tasks.update_tasks(db, actor, job_id, edits)


@router.get("/{job_id}/tasks/{ref}")
def get_task(job_id: str, ref: str, db: DatabaseDep, actor: CurrentActor) -> Task:
    return tasks.get_task(db, actor, job_id, ref)
