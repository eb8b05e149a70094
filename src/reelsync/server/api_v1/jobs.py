"""/jobs and /jobs/{id}/tasks. A job is submitted in the accsyn job JSON (forms A, B and C)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Header, Query, Response, status

from reelsync.domain.records import Job, Task
from reelsync.domain.status import JobStatus
from reelsync.server.api_v1.schemas import ItemList, JobUpdate, TaskAppend, TaskEdit, page_of
from reelsync.server.dependencies import CurrentActor, DatabaseDep, SubmitHookDep
from reelsync.services import jobs, tasks

router = APIRouter(prefix="/jobs", tags=["jobs"])

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
    finished: bool | None = None,
    limit: int = Query(100, ge=1, le=jobs.MAX_PAGE),
    offset: int = Query(0, ge=0),
) -> ItemList[Job]:
    return page_of(
        jobs.list_jobs(
            db,
            actor,
            status=status,
            queue=queue,
            user=user,
            name=name,
            finished=finished,
            limit=limit,
            offset=offset,
        )
    )


@router.get("/{job_id}")
def get_job(job_id: str, db: DatabaseDep, actor: CurrentActor) -> Job:
    return jobs.get_job(db, actor, job_id)


@router.patch("/{job_id}")
def update_job(job_id: str, body: JobUpdate, db: DatabaseDep, actor: CurrentActor) -> Job:
    return jobs.update_job(
        db,
        actor,
        job_id,
        status=body.status,
        name=body.name,
        queue=body.queue,
        settings=body.settings,
        metadata=body.metadata,
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
) -> ItemList[Task]:
    return page_of(tasks.list_tasks(db, actor, job_id, status=status, limit=limit, offset=offset))


@router.post("/{job_id}/tasks", status_code=status.HTTP_201_CREATED)
def add_tasks(job_id: str, body: TaskAppend, db: DatabaseDep, actor: CurrentActor) -> list[Task]:
    return tasks.add_tasks(db, actor, job_id, body.tasks, allow_duplicates=body.allow_duplicates)


@router.patch("/{job_id}/tasks")
def edit_tasks(
    job_id: str, body: list[TaskEdit], db: DatabaseDep, actor: CurrentActor
) -> list[Task]:
    edits = [edit.model_dump(exclude_none=True) for edit in body]
    return tasks.update_tasks(db, actor, job_id, edits)


@router.get("/{job_id}/tasks/{ref}")
def get_task(job_id: str, ref: str, db: DatabaseDep, actor: CurrentActor) -> Task:
    return tasks.get_task(db, actor, job_id, ref)
