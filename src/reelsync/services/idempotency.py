"""Idempotency keys: a client sends ``Idempotency-Key`` with a job submit or a task append, and the
server remembers what the first request with that key made (``submission``: user, key, job, and
for an append the tasks it returned), so a request retried after a lost answer changes nothing.

Rules: a key is 1 to :data:`KEY_MAX` characters; it is the user's own (another user's same key is
another key); it is remembered for :data:`SUBMISSION_TTL`; a key remembered for one request is
refused (ConflictError) for a different one (another job's append, or a submit's key on an append).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.ids import new_entity_id
from reelsync.domain.records import Actor
from reelsync.errors import ConflictError, ValidationError

__all__ = ["KEY_MAX", "SUBMISSION_TTL", "appended", "clean_key", "remember", "remembered"]

#: How long an idempotency key is remembered.
SUBMISSION_TTL = timedelta(days=7)
KEY_MAX = 255


def clean_key(key: str | None) -> str | None:
    """The key as stored (stripped), None for none; a ValidationError for an empty or long one."""
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > KEY_MAX:
        raise ValidationError(f"an idempotency key is 1 to {KEY_MAX} characters")
    return key


def remembered(session: Session, actor: Actor, key: str) -> m.Submission | None:
    """What an earlier request of ``actor`` with ``key`` made, if any."""
    return session.scalar(
        select(m.Submission).where(m.Submission.user_id == actor.user_id, m.Submission.key == key)
    )


def appended(session: Session, actor: Actor, key: str, job_id: str) -> list[str] | None:
    """The ids of the tasks an earlier append with ``key`` to ``job_id`` returned, in order; None
    when the key is new. A key that was used for something else is a ConflictError."""
    row = remembered(session, actor, key)
    if row is None:
        return None
    if row.job_id != job_id or row.task_ids is None:
        raise ConflictError(
            f"the idempotency key {key!r} was used for another request",
            hint="send a new key for a new request",
        )
    return [str(task_id) for task_id in row.task_ids]


def remember(
    session: Session,
    actor: Actor,
    key: str | None,
    job_id: str,
    task_ids: Sequence[str] | None = None,
) -> None:
    """Remember that ``key`` made (or appended ``task_ids`` to) ``job_id``; drops expired keys."""
    if key is None:
        return
    now = utcnow()
    session.execute(delete(m.Submission).where(m.Submission.created < now - SUBMISSION_TTL))
    session.add(
        m.Submission(
            id=new_entity_id(),
            user_id=actor.user_id,
            key=key,
            job_id=job_id,
            task_ids=None if task_ids is None else list(task_ids),
            created=now,
        )
    )
