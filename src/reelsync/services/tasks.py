"""Tasks of a job: append, list, edit (status, priority, metadata). Tasks are never deleted (exclude
them instead).

Rules:
- Appending continues the job's uris; a task with the same source and destination as one already in
  the job re-queues that task (unless it is still active) instead of adding a copy, or fails the
  whole append with a ConflictError when ``allow_duplicates`` is false. New tasks revive an ended
  job, and resume one paused only by its on-hold tasks (none active: ``rollup.paused_by_holds``).
- Edits address tasks by ``id`` or ``uri``; status writes follow
  :func:`reelsync.domain.status.check_task_transition`; priority is 1..1000. All edits are checked
  before any is applied; the job's status is then recomputed. A task queued again revives an
  ended job, or one paused only by its on-hold tasks (as appending does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session, aliased

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.jobspec import parse_task_specs
from reelsync.domain.records import Actor, Page, Task
from reelsync.domain.status import (
    TASK_ACTIVE,
    JobStatus,
    TaskStatus,
    check_task_transition,
    parse_task_status,
)
from reelsync.errors import ConflictError, InvalidTransitionError, NotFoundError, ValidationError
from reelsync.services import idempotency
from reelsync.services.rollup import ENDED, paused_by_holds, refresh_job
from reelsync.services.submission import (
    Plan,
    PlannedTask,
    TaskKey,
    insert_tasks,
    plan_tasks,
    site_party,
)

__all__ = [
    "MAX_OFFSET",
    "MAX_PAGE",
    "add_tasks",
    "append_planned",
    "count_tasks",
    "get_task",
    "insert_planned",
    "list_tasks",
    "number_planned",
    "select_tasks",
    "task_record",
    "update_tasks",
]

MAX_PAGE = 10_000
MAX_OFFSET = 2**31 - 1
_CHUNK = 500
_SrcVolume = aliased(m.Volume)
_DstVolume = aliased(m.Volume)


def select_tasks() -> Select[m.Task, str, str]:
    """Tasks joined with their volumes' codes, as :func:`task_record` reads them."""
    return (
        select(m.Task, _SrcVolume.code, _DstVolume.code)
        .join(_SrcVolume, _SrcVolume.id == m.Task.source_volume_id)
        .join(_DstVolume, _DstVolume.id == m.Task.destination_volume_id)
    )


def task_record(row: m.Task, source_volume: str, destination_volume: str) -> Task:
    return Task(
        id=row.id,
        job_id=row.job_id,
        uri=row.uri,
        source_volume_id=row.source_volume_id,
        source_volume=source_volume,
        source_path=row.source_path,
        destination_volume_id=row.destination_volume_id,
        destination_volume=destination_volume,
        destination_path=row.destination_path,
        size=row.size,
        priority=row.priority,
        status=row.status,
        tries=row.tries,
        last_error=row.last_error,
        digest=row.digest,
        bytes_done=row.bytes_done,
        server_id=row.server_id,
        lease_expires_at=row.lease_expires_at,
        not_before=row.not_before,
        metadata=dict(row.meta or {}),
        created=row.created,
        modified=row.modified,
        finished=row.finished,
        dispatches=row.dispatches,
        files=row.files,
    )


def _records(session: Session, ids: Sequence[str]) -> list[Task]:
    out: dict[str, Task] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for row, src, dst in session.execute(select_tasks().where(m.Task.id.in_(chunk))):
            out[row.id] = task_record(row, src, dst)
    return [out[i] for i in ids if i in out]


def _job(session: Session, actor: Actor, job_id: str) -> m.Job:
    # Local import-free lookup (jobs imports this module).
    row = session.scalar(select(m.Job).where(m.Job.id == job_id).with_for_update())
    if row is None or (not actor.is_admin and row.user_id != actor.user_id):
        raise NotFoundError(f"no job {job_id!r}")
    return row


