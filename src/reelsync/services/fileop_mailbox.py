"""File operations that cross control-plane processes: one ``fileop`` row per operation.

Rules: the process a user asked posts the row for the agent chosen (:func:`post`); whichever
process that agent long-polls hands it out once (:func:`take`, ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL) and writes the agent's answer (:func:`answer`); the asking process reads it
(:func:`state`), may give the operation to another agent while unanswered (:func:`reassign`),
and deletes the row when done (:func:`remove`). Only the agent the row names can take or answer it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow

__all__ = ["MailboxState", "answer", "post", "reassign", "remove", "state", "take", "untake"]


@dataclass(frozen=True, slots=True)
class MailboxState:
    server_id: str
    taken: bool
    answer: dict[str, Any] | None


def post(db: Database, op_id: str, server_id: str, request: dict[str, Any]) -> None:
    with db.session() as session:
        session.add(m.FileOp(id=op_id, server_id=server_id, request=request, created=utcnow()))


def take(db: Database, server_id: str, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """The operations waiting for ``server_id``, marked taken (each handed out once)."""
    with db.session() as session:
        query = (
            select(m.FileOp)
            .where(m.FileOp.server_id == server_id, m.FileOp.taken_at.is_(None))
            .order_by(m.FileOp.created)
            .limit(100)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(session.scalars(query))
        stamp = now or utcnow()
        for row in rows:
            row.taken_at = stamp
        return [dict(row.request) for row in rows]


def untake(db: Database, server_id: str, op_ids: Sequence[str]) -> None:
    """Operations taken for ``server_id`` that never reached it: waiting again."""
    if op_ids:
        with db.session() as session:
            session.execute(
                update(m.FileOp)
                .where(m.FileOp.id.in_(list(op_ids)), m.FileOp.server_id == server_id)
                .values(taken_at=None)
            )


def answer(db: Database, op_id: str, server_id: str, result: dict[str, Any]) -> bool:
    """Record ``server_id``'s answer; False when the row is gone or names another agent."""
    with db.session() as session:
        done = session.execute(
            update(m.FileOp)
            .where(m.FileOp.id == op_id, m.FileOp.server_id == server_id, m.FileOp.answer.is_(None))
            .values(answer=result)
        )
        return bool(getattr(done, "rowcount", 0))


def state(db: Database, op_id: str) -> MailboxState | None:
    with db.session() as session:
        row = session.get(m.FileOp, op_id)
        if row is None:
            return None
        return MailboxState(row.server_id, row.taken_at is not None, row.answer)


def reassign(db: Database, op_id: str, server_id: str) -> None:
    """Give an unanswered operation to ``server_id`` (waiting to be taken again)."""
    with db.session() as session:
        session.execute(
            update(m.FileOp)
            .where(m.FileOp.id == op_id, m.FileOp.answer.is_(None))
            .values(server_id=server_id, taken_at=None)
        )


def remove(db: Database, op_id: str) -> None:
    with db.session() as session:
        session.execute(delete(m.FileOp).where(m.FileOp.id == op_id))
