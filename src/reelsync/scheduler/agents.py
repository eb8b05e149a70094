"""Which agents can move what right now, and how busy they are.

Rules: an agent takes work only while it is ``online`` (its heartbeat keeps it so; the sweep marks
it offline) at an enabled site. It serves the volumes listed for it in ``server_volume``, or, when
none are listed, every enabled volume that has a path at its site. A transfer in flight counts once
for its dialing agent, once for its listening agent, once for its pair of sites (unordered: one
WAN link) and once for its job's queue; tasks in flight are those ``booting`` or ``executing``.
The highest queue priority each agent has in flight is kept for the scheduler's priority lane.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelsync.db import models as m
from reelsync.domain.records import ServerStatus
from reelsync.domain.status import TaskStatus

__all__ = ["IN_FLIGHT", "Agent", "Fleet", "Load", "load_fleet", "load_in_flight", "pair_of"]

IN_FLIGHT = (TaskStatus.BOOTING.value, TaskStatus.EXECUTING.value)


def pair_of(site_a: str, site_b: str) -> tuple[str, str]:
    return (site_a, site_b) if site_a <= site_b else (site_b, site_a)


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    site_id: str
    dialable: bool
    peer_address: str | None
    peer_port: int | None
    volumes: frozenset[str]  # volume ids served

    @property
    def listening(self) -> bool:
        """Other agents can dial it (it listens and said where)."""
        return bool(self.dialable and self.peer_address and self.peer_port)


@dataclass(frozen=True, slots=True)
class Fleet:
    agents: dict[str, Agent]
    volume_codes: dict[str, str]

    def at_site(self, site_id: str) -> list[Agent]:
        return [a for a in self.agents.values() if a.site_id == site_id]


@dataclass(slots=True)
class Load:
    """Transfers in flight, per agent, per site pair and per queue."""

    agents: Counter[str] = field(default_factory=Counter)
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    queues: Counter[str] = field(default_factory=Counter)
    # agent id or site pair -> the highest queue priority in flight there
    top: dict[str | tuple[str, str], int] = field(default_factory=dict)

    def add(
        self,
        dialer: str | None,
        listener: str | None,
        pair: tuple[str, str],
        queue: str,
        priority: int = 0,
    ) -> None:
        for agent in (dialer, listener):
            if agent:
                self.agents[agent] += 1
                self.top[agent] = max(self.top.get(agent, priority), priority)
        self.pairs[pair] += 1
        self.top[pair] = max(self.top.get(pair, priority), priority)
        self.queues[queue] += 1

    def outranks(self, where: str | tuple[str, str], priority: int) -> bool:
        """``where`` (an agent or a site pair) has transfers in flight, all below ``priority``."""
        top = self.top.get(where)
        return top is not None and priority > top


def load_fleet(session: Session) -> Fleet:
    """Online agents at enabled sites with the volumes each serves (a few small queries)."""
    rows = session.execute(
        select(
            m.Server.id,
            m.Server.site_id,
            m.Server.dialable,
            m.Server.peer_address,
            m.Server.peer_port,
        )
        .join(m.Site, m.Site.id == m.Server.site_id)
        .where(m.Server.status == ServerStatus.ONLINE.value, m.Site.enabled.is_(True))
    ).all()
    volumes = dict(
        session.execute(select(m.Volume.id, m.Volume.code).where(m.Volume.enabled.is_(True))).all()
    )
    at_site: dict[str, set[str]] = {}
    for volume_id, site_id in session.execute(select(m.VolumePath.volume_id, m.VolumePath.site_id)):
        if volume_id in volumes:
            at_site.setdefault(site_id, set()).add(volume_id)
    listed: dict[str, set[str]] = {}
    ids = [r.id for r in rows]
    if ids:
        for server_id, volume_id in session.execute(
            select(m.ServerVolume.server_id, m.ServerVolume.volume_id).where(
                m.ServerVolume.server_id.in_(ids)
            )
        ):
            listed.setdefault(server_id, set()).add(volume_id)
    agents: dict[str, Agent] = {}
    for row in rows:
        site_volumes = at_site.get(row.site_id, set())
        own = listed.get(row.id)
        served = (own & site_volumes) if own is not None else site_volumes
        agents[row.id] = Agent(
            id=row.id,
            site_id=row.site_id,
            dialable=bool(row.dialable),
            peer_address=row.peer_address,
            peer_port=row.peer_port,
            volumes=frozenset(served),
        )
    return Fleet(agents=agents, volume_codes=volumes)


def load_in_flight(session: Session, *, pairs: Iterable[tuple[str, str]] | None = None) -> Load:
    """Count the transfers in flight (cost: the tasks in flight, never the backlog)."""
    query = (
        select(
            m.Task.transfer_id,
            m.Task.server_id,
            m.Task.peer_id,
            m.Job.source_site_id,
            m.Job.destination_site_id,
            m.Job.queue_id,
            m.Queue.priority,
        )
        .join(m.Job, m.Job.id == m.Task.job_id)
        .join(m.Queue, m.Queue.id == m.Job.queue_id)
        .where(m.Task.status.in_(IN_FLIGHT))
        .distinct()
    )
    wanted = set(pairs) if pairs is not None else None
    load = Load()
    seen: set[str] = set()
    for transfer_id, dialer, listener, src, dst, queue, priority in session.execute(query):
        key = transfer_id or f"-{dialer}-{src}-{dst}"
        if key in seen:
            continue
        seen.add(key)
        pair = pair_of(src, dst)
        if wanted is not None and pair not in wanted:
            continue
        load.add(dialer, listener, pair, queue, priority)
    return load