def insert_planned(
    session: Session, job: m.Job, planned: Sequence[PlannedTask], now: datetime
) -> list[str]:
    """Insert new tasks into ``job``, numbering those without a uri; returns their ids."""
    uris = number_planned(session, job, planned)
    return insert_tasks(session, job.id, planned, uris, now)


def number_planned(session: Session, job: m.Job, planned: Sequence[PlannedTask]) -> list[str]:
    """The uris of ``planned`` in ``job`` (their own, else the job's counter, which moves on;
    ``task_count`` counts them); nothing is inserted."""
    explicit = [t.uri for t in planned if t.uri is not None]
    existing: set[str] = set()
    if explicit and job.task_count:
        existing = set(session.scalars(select(m.Task.uri).where(m.Task.job_id == job.id)))
    if len(set(explicit)) != len(explicit):
        raise ValidationError("two tasks have the same uri")
    clash = next((u for u in explicit if u in existing), None)
    if clash is not None:
        raise ConflictError(f"the job already has a task with uri {clash!r}")
    taken = set(explicit) | existing
    counter = job.next_uri
    uris: list[str] = []
    for task in planned:
        if task.uri is not None:
            uris.append(task.uri)
            continue
        while str(counter) in taken:
            counter += 1
        uris.append(str(counter))
        counter += 1
    numeric = [int(u) for u in explicit if u.isdigit() and len(u) < 10]
    job.next_uri = max([counter, *(n + 1 for n in numeric)])
    job.task_count += len(planned)
    return uris


def _requeue(session: Session, ids: Sequence[str], now: datetime) -> None:
    for start in range(0, len(ids), _CHUNK):
        session.execute(
            update(m.Task)
            .where(m.Task.id.in_(ids[start : start + _CHUNK]))
            .values(
                status=TaskStatus.QUEUED.value,
                tries=0,
                last_error=None,
                finished=None,
                server_id=None,
                lease_expires_at=None,
                not_before=None,
                bytes_done=0,
                modified=now,
            )
        )


def append_planned(
    session: Session, job: m.Job, plan: Plan, allow_duplicates: bool | None
) -> list[str]:
    """Add ``plan``'s tasks to ``job`` with the duplicate rule; returns new and re-queued ids."""
    existing: dict[TaskKey, tuple[str, str]] = {}
    rows = session.execute(
        select(
            m.Task.id,
            m.Task.status,
            m.Task.source_volume_id,
            m.Task.source_path,
            m.Task.destination_volume_id,
            m.Task.destination_path,
        ).where(m.Task.job_id == job.id)
    )
    for task_id, status, sv, sp, dv, dp in rows:
        existing[(sv, sp, dv, dp)] = (task_id, status)
    fresh: list[PlannedTask] = []
    again: list[str] = []
    sizes: dict[str, int] = {}
    touched: list[str] = []
    for task in plan.tasks:
        found = existing.get(task.key)
        if found is None:
            fresh.append(task)
            continue
        if allow_duplicates is False:
            raise ConflictError(
                f"the job already has a task for {task.source.volume.code}/{task.source.path}",
                hint="set allow_duplicates to true to re-queue it",
            )
        touched.append(found[0])
        if TaskStatus(found[1]) not in TASK_ACTIVE:
            again.append(found[0])
            if task.size is not None:  # what the caller counted now (a folder may have grown)
                sizes[found[0]] = task.size
    held = paused_by_holds(job, (status for _, status in existing.values()))
    now = utcnow()
    _requeue(session, again, now)
    for task_id, size in sizes.items():
        session.execute(update(m.Task).where(m.Task.id == task_id).values(size=size))
    new_ids = insert_planned(session, job, fresh, now)
    if (JobStatus(job.status) in ENDED or held) and (new_ids or again):
        job.status = JobStatus.WAITING.value
        job.finished = None
    refresh_job(session, job)
    return new_ids + touched


