"""Old history: finished tasks pruned after the admin's number of days.

Rules: the workspace setting ``prune_finished_tasks_days`` (an admin's, unset or 0 = keep
everything) says how long the tasks of a finished job (done, failed, aborted) are kept after the
job and the task finished; older ones are deleted in small batches, each its own transaction (so
SQLite's writer lock is held briefly). The job rows stay with their totals (task count, size,
bytes, progress) and so do the running totals of ``/metrics``; the job's task list is what is
left. Delivered mail and webhook rows older than the same age go too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.status import JobStatus

__all__ = ["PRUNE_SETTING", "prune", "prune_days"]

PRUNE_SETTING = "prune_finished_tasks_days"
_BATCH = 2000
_ENDED = [JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.ABORTED.value]


def prune_days(db: Database) -> int:
    """The workspace's ``prune_finished_tasks_days`` (0: keep everything; a bad value counts
    as unset)."""
    with db.reader() as session:
        value = session.scalar(
            select(m.Setting.value).where(
                m.Setting.scope == "workspace",
                m.Setting.target_id == "",
                m.Setting.key == PRUNE_SETTING,
            )
        )
    try:
        days = int(str(value).strip()) if value is not None else 0
    except ValueError:
        return 0
    return max(0, min(days, 100_000))


def prune(db: Database, *, now: datetime | None = None, days: int | None = None) -> int:
    """Delete the finished tasks older than the setting; returns how many went."""
    days = prune_days(db) if days is None else days
    if days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=days)
    gone = 0
    while True:
        with db.session() as session:
            ids = list(
                session.scalars(
                    select(m.Task.id)
                    .join(m.Job, m.Job.id == m.Task.job_id)
                    .where(
                        m.Task.finished.is_not(None),
                        m.Task.finished < cutoff,
                        m.Job.status.in_(_ENDED),
                        m.Job.finished < cutoff,
                    )
                    .limit(_BATCH)
                )
            )
            if ids:
                session.execute(delete(m.Task).where(m.Task.id.in_(ids)))
            if len(ids) < _BATCH:
                session.execute(
                    delete(m.Outbox).where(m.Outbox.status == "sent", m.Outbox.created < cutoff)
                )
        gone += len(ids)
        if len(ids) < _BATCH:
            return gone
