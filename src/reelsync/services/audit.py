"""The audit trail: what was done that the entities themselves no longer show (a user deleted
with their jobs aborted and handed over).

Rules: events are written in the transaction of the change they describe and never changed;
only an admin reads them. An event names its actor by id and e-mail (kept after the user goes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.ids import new_entity_id
from reelsync.domain.records import Actor, AuditEvent
from reelsync.services.auth import require_admin

__all__ = ["list_events", "record_event"]


def record_event(
    session: Session,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str,
    detail: Mapping[str, Any],
) -> None:
    session.add(
        m.AuditEvent(
            id=new_entity_id(),
            created=utcnow(),
            actor_id=actor.user_id,
            actor=actor.email,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            detail=dict(detail),
        )
    )


def list_events(db: Database, actor: Actor, *, limit: int = 1000) -> list[AuditEvent]:
    """The newest ``limit`` events, oldest first."""
    require_admin(actor, "read the audit trail")
    with db.session() as session:
        rows = session.scalars(
            select(m.AuditEvent).order_by(m.AuditEvent.created.desc()).limit(limit)
        ).all()
        return [
            AuditEvent(
                id=r.id,
                created=r.created,
                actor_id=r.actor_id,
                actor=r.actor,
                action=r.action,
                entity_type=r.entity_type,
                entity_id=r.entity_id,
                detail=dict(r.detail or {}),
            )
            for r in reversed(rows)
        ]