def add_tasks(
    db: Database,
    actor: Actor,
    job_id: str,
    tasks: Any,
    *,
    allow_duplicates: bool | None = None,
    idempotency_key: str | None = None,
) -> list[Task]:
    """Append tasks (the ``tasks`` value of the job JSON) to a job; returns the tasks added or
    re-queued, in order. A repeated ``idempotency_key`` (same user and job, :mod:`.idempotency`)
    returns the tasks the first append returned (as they are now) and changes nothing."""
    key = idempotency.clean_key(idempotency_key)
    try:
        return _add_tasks(db, actor, job_id, tasks, allow_duplicates, key)
    except ConflictError:
        if key is None:
            raise
        # the same key appended twice at once: the other request did it
        with db.reader() as session:
            earlier = idempotency.appended(session, actor, key, job_id)
            if earlier is None:
                raise
            return _records(session, earlier)


def _add_tasks(
    db: Database,
    actor: Actor,
    job_id: str,
    tasks: Any,
    allow_duplicates: bool | None,
    key: str | None,
) -> list[Task]:
    with db.session() as session:
        job = _job(session, actor, job_id)  # locked: appends to one job take turns
        earlier = None if key is None else idempotency.appended(session, actor, key, job.id)
        if earlier is not None:
            return _records(session, earlier)
        workspace = session.scalar(select(m.Workspace.code).limit(1))
        specs = parse_task_specs(tasks, workspace_code=workspace)
        if not specs:
            raise ValidationError("no tasks to add")
        destination = session.scalar(
            select(m.Site.code).where(m.Site.id == job.destination_site_id)
        )
        plan = plan_tasks(
            session,
            actor,
            specs,
            default_destination=site_party(destination or ""),
            sites=(job.source_site_id, job.destination_site_id),
        )
        ids = append_planned(session, job, plan, allow_duplicates)
        idempotency.remember(session, actor, key, job.id, ids)
        return _records(session, ids)


def get_task(db: Database, actor: Actor, job_id: str, ref: str) -> Task:
    """One task of a job by id or uri."""
    with db.reader() as session:
        job = _visible_job_id(session, actor, job_id)
        row = session.execute(
            select_tasks().where(m.Task.job_id == job, (m.Task.id == ref) | (m.Task.uri == ref))
        ).first()
        if row is None:
            raise NotFoundError(f"job {job_id} has no task {ref!r}")
        return task_record(*row)


_ROW_COLUMNS = (
    m.Task.id,
    m.Task.job_id,
    m.Task.uri,
    m.Task.source_volume_id,
    _SrcVolume.code,
    m.Task.source_path,
    m.Task.destination_volume_id,
    _DstVolume.code,
    m.Task.destination_path,
    m.Task.size,
    m.Task.priority,
    m.Task.status,
    m.Task.tries,
    m.Task.last_error,
    m.Task.digest,
    m.Task.bytes_done,
    m.Task.server_id,
    m.Task.lease_expires_at,
    m.Task.not_before,
    m.Task.meta,
    m.Task.created,
    m.Task.modified,
    m.Task.finished,
    m.Task.dispatches,
    m.Task.files,
)


def _row_task(row: Sequence[Any]) -> Task:
    (
        id_,
        job_id,
        uri,
        src_id,
        src,
        src_path,
        dst_id,
        dst,
        dst_path,
        size,
        priority,
        status,
        tries,
        last_error,
        digest,
        bytes_done,
        server_id,
        lease,
        not_before,
        meta,
        created,
        modified,
        finished,
        dispatches,
        files,
    ) = row
    return Task(
        id=id_,
        job_id=job_id,
        uri=uri,
        source_volume_id=src_id,
        source_volume=src,
        source_path=src_path,
        destination_volume_id=dst_id,
        destination_volume=dst,
        destination_path=dst_path,
        size=size,
        priority=priority,
        status=status,
        tries=tries,
        last_error=last_error,
        digest=digest,
        bytes_done=bytes_done,
        server_id=server_id,
        lease_expires_at=lease,
        not_before=not_before,
        metadata=dict(meta or {}),
        created=created,
        modified=modified,
        finished=finished,
        dispatches=dispatches,
        files=files,
    )


