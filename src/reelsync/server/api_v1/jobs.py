"""/jobs and /jobs/{id}/tasks. A job is submitted in the accsyn job JSON (forms A, B and C)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Response, status

from reelsync.db import Database
from reelsync.domain.records import Actor, Job, Task
from reelsync.domain.status import JobStatus
from reelsync.server.api_v1.schemas import ItemList, JobUpdate, TaskAppend, TaskEdit, page_of
from reelsync.server.dependencies import CurrentActor, DatabaseDep
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
    payload: dict[str, Any] = Body(..., examples=[_JOB_EXAMPLE]),
) -> Job:
    return jobs.submit_job(db, actor, payload)


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


def _control(db: Database, actor: Actor, job_id: str, target: JobStatus) -> Job:
    return jobs.update_job(db, actor, job_id, status=target)


@router.post("/{job_id}/pause")
def pause_job(job_id: str, db: DatabaseDep, actor: CurrentActor) -> Job:
    """Hold the job: files in flight stop (back to queued), it keeps its place in its queue."""
    return _control(db, actor, job_id, JobStatus.PAUSED)


@router.post("/{job_id}/resume")
def resume_job(job_id: str, db: DatabaseDep, actor: CurrentActor) -> Job:
    return _control(db, actor, job_id, JobStatus.WAITING)


@router.post("/{job_id}/abort")
def abort_job(job_id: str, db: DatabaseDep, actor: CurrentActor) -> Job:
    """Stop the job: files in flight stop; it can be revived with resume or retry."""
    return _control(db, actor, job_id, JobStatus.ABORTED)


@router.post("/{job_id}/retry")
def retry_job(job_id: str, db: DatabaseDep, actor: CurrentActor) -> Job:
    """Failed tasks are queued again with their tries reset; retry backoffs are skipped."""
    return _control(db, actor, job_id, JobStatus.WAITING)


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
