"""Agent reports: progress and outcome of leased tasks.

Rules:
- A report counts only from the agent holding the task's lease (``server_id``), for the transfer
  holding it (``transfer_id``, when the report names one: a stale transfer of the same agent is
  fenced off), while the task is in flight and its job is ``running``/``waiting``; anything else
  is not applied and the task is returned as *revoked* (the agent stops that transfer). A paused
  or aborted job's tasks are released back to ``queued`` when their agent reports (files in
  flight are stopped, the job keeps its place).
- A file taken back from a transfer that may still be moving it (pause, abort, a lost lease
  whose dialer still beats) stays ``queued`` with that transfer's id and ``not_before`` =
  ``fence_s`` ahead (the server's setting, :class:`reelsync.config.ServerConfig`): no other
  lease until then, or until the dialing agent reports the transfer ``stopped`` (its engine call
  has ended): then it is due at once. So a resume right after a pause never runs a second
  transfer of a file beside the first.
- ``executing``: the task moves (``booting`` -> ``executing``), ``bytes_done`` is updated and the
  lease of every task of the same transfer is renewed (``transfer_lease_s``).
- ``done``: size, digest, bytes and ``finished`` are set; the lease is dropped.
- ``failed``: ``tries`` + 1 and ``last_error`` kept; retryable and ``tries <= job_max_retries``
  (job > queue > workspace) => ``queued`` again, due after an exponential backoff
  (``job_retry_delay_s`` x 2^(tries-1)); else ``failed`` for good. A ``path_busy`` failure
  (another transfer still holds the destination's part file) is no try of this file:
  ``queued`` again after the current backoff, ``tries`` unchanged, however long that takes; a
  report without an error code (an older agent) is known as busy by the receiver's message.
- Then each touched job is recomputed (:func:`reelsync.services.rollup.refresh_job`; a progress-only
  report just adds bytes) with its speed (a moving average of bytes/s between reports, sampled at
  most once a second) and ``etr`` (seconds remaining at that speed). A job reaching done or failed
  changes ``job.status`` through the ORM in this transaction: the notifier's capture
  (:mod:`reelsync.notify.capture`, installed by the server process) writes its one outbox entry
  in the same commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from reelsync.config import DEFAULT_FENCE_S
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.records import SettingScope
from reelsync.domain.status import JobStatus, TaskStatus, check_task_transition
from reelsync.errors import PathBusyError, ValidationError
from reelsync.scheduler.agents import IN_FLIGHT
from reelsync.scheduler.model import (
    ReportOutcome,
    RetryPolicy,
    SchedulingPolicy,
    TaskReport,
    retry_delay_s,
)
from reelsync.services.rollup import refresh_job
from reelsync.services.settings import effective_settings

__all__ = ["MAX_ERROR_CHARS", "MAX_REPORTS", "apply_reports", "release_tasks", "update_speed"]

MAX_REPORTS = 10_000
MAX_ERROR_CHARS = 2000
_CHUNK = 500
_STATUSES = frozenset({"executing", "done", "failed"})
_HELD_JOBS = frozenset({JobStatus.PAUSED.value, JobStatus.ABORTED.value})
_SPEED_SAMPLE_S = 1.0


def _check(reports: Sequence[TaskReport]) -> None:
    if len(reports) > MAX_REPORTS:
        raise ValidationError(f"at most {MAX_REPORTS} reports at once")
    for report in reports:
        if report.status not in _STATUSES:
            raise ValidationError(
                f"task {report.task_id}: a report status is executing, done or failed, "
                f"not {report.status!r}"
            )
        if not isinstance(report.bytes_done, int) or report.bytes_done < 0:
            raise ValidationError(f"task {report.task_id}: bytes_done must be >= 0")
        if report.size is not None and (not isinstance(report.size, int) or report.size < 0):
            raise ValidationError(f"task {report.task_id}: size must be >= 0")


def apply_reports(
    db: Database,
    server_id: str,
    reports: Sequence[TaskReport],
    *,
    stopped: Sequence[str] = (),
    now: datetime | None = None,
    fence_s: float = DEFAULT_FENCE_S,
) -> ReportOutcome:
    """Apply a batch of reports from agent ``server_id`` in one transaction; ``stopped``: the
    transfers it was told to stop that have stopped (their files, fenced, are due at once);
    ``fence_s``: how long the files of a transfer it is told to stop wait at most for that."""
    _check(reports)
    if len(stopped) > MAX_REPORTS:
        raise ValidationError(f"at most {MAX_REPORTS} stopped transfers at once")
    if not reports and not stopped:
        return ReportOutcome()
    moment = now or utcnow()
    with db.session() as session:
        if stopped:
            _unfence(session, stopped, moment)
        if not reports:
            return ReportOutcome()
        ids = list(dict.fromkeys(r.task_id for r in reports if isinstance(r.task_id, str)))
        # lock order: jobs, then their tasks (as pause/abort and the sweep do)
        job_ids: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            job_ids.update(session.scalars(select(m.Task.job_id).where(m.Task.id.in_(chunk))))
        jobs: dict[str, m.Job] = {}
        if job_ids:
            for job in session.scalars(
                select(m.Job)
                .where(m.Job.id.in_(sorted(job_ids)))
                .order_by(m.Job.id)
                .with_for_update()
            ):
                jobs[job.id] = job
        tasks: dict[str, m.Task] = {}
        for start in range(0, len(ids), _CHUNK):
            query = select(m.Task).where(m.Task.id.in_(ids[start : start + _CHUNK]))
            for row in session.scalars(query.with_for_update()):
                if row.job_id in jobs:
                    tasks[row.id] = row
        applied: list[str] = []
        revoked: list[str] = []
        finished_jobs: set[str] = set()
        progressed: dict[str, int] = {}
        renew: set[str] = set()
        held: list[m.Task] = []
        lease_s = SchedulingPolicy.from_settings(
            effective_settings(session, SettingScope.WORKSPACE, "")
        ).lease_s
        retry_of: dict[str, RetryPolicy] = {}
        for report in reports:
            task = tasks.get(report.task_id)
            if (
                task is None
                or task.server_id != server_id
                or task.status not in IN_FLIGHT
                or (report.transfer_id is not None and report.transfer_id != task.transfer_id)
            ):
                revoked.append(report.task_id)  # not this lease: never credited, stopped
                continue
            job = jobs[task.job_id]
            if job.status in _HELD_JOBS:
                held.append(task)
                revoked.append(task.id)
                continue
            applied.append(task.id)
            if report.status == "executing":
                if task.status == TaskStatus.BOOTING.value:
                    check_task_transition(TaskStatus.BOOTING, TaskStatus.EXECUTING, system=True)
                    task.status = TaskStatus.EXECUTING.value
                bytes_done = report.bytes_done
                if task.size is None and report.size is not None:
                    task.size = report.size  # measured by the agent: the job's size changes
                    finished_jobs.add(job.id)
                if task.size is not None:
                    bytes_done = min(bytes_done, task.size)
                progressed[job.id] = progressed.get(job.id, 0) + bytes_done - task.bytes_done
                task.bytes_done = bytes_done
                task.modified = moment
                if task.transfer_id:
                    renew.add(task.transfer_id)
                continue
            finished_jobs.add(job.id)
            if report.status == "done":
                _done(task, report, moment)
            else:
                policy = retry_of.get(job.id)
                if policy is None:
                    policy = retry_of[job.id] = RetryPolicy.from_settings(
                        effective_settings(session, SettingScope.JOB, job.id)
                    )
                _failed(task, report, policy, moment)
        if renew:
            _renew(session, server_id, renew, moment + timedelta(seconds=lease_s))
        if held:
            fence = moment + timedelta(seconds=fence_s)  # until the agent says it stopped
            release_tasks(session, held, moment, reason=None, fence_until=fence)
            finished_jobs.update(t.job_id for t in held)
        for job_id, job in jobs.items():
            if job_id in finished_jobs:
                refresh_job(session, job)
            elif job_id in progressed:
                _add_bytes(session, job, progressed[job_id], moment)
            else:
                continue
            update_speed(job, moment)
        return ReportOutcome(applied=tuple(applied), revoked=tuple(dict.fromkeys(revoked)))


def _done(task: m.Task, report: TaskReport, now: datetime) -> None:
    check_task_transition(TaskStatus(task.status), TaskStatus.DONE, system=True)
    size = report.size if report.size is not None else task.size
    if size is None:
        size = report.bytes_done
    task.status = TaskStatus.DONE.value
    task.size = size
    task.bytes_done = size
    task.digest = (report.digest or None) and str(report.digest)[:128]
    if report.files is not None:
        task.files = report.files
    task.finished = now
    task.last_error = None
    task.not_before = None
    _drop_lease(task)
    task.modified = now


def _is_busy(report: TaskReport) -> bool:
    """``path_busy`` (another transfer is writing the file at the receiver): by the report's
    error code; from an agent that sends none (older than codes in reports, so older than
    part-file claims: a dialer pushing to a newer receiver, which reports the receiver's error
    as ``error: <message>``, not retryable) by how the receiver's message ends."""
    if report.error_code is not None:
        return report.error_code == PathBusyError.code
    text = (report.error or "").rstrip()
    return text.startswith(f"{PathBusyError.code}:") or text.endswith(PathBusyError.ENDINGS)