def _visible_job(session: Session, actor: Actor, job_id: str) -> tuple[str, int]:
    """The job's id and task count if the actor may see it (a plain read: locks nothing)."""
    row = session.execute(
        select(m.Job.id, m.Job.user_id, m.Job.task_count).where(m.Job.id == job_id)
    ).first()
    if row is None or (not actor.is_admin and row.user_id != actor.user_id):
        raise NotFoundError(f"no job {job_id!r}")
    return str(row.id), int(row.task_count or 0)


def _visible_job_id(session: Session, actor: Actor, job_id: str) -> str:
    return _visible_job(session, actor, job_id)[0]


def count_tasks(db: Database, actor: Actor, job_id: str) -> dict[str, int]:
    """How many of a visible job's tasks are in each status (statuses with none left out): one
    grouped count on the (job_id, status) index, for a summary without a page per status."""
    with db.reader() as session:
        job, _ = _visible_job(session, actor, job_id)
        rows = session.execute(
            select(m.Task.status, func.count()).where(m.Task.job_id == job).group_by(m.Task.status)
        )
        return {str(status): int(count) for status, count in rows if count}


def list_tasks(
    db: Database,
    actor: Actor,
    job_id: str,
    *,
    status: str | None = None,
    limit: int = 1000,
    offset: int = 0,
    after: str | None = None,
) -> Page[Task]:
    """Tasks of a job in uri order ("2" before "10"). ``status`` may be a comma list; a leading
    ``!`` negates it.

    Pages by key: pass the previous page's ``next`` (the last uri) as ``after``; the index
    ``ix_task_job_order`` serves the order, so a deep page costs what the first does (``offset``
    still works but skips rows one by one). ``total`` is the job's task count kept on the job
    row; with a status filter it is counted on the job's (job_id, status) index."""
    if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
        raise ValidationError(f"limit must be 1..{MAX_PAGE} and offset 0..{MAX_OFFSET}")
    with db.reader() as session:
        job, task_count = _visible_job(session, actor, job_id)
        where = [m.Task.job_id == job]
        if status:
            negate = status.startswith("!")
            values = [parse_task_status(s).value for s in status.lstrip("!").split(",") if s]
            where.append(m.Task.status.not_in(values) if negate else m.Task.status.in_(values))
        order = (func.length(m.Task.uri), m.Task.uri)
        query = (
            select(*_ROW_COLUMNS)
            .join(_SrcVolume, _SrcVolume.id == m.Task.source_volume_id)
            .join(_DstVolume, _DstVolume.id == m.Task.destination_volume_id)
            .where(*where)
        )
        # Core rows straight from the connection: no ORM loading step for 10,000 plain tuples.
        run = session.connection().execute
        if after is None:
            rows = list(run(query.order_by(*order).limit(limit).offset(offset)).all())
        else:
            # two index ranges (SQLite seeks no row value on an expression index): the rest of
            # the cursor's uri length, then the longer uris
            wanted = offset + limit
            rows = list(
                run(
                    query.where(func.length(m.Task.uri) == len(after), m.Task.uri > after)
                    .order_by(m.Task.uri)  # one length: ordering by it makes SQLite sort
                    .limit(wanted)
                ).all()
            )
            if len(rows) < wanted:
                longer = query.where(func.length(m.Task.uri) > len(after)).order_by(*order)
                rows += run(longer.limit(wanted - len(rows))).all()
            rows = rows[offset:]
        if not status:
            total = task_count
        elif after is None and ((rows and len(rows) < limit) or (not rows and offset == 0)):
            total = offset + len(rows)  # the last page: no count needed
        else:
            count = select(func.count()).select_from(m.Task).where(*where)
            total = session.scalar(count) or 0
        items = [_row_task(r) for r in rows]
    return Page(
        items=items,
        total=total,
        limit=limit,
        offset=offset,
        next=items[-1].uri if len(items) == limit else None,
    )


def _priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise ValidationError(f"a task priority must be a whole number 1..1000, got {value!r}")
    return value


