"""An agent leaving or coming back: its leases go back to the queue at once, not at their expiry.

Rules:
- :func:`agent_left` (a clean stop says goodbye; a killed agent's work long-poll is seen to drop
  and no new one comes, nor a heartbeat anywhere): the agent becomes ``offline`` and every task
  in flight it dials or listens for goes back to ``queued`` (no try counted), so other agents
  take the files at once.
- :func:`agent_restarted` (the first heartbeat of a new agent process): the same release, the
  agent stays online and takes its files back at its next work poll (the receiver resumes from
  its verified chunks). A process that restarted holds nothing: what the old one leased is dead.
- :func:`release_transfers` (a work answer the agent never got): those transfers' tasks go back.
- :func:`release_unheld` (an agent's work poll lists the transfers it holds): the tasks it dials
  under any other transfer go back. Such a lease came in a work answer that never reached it (a
  control-plane process killed between its commit and its answer, so no process saw the client
  go): without this, its files would wait for the lease to expire while the agent is alive.
Lock order as every writer: the jobs, then their tasks.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, update

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.records import ServerStatus
from reelsync.scheduler.agents import IN_FLIGHT
from reelsync.scheduler.reports import release_tasks
from reelsync.services.rollup import refresh_job

__all__ = ["agent_left", "agent_restarted", "release_transfers", "release_unheld"]


def _release(
    db: Database, where: ColumnElement[bool], reason: str | None, *, offline_id: str | None
) -> int:
    moment = utcnow()
    with db.session() as session:
        if offline_id is not None and reason is not None:
            hostname = session.scalar(select(m.Server.hostname).where(m.Server.id == offline_id))
            reason = reason.format(agent=hostname or offline_id)
            session.execute(
                update(m.Server)
                .where(m.Server.id == offline_id, m.Server.status == ServerStatus.ONLINE.value)
                .values(status=ServerStatus.OFFLINE.value, modified=moment)
            )
        job_ids = sorted(
            set(session.scalars(select(m.Task.job_id).where(m.Task.status.in_(IN_FLIGHT), where)))
        )
        if not job_ids:
            return 0
        jobs = list(
            session.scalars(
                select(m.Job).where(m.Job.id.in_(job_ids)).order_by(m.Job.id).with_for_update()
            )
        )
        tasks = list(
            session.scalars(
                select(m.Task)
                .where(m.Task.status.in_(IN_FLIGHT), m.Task.job_id.in_(job_ids), where)
                .with_for_update()
            )
        )
        release_tasks(session, tasks, moment, reason=reason)
        for job in jobs:
            refresh_job(session, job)
        return len(tasks)


def agent_left(
    db: Database, server_id: str, *, how: str, unless_seen_since: datetime | None = None
) -> int | None:
    """``server_id`` is gone (``how``: "stopped", "was lost"): offline, its leases released; how
    many tasks went back to the queue. None (nothing done) when ``unless_seen_since`` is given
    and the agent checked in since then (it is alive, talking to another process)."""
    if unless_seen_since is not None:
        with db.session() as session:
            seen = session.scalar(select(m.Server.last_checkin).where(m.Server.id == server_id))
        if seen is not None and seen >= unless_seen_since:
            return None
    where = or_(m.Task.server_id == server_id, m.Task.peer_id == server_id)
    reason = "agent {agent} " + how + " during the transfer; it will be retried"
    return _release(db, where, reason, offline_id=server_id)


def agent_restarted(db: Database, server_id: str) -> int:
    """A new process of agent ``server_id`` started: the old process's leases go back at once."""
    where = or_(m.Task.server_id == server_id, m.Task.peer_id == server_id)
    return _release(db, where, None, offline_id=None)


def release_transfers(db: Database, server_id: str, transfer_ids: Sequence[str]) -> int:
    """Transfers leased to ``server_id`` that it never received go back to the queue."""
    if not transfer_ids:
        return 0
    where = (m.Task.server_id == server_id) & m.Task.transfer_id.in_(list(transfer_ids))
    return _release(db, where, None, offline_id=None)


def release_unheld(db: Database, server_id: str, held: Collection[str]) -> int:
    """``server_id`` holds only the transfers ``held`` (said in its work poll, before that poll
    is answered: an agent polls once at a time, so a lease it does not list is one whose answer
    it never got); the tasks it dials under any other transfer go back to the queue."""
    where = (m.Task.server_id == server_id) & m.Task.transfer_id.not_in(sorted(held))
    with db.reader() as session:  # every poll asks: the write lock only when there is one
        orphan = session.scalar(
            select(m.Task.id).where(m.Task.status.in_(IN_FLIGHT), where).limit(1)
        )
    if orphan is None:
        return 0
    return _release(db, where, None, offline_id=None)