def _failed(task: m.Task, report: TaskReport, policy: RetryPolicy, now: datetime) -> None:
    busy = _is_busy(report)  # another transfer is writing it: no try
    if not busy:
        task.tries += 1
    task.last_error = (report.error or "transfer failed")[:MAX_ERROR_CHARS]
    if report.files is not None:
        task.files = report.files
    task.bytes_done = 0
    _drop_lease(task)
    task.modified = now
    if busy or (report.retryable and task.tries <= policy.max_retries):
        check_task_transition(TaskStatus(task.status), TaskStatus.QUEUED, system=True)
        task.status = TaskStatus.QUEUED.value
        task.not_before = now + timedelta(seconds=retry_delay_s(policy, max(1, task.tries)))
        return
    check_task_transition(TaskStatus(task.status), TaskStatus.FAILED, system=True)
    task.status = TaskStatus.FAILED.value
    task.finished = now
    task.not_before = None


def _drop_lease(task: m.Task) -> None:
    task.server_id = None
    task.peer_id = None
    task.transfer_id = None
    task.lease_expires_at = None


def _renew(session: Session, server_id: str, transfers: set[str], until: datetime) -> None:
    ids = sorted(transfers)
    for start in range(0, len(ids), _CHUNK):
        session.execute(
            update(m.Task)
            .where(
                m.Task.transfer_id.in_(ids[start : start + _CHUNK]),
                m.Task.server_id == server_id,
                m.Task.status.in_(IN_FLIGHT),
            )
            .values(lease_expires_at=until)
            .execution_options(synchronize_session=False)
        )


