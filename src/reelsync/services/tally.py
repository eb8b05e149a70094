"""Running totals of jobs and tasks (the ``tally`` table, fed by triggers: see
:mod:`reelsync.db.tally`), summed for ``/metrics`` and folded now and then.

Rules: :func:`totals` sums the table by key (its size is the number of keys plus the changes
since the last fold, not the history); :func:`compact` folds it into one row per key in one
transaction (safe beside writers and in several processes: it removes exactly the rows it sums);
:func:`vacuum` gives PostgreSQL back the space of the rows folded away, so a scan of the table
stays as short as its live rows whether or not autovacuum runs (without it, the fold of a
million-job load left ~800,000 dead rows and ``/metrics`` took 50 ms more to sum 100 rows).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, text

from reelsync.db import Database
from reelsync.db import models as m

__all__ = ["Totals", "compact", "totals", "vacuum"]

_KEYS = (
    m.Tally.kind,
    m.Tally.queue_id,
    m.Tally.source_site_id,
    m.Tally.destination_site_id,
    m.Tally.status,
)


@dataclass(frozen=True, slots=True)
class Totals:
    jobs: list[tuple[str, str, str, str, int]]  # queue id, source site id, destination, status, n
    tasks: list[tuple[str, str, str, str, int]]
    done_bytes: list[tuple[str, str, int]]  # source site id, destination site id, bytes


def totals(db: Database) -> Totals:
    with db.reader() as session:
        rows = session.execute(
            select(*_KEYS, func.sum(m.Tally.n), func.sum(m.Tally.bytes)).group_by(*_KEYS)
        ).all()
    jobs: list[tuple[str, str, str, str, int]] = []
    tasks: list[tuple[str, str, str, str, int]] = []
    done: dict[tuple[str, str], int] = {}
    for kind, queue, src, dst, status, n, size in rows:
        if kind == "task":
            done[(src, dst)] = done.get((src, dst), 0) + int(size or 0)
        if not n:
            continue
        (jobs if kind == "job" else tasks).append((queue, src, dst, status, int(n)))
    return Totals(jobs=jobs, tasks=tasks, done_bytes=[(s, d, b) for (s, d), b in done.items()])


def compact(db: Database) -> int:
    """Fold the tally into one row per key; returns how many rows it folded."""
    sums = (*_KEYS, func.sum(m.Tally.n), func.sum(m.Tally.bytes))
    with db.session() as session:
        if db.is_sqlite:  # the transaction holds the one write lock: nothing changes meanwhile
            top = session.scalar(select(func.max(m.Tally.id)))
            if top is None:
                return 0
            rows = session.execute(select(*sums).where(m.Tally.id <= top).group_by(*_KEYS)).all()
            folded = session.scalar(select(func.count()).where(m.Tally.id <= top))
            session.execute(delete(m.Tally).where(m.Tally.id <= top))
            live = [r for r in rows if r[5] or r[6]]
            if live:
                session.execute(
                    insert(m.Tally),
                    [
                        {
                            "kind": k,
                            "queue_id": q,
                            "source_site_id": s,
                            "destination_site_id": d,
                            "status": st,
                            "n": int(n or 0),
                            "bytes": int(b or 0),
                        }
                        for k, q, s, d, st, n, b in live
                    ],
                )
            return int(folded or 0)
        # PostgreSQL: one statement removes the rows it can see and writes back their sums
        result = session.execute(
            text(
                "WITH gone AS (DELETE FROM tally RETURNING kind, queue_id, source_site_id,"
                " destination_site_id, status, n, bytes),"
                " folded AS (INSERT INTO tally (kind, queue_id, source_site_id,"
                " destination_site_id, status, n, bytes)"
                " SELECT kind, queue_id, source_site_id, destination_site_id, status, sum(n),"
                " sum(bytes) FROM gone GROUP BY kind, queue_id, source_site_id,"
                " destination_site_id, status HAVING sum(n) <> 0 OR sum(bytes) <> 0)"
                " SELECT count(*) FROM gone"
            )
        )
        return int(result.scalar() or 0)


def vacuum(db: Database) -> None:
    """``VACUUM`` the tally on PostgreSQL (skipped when another process is at it; SQLite reuses
    the pages of deleted rows by itself)."""
    if db.is_sqlite:
        return
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM (SKIP_LOCKED) tally")
        )
