"""A job's derived state: status (through :func:`reelsync.domain.status.rollup`), progress, size,
bytes done and the finished time, recomputed from its tasks in one grouped query.

Rules: call :func:`refresh_job` after anything that changes a job's tasks, in the same transaction
(the services do; the scheduler and agent reports must too). Progress counts bytes when sizes are
known, else tasks; excluded tasks do not count. ``finished`` is set when the job reaches done,
failed or aborted, and cleared when it comes back to life.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.status import TASK_ACTIVE, JobStatus, TaskStatus, rollup

__all__ = ["ENDED", "paused_by_holds", "refresh_job", "refresh_new_job", "task_counts"]

ENDED = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.ABORTED})


def task_counts(session: Session, job_id: str) -> dict[TaskStatus, int]:
    rows = session.execute(
        select(m.Task.status, func.count()).where(m.Task.job_id == job_id).group_by(m.Task.status)
    )
    return {TaskStatus(status): int(count) for status, count in rows}


def paused_by_holds(job: m.Job, statuses: Iterable[str]) -> bool:
    """Whether ``job`` is paused by its on-hold tasks alone: none of its tasks (``statuses``,
    before a change) is active, so :func:`~reelsync.domain.status.rollup` says paused for the
    holds left. A task queued again or added then resumes it, as it revives an ended job; a job
    the user paused with work left keeps its pause."""
    if job.status != JobStatus.PAUSED.value:
        return False
    return not any(TaskStatus(status) in TASK_ACTIVE for status in statuses)


def refresh_job(session: Session, job: m.Job) -> JobStatus:
    """Recompute ``job``'s status and progress from its tasks; returns the new status."""
    session.flush()
    counted = session.execute(
        select(
            func.count(),
            func.count(m.Task.size),
            func.coalesce(func.sum(m.Task.size), 0),
            func.coalesce(func.sum(m.Task.bytes_done), 0),
            func.count().filter(m.Task.status == TaskStatus.DONE.value),
        ).where(m.Task.job_id == job.id, m.Task.status != TaskStatus.EXCLUDED.value)
    ).one()
    total, sized, size, bytes_done, done = (int(v or 0) for v in counted)
    return _apply(job, task_counts(session, job.id), total, sized, size, bytes_done, done)


def refresh_new_job(job: m.Job, tasks: Iterable[tuple[TaskStatus, int | None]]) -> JobStatus:
    """:func:`refresh_job` for a job not yet written whose tasks (status, size) are all new
    (nothing done): the same figures, counted here instead of by two queries."""
    counts: dict[TaskStatus, int] = {}
    total = sized = size = 0
    for status, task_size in tasks:
        counts[status] = counts.get(status, 0) + 1
        if status is not TaskStatus.EXCLUDED:
            total += 1
            if task_size is not None:
                sized += 1
                size += task_size
    return _apply(job, counts, total, sized, size, 0, 0)


def _apply(
    job: m.Job,
    counts: dict[TaskStatus, int],
    total: int,
    sized: int,
    size: int,
    bytes_done: int,
    done: int,
) -> JobStatus:
    status = rollup(JobStatus(job.status), counts)
    job.status = status.value
    job.task_count = sum(counts.values())
    job.size = size if total and sized == total else (size or None)
    job.bytes_done = bytes_done
    if size and sized == total:
        job.progress = round(min(100.0, 100.0 * bytes_done / size), 2)
    else:
        job.progress = round(100.0 * done / total, 2) if total else 100.0
    if status is JobStatus.DONE:
        job.progress = 100.0
    if status in ENDED:
        job.finished = job.finished or utcnow()
        job.speed = 0.0
        job.etr = None
    else:
        job.finished = None
    job.modified = utcnow()
    return status