def release_tasks(
    session: Session,
    tasks: Sequence[m.Task],
    now: datetime,
    *,
    reason: str | None,
    fence_until: datetime | None = None,
) -> None:
    """Put in-flight tasks back to ``queued`` (lease dropped, no try counted). ``fence_until``:
    their transfer may still be moving them: no lease before then, or before their transfer is
    reported stopped (the task keeps its ``transfer_id`` meanwhile)."""
    for task in tasks:
        check_task_transition(TaskStatus(task.status), TaskStatus.QUEUED, system=True)
        task.status = TaskStatus.QUEUED.value
        task.bytes_done = 0
        if reason:
            task.last_error = reason[:MAX_ERROR_CHARS]
        transfer = task.transfer_id
        _drop_lease(task)
        if fence_until is not None:
            task.transfer_id, task.not_before = transfer, fence_until
        task.modified = now


def _unfence(session: Session, transfers: Sequence[str], now: datetime) -> None:
    """The transfers ``transfers`` have stopped: their fenced files are due at once."""
    ids = sorted({t for t in transfers if isinstance(t, str)})
    for start in range(0, len(ids), _CHUNK):
        session.execute(
            update(m.Task)
            .where(
                m.Task.transfer_id.in_(ids[start : start + _CHUNK]),
                m.Task.status == TaskStatus.QUEUED.value,
                m.Task.server_id.is_(None),
            )
            .values(transfer_id=None, not_before=None, modified=now)
            .execution_options(synchronize_session=False)
        )


def _add_bytes(session: Session, job: m.Job, delta: int, now: datetime) -> None:
    """Bytes moved; progress by bytes only when every task's size is known, as
    :func:`refresh_job` does (else it stays the share of tasks done, never a share of the sizes
    known so far, which would flip between the two)."""
    job.bytes_done = max(0, job.bytes_done + delta)
    if job.size and not _sizes_unknown(session, job.id):
        job.progress = round(min(100.0, 100.0 * job.bytes_done / job.size), 2)
    job.modified = now


def _unsized_task_query(job_id: str) -> Select[Any]:
    """One task of ``job_id`` whose size is unknown (served by ``ix_task_unsized``: a lookup
    whatever the job's size, since it runs on every progress report)."""
    return (
        select(m.Task.id)
        .where(
            m.Task.job_id == job_id,
            m.Task.size.is_(None),
            m.Task.status != TaskStatus.EXCLUDED.value,
        )
        .limit(1)
    )


def _sizes_unknown(session: Session, job_id: str) -> bool:
    return session.scalar(_unsized_task_query(job_id)) is not None


def update_speed(job: m.Job, now: datetime) -> None:
    """Speed (bytes/s, moving average between samples >= 1 s apart) and ``etr`` of ``job``."""
    if job.status != JobStatus.RUNNING.value:
        job.speed, job.etr = 0.0, None
        job.speed_sampled_at, job.speed_sampled_bytes = None, job.bytes_done
        return
    last = job.speed_sampled_at
    if last is None:
        job.speed_sampled_at, job.speed_sampled_bytes = now, job.bytes_done
        return
    elapsed = (now - last).total_seconds()
    if elapsed < _SPEED_SAMPLE_S:
        return
    sample = max(0.0, (job.bytes_done - job.speed_sampled_bytes) / elapsed)
    job.speed = round(sample if job.speed <= 0 else 0.5 * job.speed + 0.5 * sample, 1)
    job.speed_sampled_at, job.speed_sampled_bytes = now, job.bytes_done
    remaining = (job.size or 0) - job.bytes_done
    job.etr = int(remaining / job.speed) + 1 if job.speed > 0 and remaining > 0 else None
