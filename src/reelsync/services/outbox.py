"""What waits in the notification outbox and why (admin): counts per kind and status, the oldest
mail still pending, and the last delivery error, for the web UI's SMTP status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor
from reelsync.services.auth import require_admin

__all__ = ["OutboxStatus", "outbox_status"]


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    counts: dict[str, dict[str, int]]  # kind (mail | webhook) -> status -> rows
    oldest_pending_mail: datetime | None
    last_error: str | None
    last_error_at: datetime | None

    def count(self, kind: str, status: str) -> int:
        return self.counts.get(kind, {}).get(status, 0)


def outbox_status(db: Database, actor: Actor) -> OutboxStatus:
    require_admin(actor, "see the outbox")
    with db.session() as session:
        counts: dict[str, dict[str, int]] = {}
        rows = session.execute(
            select(m.Outbox.kind, m.Outbox.status, func.count()).group_by(
                m.Outbox.kind, m.Outbox.status
            )
        )
        for kind, status, count in rows:
            counts.setdefault(kind, {})[status] = int(count)
        oldest = session.scalar(
            select(func.min(m.Outbox.created)).where(
                m.Outbox.kind == "mail", m.Outbox.status == "pending"
            )
        )
        failed = session.execute(
            select(m.Outbox.last_error, m.Outbox.next_attempt_at)
            .where(m.Outbox.last_error.is_not(None))
            .order_by(m.Outbox.next_attempt_at.desc())
            .limit(1)
        ).first()
        return OutboxStatus(
            counts=counts,
            oldest_pending_mail=oldest,
            last_error=failed[0] if failed else None,
            last_error_at=failed[1] if failed else None,
        )
