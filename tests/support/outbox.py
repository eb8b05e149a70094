"""The outbox of a running control plane, read from its database. A notification is a row,
written in the transaction that caused it; once none of a kind is left to deliver, nothing more
of that kind can arrive, so a test counts what reached the sink then instead of waiting a while."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from reelsync.db import Database
from reelsync.db import models as m

_UNDELIVERED = ("pending", "sending")


def delivered(database_url: str, kind: str, timeout: float = 30.0) -> dict[str, int]:
    """Rows of ``kind`` (``mail``, ``webhook``) by status once none is pending or being sent."""
    db = Database(database_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with db.session() as session:
                counts = {
                    status: int(n)
                    for status, n in session.execute(
                        select(m.Outbox.status, func.count())
                        .where(m.Outbox.kind == kind)
                        .group_by(m.Outbox.status)
                    )
                }
            if not any(counts.get(status) for status in _UNDELIVERED):
                return counts
            assert time.monotonic() < deadline, f"the outbox still holds {kind} rows: {counts}"
            time.sleep(0.1)
    finally:
        db.dispose()