def _find(rows: Iterable[m.Task], edits: Sequence[Mapping[str, Any]]) -> list[m.Task]:
    by_id = {r.id: r for r in rows}
    by_uri = {r.uri: r for r in by_id.values()}
    found = []
    for index, edit in enumerate(edits):
        ref = edit.get("id") if edit.get("id") is not None else edit.get("uri")
        row = by_id.get(str(ref)) or by_uri.get(str(ref)) if ref is not None else None
        if row is None:
            raise NotFoundError(f"edit {index}: the job has no task {ref!r}")
        found.append(row)
    return found


def update_tasks(
    db: Database, actor: Actor, job_id: str, edits: Sequence[Mapping[str, Any]]
) -> list[Task]:
    """Apply ``[{id|uri, status?, priority?, metadata?}]``; all checked first, then applied."""
    if not isinstance(edits, Sequence) or not edits:
        raise ValidationError("edits must be a non-empty list of {id or uri, status, priority}")
    allowed = {"id", "uri", "status", "priority", "metadata"}
    for index, edit in enumerate(edits):
        if not isinstance(edit, Mapping):
            raise ValidationError(f"edit {index}: must be an object")
        unknown = sorted(str(k) for k in edit if k not in allowed)
        if unknown:
            raise ValidationError(
                f"edit {index}: only status, priority and metadata can change, not "
                f"{', '.join(unknown)}"
            )
        if edit.get("id") is None and edit.get("uri") is None:
            raise ValidationError(f"edit {index}: give the task's id or uri")
    with db.session() as session:
        job = _job(session, actor, job_id)
        refs = [str(e.get("id") if e.get("id") is not None else e.get("uri")) for e in edits]
        rows: list[m.Task] = []
        unique = list(dict.fromkeys(refs))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            rows.extend(
                session.scalars(
                    select(m.Task).where(
                        m.Task.job_id == job.id, m.Task.id.in_(chunk) | m.Task.uri.in_(chunk)
                    )
                )
            )
        targets = _find(rows, edits)
        plans: list[tuple[m.Task, TaskStatus | None, int | None, Any]] = []
        for index, (row, edit) in enumerate(zip(targets, edits, strict=True)):
            status = None
            if edit.get("status") is not None:
                status = parse_task_status(edit["status"])
                try:
                    check_task_transition(TaskStatus(row.status), status)
                except InvalidTransitionError as exc:
                    exc.message = f"task {row.uri}: {exc.message}"
                    raise
            priority = _priority(edit["priority"]) if edit.get("priority") is not None else None
            metadata = edit.get("metadata")
            if metadata is not None and not isinstance(metadata, Mapping):
                raise ValidationError(f"edit {index}: metadata must be an object")
            plans.append((row, status, priority, metadata))
        held = job.status == JobStatus.PAUSED.value and paused_by_holds(
            job,  # one active task (before these edits) is enough to tell
            session.scalars(
                select(m.Task.status)
                .where(m.Task.job_id == job.id, m.Task.status.in_([s.value for s in TASK_ACTIVE]))
                .limit(1)
            ),
        )
        now = utcnow()
        revive = False
        for row, status, priority, metadata in plans:
            if status is not None and status.value != row.status:
                row.status = status.value
                row.server_id = None
                row.lease_expires_at = None
                if status is TaskStatus.QUEUED:
                    row.tries, row.last_error, row.not_before, row.finished = 0, None, None, None
                    row.bytes_done = 0
                    revive = True
                elif status in (TaskStatus.DONE, TaskStatus.EXCLUDED, TaskStatus.FAILED):
                    row.finished = now
            if priority is not None:
                row.priority = priority
            if metadata is not None:
                row.meta = dict(metadata)
            row.modified = now
        if revive and (job.status in (JobStatus.DONE.value, JobStatus.FAILED.value) or held):
            job.status = JobStatus.WAITING.value
        refresh_job(session, job)
        return _records(session, [row.id for row, *_ in plans])
