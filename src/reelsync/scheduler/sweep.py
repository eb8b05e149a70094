"""The sweep: take work back from agents that went silent, and mark them offline.

Rules:
- An ``online`` agent whose last heartbeat is older than ``offline_after_s`` becomes ``offline``.
- A task in flight goes back to ``queued`` (lease dropped, ``last_error`` says why) when its lease
  expired, when its dialing or listening agent is no longer online, or when its job was paused or
  aborted (then without an error). Losing a lease does NOT count as a try: the file did not fail,
  an agent or a link did; ``tries`` is only for failures an agent reports. The task is due at once
  and goes to whichever agents are online -- except when its dialing agent is still online (the
  listener went offline, or the lease expired while the dialer still beats): then it waits
  ``fence_s`` (the server's setting), the time for that dialer's next report to be refused and
  its transfer stopped (less if the dialer says that transfer stopped, see :mod:`.reports`), so
  two receivers never write one file at once.
- A running job whose agents have not reported progress for ``STALE_SPEED_S`` shows speed 0 and no
  time remaining (until the next report).
- Run by the server process every few seconds (:mod:`reelsync.scheduler.loop`); safe in several
  processes at once (rows are taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL). Cost: the
  tasks in flight and the agents, never the backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from reelsync.config import DEFAULT_FENCE_S
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.records import ServerStatus
from reelsync.domain.status import JobStatus
from reelsync.scheduler.agents import IN_FLIGHT
from reelsync.scheduler.reports import release_tasks
from reelsync.services.rollup import refresh_job

__all__ = ["STALE_SPEED_S", "SweepResult", "sweep"]

STALE_SPEED_S = 30.0
_HELD_JOBS = ("paused", "aborted")


@dataclass(frozen=True, slots=True)
class SweepResult:
    offline: tuple[str, ...] = ()  # agents marked offline
    released: int = 0  # tasks put back to queued


def sweep(
    db: Database,
    *,
    now: datetime | None = None,
    offline_after_s: float,
    fence_s: float = DEFAULT_FENCE_S,
) -> SweepResult:
    moment = now or utcnow()
    with db.session() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        cutoff = moment - timedelta(seconds=offline_after_s)
        silent = list(
            session.scalars(
                select(m.Server.id).where(
                    m.Server.status == ServerStatus.ONLINE.value,
                    or_(m.Server.last_checkin.is_(None), m.Server.last_checkin < cutoff),
                )
            )
        )
        if silent:
            session.execute(
                update(m.Server)
                .where(m.Server.id.in_(silent), m.Server.status == ServerStatus.ONLINE.value)
                .values(status=ServerStatus.OFFLINE.value, modified=moment)
            )
        servers = {
            sid: (status, hostname)
            for sid, status, hostname in session.execute(
                select(m.Server.id, m.Server.status, m.Server.hostname)
            )
        }
        # lock order: jobs, then their tasks; busy rows are left for the next sweep
        job_ids = sorted(
            set(
                session.scalars(
                    select(m.Task.job_id).where(m.Task.status.in_(IN_FLIGHT)).distinct()
                )
            )
        )
        statuses: dict[str, str] = {}
        for start in range(0, len(job_ids), 500):
            jobs_query = select(m.Job.id, m.Job.status).where(
                m.Job.id.in_(job_ids[start : start + 500])
            )
            if postgres:
                jobs_query = jobs_query.with_for_update(skip_locked=True)
            for job_id, status in session.execute(jobs_query):
                statuses[job_id] = status
        by_reason: dict[str | None, list[m.Task]] = {}
        for start in range(0, len(statuses), 500):
            query = select(m.Task).where(
                m.Task.status.in_(IN_FLIGHT),
                m.Task.job_id.in_(sorted(statuses)[start : start + 500]),
            )
            if postgres:
                query = query.with_for_update(skip_locked=True)
            for task in session.scalars(query).all():
                release, reason = _why(task, statuses[task.job_id], servers, moment)
                if release:
                    by_reason.setdefault(reason, []).append(task)
        released = 0
        jobs: set[str] = set()
        fence = moment + timedelta(seconds=fence_s)
        for reason, tasks in by_reason.items():
            # a dialer still online may still be sending these until its next report is refused
            dialing = {
                t
                for t in tasks
                if reason and servers.get(t.server_id or "", ("",))[0] == ServerStatus.ONLINE.value
            }
            others = [t for t in tasks if t not in dialing]
            release_tasks(session, others, moment, reason=reason)
            release_tasks(session, list(dialing), moment, reason=reason, fence_until=fence)
            released += len(tasks)
            jobs.update(t.job_id for t in tasks)
        for job_id in sorted(jobs):
            job = session.get(m.Job, job_id)
            if job is not None:
                refresh_job(session, job)
        session.execute(
            update(m.Job)
            .where(
                m.Job.status == JobStatus.RUNNING.value,
                m.Job.speed > 0,
                m.Job.speed_sampled_at < moment - timedelta(seconds=STALE_SPEED_S),
            )
            .values(speed=0.0, etr=None, speed_sampled_at=None)
            .execution_options(synchronize_session=False)
        )
        return SweepResult(offline=tuple(silent), released=released)


def _why(
    task: m.Task,
    job_status: str,
    servers: dict[str, tuple[str, str]],
    now: datetime,
) -> tuple[bool, str | None]:
    """(release?, the error to record: None for none)."""
    if job_status in _HELD_JOBS:
        return True, None
    for agent_id in (task.server_id, task.peer_id):
        if agent_id is None:
            continue
        status, hostname = servers.get(agent_id, ("deleted", agent_id))
        if status != ServerStatus.ONLINE.value:
            return True, f"agent {hostname} went {status} during the transfer; it will be retried"
    if task.server_id is None:
        return True, "the task lost its agent; it will be retried"
    if task.lease_expires_at is None or task.lease_expires_at <= now:
        hostname = servers.get(task.server_id, ("", task.server_id))[1]
        return True, f"agent {hostname} stopped reporting (lease expired); it will be retried"
    return False, None
