"""Transfer jobs: submit (the accsyn job JSON), read, list, change status, delete.

Rules:
- Admins see and change every job; other users their own. Standard users may not submit.
- A submit is validated completely before anything is written (see :mod:`.submission`); the job
  starts ``waiting`` (or ``paused`` when asked), its tasks ``queued`` unless given otherwise.
- ``append: true`` adds the tasks to the caller's latest job with the same parties (reviving it);
  with a ``name``, to the latest of those named so (a new job of that name when there is none).
- Status writes follow :func:`reelsync.domain.status.check_job_transition`: ``paused`` holds the
  job; ``waiting`` resumes it, re-queues its failed tasks with their tries reset and makes tasks
  waiting out a retry backoff due (retry, revive); ``aborted`` stops it; pausing or aborting drops
  the leases of the tasks in flight (back to queued; their agents stop at their next report);
  ``done`` ends it, excluding every task not done. Otherwise the status is derived by
  :func:`reelsync.services.rollup.refresh_job`.
- A job that has not ended (done, failed, aborted) is deleted only with ``force``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, DateTime, func, select, text, tuple_, type_coerce, update
from sqlalchemy.orm import Session

from reelsync.config import DEFAULT_FENCE_S
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.ids import new_entity_id
from reelsync.domain.jobspec import parse_job_spec
from reelsync.domain.records import Actor, Job, Page, ServerStatus
from reelsync.domain.status import (
    JOB_ACTIVE,
    JOB_FINISHED,
    JobStatus,
    TaskStatus,
    check_job_transition,
    parse_job_status,
)
from reelsync.errors import ConflictError, NotFoundError, ValidationError
from reelsync.services import audit, catalog, idempotency, queues, sites, tasks, users
from reelsync.services.auth import require_admin
from reelsync.services.paging import COUNT_CAP, job_cursor, parse_job_cursor
from reelsync.services.rollup import ENDED, refresh_job, refresh_new_job
from reelsync.services.submission import insert_tasks, party_text, plan_tasks

__all__ = [
    "MAX_OFFSET",
    "MAX_PAGE",
    "JobFilter",
    "SubmitHook",
    "delete_job",
    "delete_user_and_jobs",
    "get_job",
    "get_job_row",
    "job_record",
    "list_jobs",
    "record_sizes",
    "replayed_job",
    "scan_job_rows",
    "scan_jobs",
    "set_job_status",
    "submit_job",
    "update_job",
]

_log = logging.getLogger("reelsync.services.jobs")
MAX_PAGE = 1000
#: The most rows :func:`scan_jobs` reads in one batch.
MAX_SCAN_BATCH = 5000
MAX_OFFSET = 2**31 - 1


def _workspace_code(session: Session) -> str | None:
    return catalog.current(session).workspace_code


def job_record(session: Session, row: m.Job) -> Job:
    known = catalog.current(session)  # the owner's e-mail and the queue's code: no query
    email = known.emails.get(row.user_id, "")
    return _record(row, email, known.queue_code(row.queue_id) or "")


def _record(row: m.Job, email: str, queue_code: str) -> Job:
    return Job(
        id=row.id,
        name=row.name,
        type=row.type,
        user_id=row.user_id,
        user=email,
        queue_id=row.queue_id,
        queue=queue_code,
        status=row.status,
        source=row.source,
        destination=row.destination,
        source_site_id=row.source_site_id,
        destination_site_id=row.destination_site_id,
        progress=row.progress,
        size=row.size,
        bytes_done=row.bytes_done,
        speed=row.speed,
        tasks=row.task_count,
        settings=dict(row.settings or {}),
        metadata=dict(row.meta or {}),
        created=row.created,
        modified=row.modified,
        finished=row.finished,
        etr=row.etr,
        modifier_id=row.modifier_id,
    )


class SubmitHook(Protocol):
    """Called by :func:`submit_job` before anything is read or written (outside any transaction):
    raise a :class:`~reelsync.errors.ValidationError` to refuse the job with its message. The
    server wires :class:`reelsync.notify.hooks.PreSubmitHook` (the admin's pre-submit command)."""

    def __call__(self, db: Database, actor: Actor, payload: Mapping[str, Any], /) -> None: ...


def get_job_row(session: Session, actor: Actor, job_id: str, *, lock: bool = False) -> m.Job:
    """The job, if ``actor`` may see it (else NotFoundError, as if it did not exist)."""
    query = select(m.Job).where(m.Job.id == job_id)
    if lock:
        query = query.with_for_update()
    row = session.scalar(query) if isinstance(job_id, str) else None
    if row is None or (not actor.is_admin and row.user_id != actor.user_id):
        raise NotFoundError(f"no job {job_id!r}")
    return row


def replayed_job(db: Database, actor: Actor, key: str) -> Job | None:
    """The job an earlier submit with ``key`` made, or an earlier append with it appended to, if
    any (:mod:`.idempotency`)."""
    with db.reader() as session:
        row = idempotency.remembered(session, actor, key)
        if row is None:
            return None
        return job_record(session, get_job_row(session, actor, row.job_id))


def submit_job(
    db: Database,
    actor: Actor,
    payload: Mapping[str, Any],
    *,
    hook: SubmitHook | None = None,
    idempotency_key: str | None = None,
) -> Job:
    """Create a transfer job from accsyn job JSON (or append to one with ``append: true``);
    ``hook`` (the pre-submit hook) may refuse it first. A repeated ``idempotency_key`` (same user,
    within a week, :mod:`.idempotency`) returns the job the first submit made and changes
    nothing."""
    idempotency_key = idempotency.clean_key(idempotency_key)
    if idempotency_key is not None:
        earlier = replayed_job(db, actor, idempotency_key)
        if earlier is not None:
            return earlier
    try:
        return _submit(db, actor, payload, hook, idempotency_key)
    except ConflictError:
        # the same key submitted twice at once: the other request made the job
        earlier = replayed_job(db, actor, idempotency_key) if idempotency_key else None
        if earlier is None:
            raise
        return earlier


def _submit(
    db: Database,
    actor: Actor,
    payload: Mapping[str, Any],
    hook: SubmitHook | None,
    idempotency_key: str | None,
) -> Job:
    if hook is not None:
        hook(db, actor, payload)
    with db.session() as session:
        spec = parse_job_spec(payload, workspace_code=_workspace_code(session))
        known = catalog.current(session)
        queue = known.queue(spec.queue) if spec.queue else known.default_queue()
        plan = plan_tasks(
            session, actor, spec.tasks, mirror=spec.mirror, default_destination=spec.destination
        )
        if spec.append:
            same = select(m.Job).where(
                m.Job.user_id == actor.user_id,
                m.Job.source_site_id == plan.source_site.id,
                m.Job.destination_site_id == plan.destination_site.id,
            )
            if spec.name:  # accsyn: append to the job of that name (a new one if none)
                same = same.where(func.lower(m.Job.name) == spec.name.strip().lower())
            latest = session.scalar(same.order_by(m.Job.created.desc()).limit(1))
            if latest is not None:
                tasks.append_planned(session, latest, plan, spec.allow_duplicates)
                idempotency.remember(session, actor, idempotency_key, latest.id)
                return _warned(job_record(session, latest), plan.warnings)
        status = spec.status or JobStatus.WAITING
        if status not in (JobStatus.WAITING, JobStatus.PAUSED):
            raise ValidationError(f"a new job may be waiting or paused, not {status.value}")
        first = plan.tasks[0].source.path if plan.tasks else ""
        now = utcnow()
        job = m.Job(
            id=new_entity_id(),
            name=spec.name or (first.rsplit("/", 1)[-1] or "transfer"),
            type="transfer",
            user_id=actor.user_id,
            queue_id=queue.id,
            status=status.value,
            source=party_text(plan.source_site),
            destination=party_text(plan.destination_site),
            source_site_id=plan.source_site.id,
            destination_site_id=plan.destination_site.id,
            progress=0.0,
            size=None,
            bytes_done=0,
            speed=0.0,
            task_count=0,
            next_uri=0,
            settings=dict(spec.settings),
            meta=dict(spec.metadata),
            created=now,
            modified=now,
        )
        uris = tasks.number_planned(session, job, plan.tasks)
        refresh_new_job(job, ((t.status, t.size) for t in plan.tasks))
        session.add(job)
        session.flush()  # one INSERT with the job's figures, then its tasks
        insert_tasks(session, job.id, plan.tasks, uris, now)
        idempotency.remember(session, actor, idempotency_key, job.id)
        return _warned(_record(job, actor.email, queue.code), plan.warnings)


def _warned(job: Job, warnings: Sequence[str]) -> Job:
    """``job`` as its submit answers it: with what the submit noticed (also logged)."""
    for warning in warnings:
        _log.warning("job %s (%s): %s", job.id, job.user, warning)
    return replace(job, warnings=tuple(warnings)) if warnings else job


def get_job(db: Database, actor: Actor, job_id: str) -> Job:
    with db.reader() as session:
        return job_record(session, get_job_row(session, actor, job_id))


def _status_values(status: str | list[str]) -> list[str]:
    values = status if isinstance(status, list) else [s for s in status.split(",") if s.strip()]
    return [parse_job_status(v).value for v in values]


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What a job list asks for (all optional). ``finished``: None = all, False = not done or
    aborted (accsyn's meaning: a failed job is not finished, it can be retried), True = only
    those. ``active``: True = init, waiting, running or paused (the web UI's Active and
    ``reelsync job list --active``: a failed job has ended), False = the others. ``where`` is a
    further SQL condition on the job, its user (``m.User``) and queue (``m.Queue``), e.g. a
    translated accsyn query."""

    status: str | list[str] | None = None
    queue: str | None = None
    user: str | None = None
    finished: bool | None = None
    active: bool | None = None
    name: str | None = None
    search: str | None = None  # words the name contains
    site: str | None = None  # from or to that site
    since: datetime | None = None  # created in [since, until)
    until: datetime | None = None
    where: ColumnElement[bool] | None = None


def _conditions(session: Session, actor: Actor, wanted: JobFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if not actor.is_admin:
        where.append(m.Job.user_id == actor.user_id)
    if wanted.status:
        where.append(m.Job.status.in_(_status_values(wanted.status)))
    if wanted.queue is not None:
        where.append(m.Job.queue_id == queues.get_queue_row(session, wanted.queue).id)
    if wanted.user is not None:
        where.append(m.Job.user_id == users.get_user_row(session, wanted.user).id)
    if wanted.name is not None:
        where.append(func.lower(m.Job.name) == wanted.name.strip().lower())
    for word in (wanted.search or "").lower().split()[:8]:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(func.lower(m.Job.name).like(pattern, escape="\\"))
    if wanted.site is not None:
        site_id = sites.get_site_row(session, wanted.site).id
        where.append((m.Job.source_site_id == site_id) | (m.Job.destination_site_id == site_id))
    if wanted.since is not None:
        where.append(m.Job.created >= wanted.since)
    if wanted.until is not None:
        where.append(m.Job.created < wanted.until)
    if wanted.finished is True:
        where.append(m.Job.status.in_([s.value for s in JOB_FINISHED]))
    elif wanted.finished is False:
        # literal SQL: served by the partial index ix_job_live
        where.append(text(m.LIVE_JOB).self_group())  # type: ignore[arg-type]
    if wanted.active is not None:
        live = m.Job.status.in_([s.value for s in JOB_ACTIVE])
        where.append(live if wanted.active else ~live)
    if wanted.where is not None:
        where.append(wanted.where)
    return where


#: The columns a job record is made of, in :class:`Job`'s field order (the owner's e-mail and
#: the queue's code after ``user_id`` and ``queue_id``): lists read plain column tuples, not ORM
#: objects (~3x less Python per row).
_JOB_ROW = (
    m.Job.id,
    m.Job.name,
    m.Job.type,
    m.Job.user_id,
    m.User.email,
    m.Job.queue_id,
    m.Queue.code,
    m.Job.status,
    m.Job.source,
    m.Job.destination,
    m.Job.source_site_id,
    m.Job.destination_site_id,
    m.Job.progress,
    m.Job.size,
    m.Job.bytes_done,
    m.Job.speed,
    m.Job.task_count,
    m.Job.settings,
    m.Job.meta,
    m.Job.created,
    m.Job.modified,
    m.Job.finished,
    m.Job.etr,
    m.Job.modifier_id,
)
_CREATED = _JOB_ROW.index(m.Job.created)


def _row_record(row: Sequence[Any]) -> Job:
    """A :data:`_JOB_ROW` tuple as a record."""
    (ident, name, kind, user_id, email, queue_id, queue_code, status, source, destination,
     source_site, destination_site, progress, size, bytes_done, speed, count, settings, meta,
     created, modified, finished, etr, modifier) = row  # fmt: skip
    return Job(
        ident, name, kind, user_id, email or "", queue_id, queue_code or "", status, source,
        destination, source_site, destination_site, progress, size, bytes_done, speed, count,
        dict(settings or {}), dict(meta or {}), created, modified, finished, etr, modifier,
    )  # fmt: skip


def _select_jobs(
    where: Sequence[ColumnElement[bool]],
    after: tuple[datetime, str] | None,
    columns: Sequence[Any] = _JOB_ROW,
) -> Any:
    query = (
        select(*columns)
        .join(m.User, m.User.id == m.Job.user_id)
        .join(m.Queue, m.Queue.id == m.Job.queue_id)
        .where(*where)
    )
    if after is not None:
        query = query.where(tuple_(m.Job.created, m.Job.id) < tuple_(*after))
    return query.order_by(m.Job.created.desc(), m.Job.id.desc())


def _capped_count(session: Session, where: Sequence[ColumnElement[bool]]) -> int | None:
    """How many jobs match, counted up to COUNT_CAP on an index; None past it."""
    matching = select(m.Job.id).where(*where).limit(COUNT_CAP + 1).subquery()
    total = session.scalar(select(func.count()).select_from(matching)) or 0
    return None if total > COUNT_CAP else total


def list_jobs(
    db: Database,
    actor: Actor,
    *,
    status: str | list[str] | None = None,
    queue: str | None = None,
    user: str | None = None,
    finished: bool | None = None,
    active: bool | None = None,
    name: str | None = None,
    search: str | None = None,
    site: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    after: str | None = None,
) -> Page[Job]:
    """Jobs, newest first. ``finished``: None = all, False = not done/aborted, True = only those;
    ``active``: True = init/waiting/running/paused (what the web UI calls Active; see
    :class:`JobFilter`); ``search``: words the name contains; ``site``: from or to that site;
    ``since``/``until``: created in ``[since, until)``.

    Pages by key: pass the previous page's ``next`` as ``after`` (a deep page then costs what the
    first does); ``offset`` still works but skips rows one by one. ``total`` is exact up to
    :data:`~reelsync.services.paging.COUNT_CAP`, else None."""
    if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
        raise ValidationError(f"limit must be 1..{MAX_PAGE} and offset 0..{MAX_OFFSET}")
    key = parse_job_cursor(after) if after is not None else None
    wanted = JobFilter(
        status=status,
        queue=queue,
        user=user,
        finished=finished,
        active=active,
        name=name,
        search=search,
        site=site,
        since=since,
        until=until,
    )
    with db.reader() as session:
        where = _conditions(session, actor, wanted)
        rows = session.execute(_select_jobs(where, key).limit(limit).offset(offset)).all()
        last_page = (rows and len(rows) < limit) or (not rows and offset == 0)
        if key is None and last_page:
            total: int | None = offset + len(rows)  # no count needed
        else:
            total = _capped_count(session, where)
        items = [_row_record(row) for row in rows]
    last = items[-1] if len(rows) == limit else None
    return Page(
        items=items,
        total=total,
        limit=limit,
        offset=offset,
        next=job_cursor(last.created, last.id) if last is not None and last.created else None,
    )


def scan_jobs(db: Database, actor: Actor, wanted: JobFilter, *, batch: int = 200) -> Iterator[Job]:
    """Every job matching ``wanted``, newest first, read by key in batches (each its own short
    read transaction), so a caller that stops early reads only what it used: ``batch`` rows
    first, then four times as many each time up to :data:`MAX_SCAN_BATCH` (a long scan makes
    few round trips)."""
    for row in _scan(db, actor, wanted, _JOB_ROW, (_CREATED, 0), batch):
        yield _row_record(row)


def scan_job_rows(
    db: Database, actor: Actor, wanted: JobFilter, columns: Sequence[Any], *, batch: int = 200
) -> Iterator[Sequence[Any]]:
    """:func:`scan_jobs` as rows of ``columns`` (over ``job``, its ``user_account`` and its
    ``queue``), each followed by the job's ``created`` and ``id``: for a caller that shapes the
    rows itself (the accsyn find writes them to the wire as they come)."""
    # the key's datetime as the driver reads it (the last row's alone is used)
    keyed = (*columns, type_coerce(m.Job.created, DateTime(timezone=True)), m.Job.id)
    return _scan(db, actor, wanted, keyed, (len(columns), len(columns) + 1), batch, core=True)


def _scan(
    db: Database,
    actor: Actor,
    wanted: JobFilter,
    columns: Sequence[Any],
    key_at: tuple[int, int],
    batch: int,
    *,
    core: bool = False,
) -> Iterator[Sequence[Any]]:
    """The rows of ``columns`` by key (``created`` and ``id`` at ``key_at``); ``core``: read
    on the session's connection (plain rows, without the ORM's result handling)."""
    key: tuple[datetime, str] | None = None
    size = max(1, min(batch, MAX_SCAN_BATCH))
    created_at, id_at = key_at
    while True:
        with db.reader() as session:
            where = _conditions(session, actor, wanted)
            query = _select_jobs(where, key, columns).limit(size)
            rows = (session.connection() if core else session).execute(query).all()
        yield from rows
        if len(rows) < size:
            return
        key = (rows[-1][created_at], rows[-1][id_at])
        size = max(size, min(size * 4, MAX_SCAN_BATCH))


def _requeue_failed(session: Session, job: m.Job) -> None:
    session.execute(
        update(m.Task)
        .where(m.Task.job_id == job.id, m.Task.status == TaskStatus.FAILED.value)
        .values(
            status=TaskStatus.QUEUED.value,
            tries=0,
            last_error=None,
            finished=None,
            server_id=None,
            lease_expires_at=None,
            not_before=None,
            modified=utcnow(),
        )
    )


def _release_in_flight(session: Session, job: m.Job, fence_s: float) -> None:
    """Drop the leases of the job's tasks in flight (back to queued): their agents are told to
    stop at their next report (reelsync.scheduler refuses reports without a lease). A task whose
    dialing agent is online keeps its transfer id and is fenced (``not_before``, ``fence_s``
    ahead) until that agent reports the transfer stopped, so a resume does not lease it again
    meanwhile."""
    now = utcnow()
    in_flight = (m.Task.job_id == job.id) & m.Task.status.in_(
        [TaskStatus.BOOTING.value, TaskStatus.EXECUTING.value]
    )
    released = {
        "status": TaskStatus.QUEUED.value,
        "server_id": None,
        "peer_id": None,
        "lease_expires_at": None,
        "bytes_done": 0,
        "modified": now,
    }
    online = select(m.Server.id).where(m.Server.status == ServerStatus.ONLINE.value)
    session.execute(
        update(m.Task)
        .where(in_flight, m.Task.server_id.in_(online))
        .values(**released, not_before=now + timedelta(seconds=fence_s))
    )
    session.execute(update(m.Task).where(in_flight).values(**released, transfer_id=None))


def _due_now(session: Session, job: m.Job) -> None:
    """Retry at once the job's queued tasks waiting out a retry backoff (not those fenced
    until a transfer that may still move them has stopped: they keep its ``transfer_id``)."""
    session.execute(
        update(m.Task)
        .where(
            m.Task.job_id == job.id,
            m.Task.status == TaskStatus.QUEUED.value,
            m.Task.not_before.is_not(None),
            m.Task.transfer_id.is_(None),
        )
        .values(not_before=None, modified=utcnow())
    )


def set_job_status(
    session: Session, job: m.Job, target: JobStatus, *, fence_s: float = DEFAULT_FENCE_S
) -> None:
    """Apply a user's status write to ``job`` (in ``session``), with its effect on the tasks;
    ``fence_s``: the server's fence (:class:`reelsync.config.ServerConfig`) for the files a pause
    or an abort takes back from a transfer still running."""
    current = JobStatus(job.status)
    check_job_transition(current, target)
    now = utcnow()
    if target is JobStatus.PAUSED:
        _release_in_flight(session, job, fence_s)
        job.status = target.value
        refresh_job(session, job)
    elif target is JobStatus.WAITING:
        _requeue_failed(session, job)
        _due_now(session, job)
        job.status = target.value
        refresh_job(session, job)
    elif target is JobStatus.ABORTED:
        _release_in_flight(session, job, fence_s)
        job.status = target.value
        job.finished = now
        job.speed = 0.0
    elif target is JobStatus.DONE:
        session.execute(
            update(m.Task)
            .where(
                m.Task.job_id == job.id,
                m.Task.status.not_in([TaskStatus.DONE.value, TaskStatus.EXCLUDED.value]),
            )
            .values(
                status=TaskStatus.EXCLUDED.value,
                finished=now,
                server_id=None,
                lease_expires_at=None,
                modified=now,
            )
        )
        job.status = target.value
        refresh_job(session, job)
    job.modified = now


def update_job(
    db: Database,
    actor: Actor,
    job_id: str,
    *,
    status: str | JobStatus | None = None,
    name: str | None = None,
    queue: str | None = None,
    settings: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    fence_s: float = DEFAULT_FENCE_S,
) -> Job:
    """Change a job; a status write as :func:`set_job_status` (``fence_s``: the server's)."""
    with db.session() as session:
        job = get_job_row(session, actor, job_id, lock=True)
        if name is not None:
            if not isinstance(name, str) or not name.strip() or len(name) > 255:
                raise ValidationError("a job name must be a non-empty string (<= 255)")
            job.name = name.strip()
        if queue is not None:
            job.queue_id = queues.get_queue_row(session, queue).id
        if metadata is not None:
            if not isinstance(metadata, Mapping):
                raise ValidationError("metadata must be an object")
            job.meta = dict(metadata)
        if settings is not None:
            if not isinstance(settings, Mapping):
                raise ValidationError("settings must be an object of strings")
            job.settings = {str(k): str(v) for k, v in settings.items()}
        if status is not None:
            target = status if isinstance(status, JobStatus) else parse_job_status(status)
            set_job_status(session, job, target, fence_s=fence_s)
        job.modified = utcnow()
        job.modifier_id = actor.user_id
        return job_record(session, job)


def delete_user_and_jobs(
    db: Database, actor: Actor, ref: str, *, fence_s: float = DEFAULT_FENCE_S
) -> list[str]:
    """Delete a user as accsyn does (admin): their unfinished jobs are aborted (``fence_s``: the
    server's fence), all their jobs pass to the deleting admin (so their history stays), and an
    audit event records the user, the jobs and which were aborted. Returns the ids of the aborted
    jobs."""
    require_admin(actor, "delete users")
    with db.session() as session:
        user = users.get_user_row(session, ref)
        if user.id == actor.user_id:
            raise ConflictError("you cannot delete yourself", hint="ask another admin")
        rows = session.scalars(
            select(m.Job).where(m.Job.user_id == user.id).with_for_update()
        ).all()
        aborted: list[str] = []
        for job in rows:
            if JobStatus(job.status) not in ENDED:
                set_job_status(session, job, JobStatus.ABORTED, fence_s=fence_s)
                aborted.append(job.id)
            job.user_id = actor.user_id
            job.modifier_id = actor.user_id
        session.flush()
        audit.record_event(
            session,
            actor,
            "user.deleted",
            "user",
            user.id,
            {
                "email": user.email,
                "role": user.role,
                "jobs": [j.id for j in rows],
                "aborted": aborted,
                "jobs_now_owned_by": actor.email,
            },
        )
        users.delete_user_row(session, user)
        return aborted


def delete_job(db: Database, actor: Actor, job_id: str, *, force: bool = False) -> None:
    with db.session() as session:
        job = get_job_row(session, actor, job_id, lock=True)
        if JobStatus(job.status) not in ENDED and not force:
            raise ConflictError(
                f"job {job.name!r} is {job.status}", hint="abort it first, or delete with force"
            )
        session.delete(job)


def record_sizes(db: Database, actor: Actor, job_id: str, sizes: Mapping[str, int]) -> Job:
    """Sizes measured at the source before the files move (task id -> bytes), set where a task's
    size is still unknown, so a job waiting or paused shows its size; the agents' own reports
    correct them when the files move."""
    with db.session() as session:
        job = get_job_row(session, actor, job_id, lock=True)
        for task_id, size in sizes.items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ValidationError(f"a size is a number of bytes, got {size!r}")
            session.execute(
                update(m.Task)
                .where(m.Task.id == task_id, m.Task.job_id == job.id, m.Task.size.is_(None))
                .values(size=size)
            )
        refresh_job(session, job)
        return job_record(session, job)
