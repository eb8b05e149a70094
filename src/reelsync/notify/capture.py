"""Job events captured from the ORM: whatever code path changes a job, the outbox hears of it.

Rules: :func:`install_job_events` listens on one :class:`~reelsync.db.Database`'s sessions. After
each flush it notes jobs that were inserted (``submitted``) and jobs whose ``status`` became done or
failed; just before the commit it writes their outbox rows through :mod:`reelsync.notify.outbox`
in that same transaction. Status changes made with a Core ``UPDATE`` (not through an ORM object)
are not seen: such code calls :func:`~reelsync.notify.outbox.enqueue_job_finished` itself (the
dedupe keys make a double call harmless).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.status import JobStatus
from reelsync.notify.outbox import FINISH_EVENTS, enqueue_job_finished, enqueue_job_submitted

__all__ = ["JobEventCapture", "install_job_events"]

_PENDING = "reelsync.notify.pending"
_FINISHED = {s.value for s in FINISH_EVENTS}


def _after_flush(session: Session, _context: Any) -> None:
    pending: list[tuple[str, str]] = session.info.setdefault(_PENDING, [])
    for obj in session.new:
        if isinstance(obj, m.Job):
            pending.append(("submitted", obj.id))
            if obj.status in _FINISHED:
                pending.append((obj.status, obj.id))
    for obj in session.dirty:
        if not isinstance(obj, m.Job):
            continue
        history = inspect(obj).attrs.status.history
        if history.added and history.added[0] in _FINISHED:
            before = history.deleted[0] if history.deleted else None
            if before != history.added[0]:
                pending.append((str(history.added[0]), obj.id))


def _before_commit(session: Session) -> None:
    session.flush()
    pending: list[tuple[str, str]] = session.info.pop(_PENDING, [])
    for kind, job_id in pending:
        if session.get(m.Job, job_id) is None:
            continue  # deleted again in the same transaction
        if kind == "submitted":
            enqueue_job_submitted(session, job_id)
        else:
            enqueue_job_finished(session, job_id, JobStatus(kind))


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


class JobEventCapture:
    """The installed listeners; :meth:`remove` uninstalls them."""

    def __init__(self, db: Database) -> None:
        self._target = db.session_factory
        event.listen(self._target, "after_flush", _after_flush)
        event.listen(self._target, "before_commit", _before_commit)
        event.listen(self._target, "after_rollback", _after_rollback)

    def remove(self) -> None:
        event.remove(self._target, "after_flush", _after_flush)
        event.remove(self._target, "before_commit", _before_commit)
        event.remove(self._target, "after_rollback", _after_rollback)


def install_job_events(db: Database) -> JobEventCapture:
    """Make every transaction on ``db`` that submits or finishes a job fill the outbox."""
    return JobEventCapture(db)
