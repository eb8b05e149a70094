"""Queues: a job's place in line. Priority 0..1000 (higher first); exactly one default.

Rules: every user may read queues; only an admin creates, changes or deletes them. Seeded High
(999), Medium (500, default) and Low (1). Found by id, code or name (case-insensitive, so accsyn's
``queue: "High"`` works). Deleting a queue moves its jobs to the default; the default cannot go.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.codes import parse_code
from reelsync.domain.ids import is_entity_id, new_entity_id
from reelsync.domain.records import Actor, Queue
from reelsync.errors import ConflictError, NotFoundError, ValidationError
from reelsync.services import catalog
from reelsync.services.auth import require_admin

__all__ = [
    "SEEDED_QUEUES",
    "add_queue",
    "create_queue",
    "default_queue_row",
    "delete_queue",
    "get_queue",
    "get_queue_row",
    "kept_queues",
    "list_queues",
    "record",
    "update_queue",
]

#: (code, name, priority, default)
SEEDED_QUEUES = (
    ("high", "High", 999, False),
    ("medium", "Medium", 500, True),
    ("low", "Low", 1, False),
)


#: A queue row as its record (kept in the catalog, which makes the records it keeps too).
record = catalog.queue_record


def _priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
        raise ValidationError(f"a queue priority must be a whole number 0..1000, got {value!r}")
    return value


def get_queue_row(session: Session, ref: str) -> m.Queue:
    row = session.get(m.Queue, ref) if is_entity_id(ref) else None
    if row is None and isinstance(ref, str):
        key = ref.strip().lower()
        row = session.scalar(select(m.Queue).where(m.Queue.code == key))
        if row is None:
            row = session.scalar(select(m.Queue).where(func.lower(m.Queue.name) == key).limit(1))
    if row is None:
        raise NotFoundError(f"no queue {ref!r}", hint="list them with: reelsync queue list")
    return row


def default_queue_row(session: Session) -> m.Queue:
    row = session.scalar(select(m.Queue).where(m.Queue.is_default.is_(True)))
    if row is None:
        raise NotFoundError("the workspace has no default queue")
    return row


def _make_default(session: Session, row: m.Queue) -> None:
    session.execute(
        update(m.Queue)
        .where(m.Queue.is_default.is_(True), m.Queue.id != row.id)
        .values(is_default=False)
    )
    session.flush()
    row.is_default = True


def add_queue(
    session: Session,
    *,
    code: str,
    name: str | None = None,
    priority: int = 500,
    default: bool = False,
    paused: bool = False,
) -> m.Queue:
    queue_code = parse_code("queue", code)
    if session.scalar(select(m.Queue.id).where(m.Queue.code == queue_code)):
        raise ConflictError(f"a queue {queue_code!r} already exists")
    now = utcnow()
    row = m.Queue(
        id=new_entity_id(),
        code=queue_code,
        name=(name or code).strip(),
        priority=_priority(priority),
        is_default=False,
        paused=bool(paused),
        created=now,
        modified=now,
    )
    session.add(row)
    session.flush()
    if default:
        _make_default(session, row)
    return row


def create_queue(
    db: Database,
    actor: Actor,
    *,
    code: str,
    name: str | None = None,
    priority: int = 500,
    default: bool = False,
    paused: bool = False,
) -> Queue:
    require_admin(actor, "create queues")
    with db.session() as session:
        return record(
            add_queue(
                session, code=code, name=name, priority=priority, default=default, paused=paused
            )
        )


def get_queue(db: Database, actor: Actor, ref: str) -> Queue:
    del actor
    with db.reader() as session:
        return record(get_queue_row(session, ref))


def list_queues(db: Database, actor: Actor) -> list[Queue]:
    del actor
    with db.reader() as session:
        query = select(m.Queue).order_by(m.Queue.priority.desc(), m.Queue.code)
        return [record(r) for r in session.scalars(query)]


def kept_queues(db: Database, actor: Actor) -> list[Queue]:
    """:func:`list_queues` (the same order) from the catalog the request has checked: no query
    while the catalog is current, as for a find of jobs that also matches the queues."""
    del actor
    with db.reader() as session:
        kept = [q.record for q in catalog.current(session).queues]
    # the catalog keeps them in the database's order of codes: a stable sort by priority is
    # ORDER BY priority DESC, code
    return sorted(kept, key=lambda q: -q.priority)


def update_queue(
    db: Database,
    actor: Actor,
    ref: str,
    *,
    name: str | None = None,
    priority: int | None = None,
    default: bool | None = None,
    paused: bool | None = None,
) -> Queue:
    require_admin(actor, "change queues")
    with db.session() as session:
        row = get_queue_row(session, ref)
        if name is not None:
            if not name.strip():
                raise ValidationError("a queue name may not be empty")
            row.name = name.strip()
        if priority is not None:
            row.priority = _priority(priority)
        if default is False and row.is_default:
            raise ConflictError("a workspace needs a default queue", hint="make another default")
        if default:
            _make_default(session, row)
        if paused is not None:
            row.paused = bool(paused)
        row.modified = utcnow()
        return record(row)


def delete_queue(db: Database, actor: Actor, ref: str) -> None:
    """Delete a queue; its jobs move to the default queue."""
    require_admin(actor, "delete queues")
    with db.session() as session:
        row = get_queue_row(session, ref)
        if row.is_default:
            raise ConflictError(f"{row.name} is the default queue and cannot be deleted")
        target = default_queue_row(session)
        session.execute(update(m.Job).where(m.Job.queue_id == row.id).values(queue_id=target.id))
        session.delete(row)
