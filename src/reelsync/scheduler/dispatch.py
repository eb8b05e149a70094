"""Dispatch: lease queued tasks to the agent that asks for work, in batches (transfers).

Rules:
- Only tasks ``queued`` and due (``not_before`` past) of ``waiting``/``running`` transfer jobs in
  queues that are not paused are dispatched; on-hold, pending and excluded tasks never are.
- Order: queue priority (higher first, strictly); among queues of equal priority, weighted fair
  share (the queue with the fewest transfers in flight per unit of ``queue_weight`` goes next);
  within a queue, jobs first come first served; within a job, the highest task priority first,
  then the oldest task. A new higher-priority job thus takes the next free slot: nothing in flight
  is interrupted.
- Limits (see :mod:`reelsync.scheduler.model`): transfers in flight per site pair and per agent.
  Priority lane: a job whose queue priority is above everything in flight on a full agent or
  pair gets one transfer past that limit at once (nothing in flight is cut; the next lease goes
  to it), so a high-priority job is on the wire within a pass of its submit whatever runs below.
- Lease size: ``transfer_lease_target_s`` seconds of the rate the dialing agent measured
  (``rate_bytes``/``rate_files``, sent with its poll), at least one file, within the batch limits.
- A transfer goes only to its DIALING agent: the sender when the receiver listens (push), else the
  receiver, which pulls from a listening sender. Both agents must be online and serve the
  volumes at their sites; of several agents able to listen, the least busy is picked, and a
  listener's (or pair's) last free slots are left to the less busy agents able to dial it, so the
  agents of one site share the work whichever polls first.
- A claimed task becomes ``booting`` with a lease (``server_id`` = dialer, ``peer_id`` =
  listener, ``transfer_id``, ``lease_expires_at``); its job becomes ``running``.
- Lock order, as every writer of jobs and tasks: the job row, then its tasks. The job is re-read
  under its lock before its tasks are picked (a pause committed meanwhile wins).
- Concurrency: SQLite serialises the pass with its write transaction (``BEGIN IMMEDIATE``). On
  PostgreSQL tasks are picked with ``FOR UPDATE SKIP LOCKED`` (a task is never granted twice, even
  by two control-plane processes) and each site pair is taken with a transaction-scoped advisory
  try-lock before its in-flight count is read (the pair limit holds across processes; a pair busy
  in another process is skipped for this pass). Agent limits are exact within a site pair.
- Cost: a few queries per transfer granted and one per active job looked at, each an indexed
  ``LIMIT`` (``ix_task_dispatch``), plus a count of the tasks in flight: proportional to the free
  slots and active jobs, never to the number of queued tasks.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.records import SettingScope
from reelsync.domain.status import JobStatus, TaskStatus, check_task_transition
from reelsync.scheduler.agents import Agent, Fleet, Load, load_fleet, load_in_flight, pair_of
from reelsync.scheduler.model import FileGrant, SchedulingPolicy, TransferGrant, setting_int
from reelsync.services.settings import effective_settings

__all__ = ["claim_transfers"]

_DISPATCHABLE_JOBS = (JobStatus.WAITING.value, JobStatus.RUNNING.value)
_QUEUED = TaskStatus.QUEUED.value


def claim_transfers(
    db: Database,
    server_id: str,
    *,
    now: datetime | None = None,
    max_transfers: int | None = None,
    max_files: int | None = None,
    max_bytes: int | None = None,
    rate_bytes: float | None = None,
    rate_files: float | None = None,
) -> list[TransferGrant]:
    """Lease work to agent ``server_id`` (the one polling); returns its transfers (maybe none).

    ``max_transfers``/``max_files``/``max_bytes`` let the agent ask for less than the policy
    allows (per pass; per transfer); ``rate_bytes``/``rate_files``: what its transfers moved per
    second lately (leases are sized from it)."""
    moment = now or utcnow()
    with db.session() as session:
        return _Pass(
            session,
            server_id,
            moment,
            max_transfers,
            max_files,
            max_bytes,
            (rate_bytes, rate_files),
        ).run()


@dataclass(slots=True)
class _JobRef:
    row: m.Job
    exhausted: bool = False


@dataclass(slots=True)
class _Queue:
    id: str
    priority: int
    weight: int
    order: int
    jobs: list[_JobRef] = field(default_factory=list)


def _pair_lock_key(pair: tuple[str, str]) -> int:
    digest = hashlib.blake2b(f"reelsync-pair:{pair[0]}:{pair[1]}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


class _Pass:
    def __init__(
        self,
        session: Session,
        server_id: str,
        now: datetime,
        max_transfers: int | None,
        max_files: int | None,
        max_bytes: int | None,
        rates: tuple[float | None, float | None] = (None, None),
    ) -> None:
        self.session = session
        self.server_id = server_id
        self.now = now
        self.postgres = session.get_bind().dialect.name == "postgresql"
        policy = SchedulingPolicy.from_settings(
            effective_settings(session, SettingScope.WORKSPACE, "")
        )
        self.policy = policy
        self.max_transfers = max_transfers
        lease_files, lease_bytes = policy.lease_size(rates[0], rates[1])
        self.batch_files = min(lease_files, max_files or lease_files)
        self.batch_bytes = min(lease_bytes, max_bytes or lease_bytes)
        self.lane_only = False  # the agent is full: only a job above all it runs may pass
        self.fleet: Fleet = Fleet({}, {})
        self.load = Load()
        self.locked_pairs: dict[tuple[str, str], bool] = {}
        self.locked_jobs: set[str] = set()

    # -- the pass ------------------------------------------------------------------------
    def run(self) -> list[TransferGrant]:
        self.fleet = load_fleet(self.session)
        me = self.fleet.agents.get(self.server_id)
        if me is None or not me.volumes:
            return []
        self.load = load_in_flight(self.session)
        budget = self.policy.agent_concurrency - self.load.agents[me.id]
        if budget <= 0 and self.load.top.get(me.id) is not None:
            budget, self.lane_only = 1, True
        if self.max_transfers is not None:
            budget = min(budget, self.max_transfers)
        if budget <= 0:
            return []
        groups = self._queues(me)
        grants: list[TransferGrant] = []
        for group in groups:
            if self.lane_only and not self.load.outranks(me.id, group[0].priority):
                break
            active = list(group)
            while active and len(grants) < budget:
                queue = min(active, key=lambda q: (self.load.queues[q.id] / q.weight, q.order))
                grant = self._from_queue(me, queue)
                if grant is None:
                    active.remove(queue)
                    continue
                grants.append(grant)
            if len(grants) >= budget:
                break
        return grants

    def _queues(self, me: Agent) -> list[list[_Queue]]:
        """Queues with dispatchable jobs touching ``me``'s site, grouped by priority (desc)."""
        rows = self.session.execute(
            select(m.Job, m.Queue.priority)
            .join(m.Queue, m.Queue.id == m.Job.queue_id)
            .where(
                m.Job.status.in_(_DISPATCHABLE_JOBS),
                m.Job.type == "transfer",
                m.Queue.paused.is_(False),
                or_(m.Job.source_site_id == me.site_id, m.Job.destination_site_id == me.site_id),
                m.Job.source_site_id != m.Job.destination_site_id,
            )
            .order_by(m.Queue.priority.desc(), m.Job.created, m.Job.id)
        ).all()
        queues: dict[str, _Queue] = {}
        for job, priority in rows:
            queue = queues.get(job.queue_id)
            if queue is None:
                queue = queues[job.queue_id] = _Queue(job.queue_id, priority, 1, len(queues))
            queue.jobs.append(_JobRef(job))
        if not queues:
            return []
        for target_id, value in self.session.execute(
            select(m.Setting.target_id, m.Setting.value).where(
                m.Setting.scope == SettingScope.QUEUE.value,
                m.Setting.key == "queue_weight",
                m.Setting.target_id.in_(list(queues)),
            )
        ):
            queues[target_id].weight = setting_int({"w": value}, "w", 1, low=1, high=1_000_000)
        groups: list[list[_Queue]] = []
        for queue in queues.values():  # already in priority order
            if groups and groups[-1][0].priority == queue.priority:
                groups[-1].append(queue)
            else:
                groups.append([queue])
        return groups

    def _from_queue(self, me: Agent, queue: _Queue) -> TransferGrant | None:
        for ref in queue.jobs:
            if ref.exhausted:
                continue
            grant = self._from_job(me, ref.row, queue.priority)
            if grant is not None:
                return grant
            ref.exhausted = True
        return None

    # -- one job -------------------------------------------------------------------------
    def _pair_open(self, pair: tuple[str, str], priority: int) -> bool:
        if self.postgres and pair not in self.locked_pairs:
            got = bool(
                self.session.scalar(select(func.pg_try_advisory_xact_lock(_pair_lock_key(pair))))
            )
            self.locked_pairs[pair] = got
            if got:  # counts read before the lock may be stale: recount this pair
                fresh = load_in_flight(self.session, pairs=[pair])
                self.load.pairs[pair] = fresh.pairs[pair]
        if self.postgres and not self.locked_pairs[pair]:
            return False
        if self.load.pairs[pair] < self.policy.pair_concurrency:
            return True
        return self.load.outranks(pair, priority)  # the priority lane

    def _from_job(self, me: Agent, job: m.Job, priority: int) -> TransferGrant | None:
        if not self._still_dispatchable(job):
            return None
        sending = job.source_site_id == me.site_id
        other_site = job.destination_site_id if sending else job.source_site_id
        if not sending and me.listening:
            return None  # a listening receiver is dialed by the sender: the sender gets it
        pair = pair_of(me.site_id, other_site)
        if not self._pair_open(pair, priority):
            return None
        limit = self.policy.agent_concurrency
        peers = [
            a
            for a in self.fleet.at_site(other_site)
            if a.id != me.id
            and a.listening
            and a.volumes
            and (self.load.agents[a.id] < limit or self.load.outranks(a.id, priority))
        ]
        peers.sort(key=lambda a: (self.load.agents[a.id], a.id))
        tried: set[frozenset[str]] = set()
        for peer in peers:
            if peer.volumes in tried:
                continue
            tried.add(peer.volumes)
            src_volumes = me.volumes if sending else peer.volumes
            dst_volumes = peer.volumes if sending else me.volumes
            picked = self._pick(job, src_volumes, dst_volumes)
            if picked and self._leave_to_others(me, peer, pair, sending, picked):
                tried.discard(peer.volumes)  # another listener with these volumes may have room
                continue
            if picked:
                return self._lease(me, peer, job, sending, pair, picked, priority)
        return None

    def _leave_to_others(
        self, me: Agent, peer: Agent, pair: tuple[str, str], sending: bool, rows: list[Any]
    ) -> bool:
        """Leave ``peer``'s last free slots to agents of ``me``'s site less busy than ``me``
        that could dial it for these files (online, serving their volumes, below the agent
        limit): a slot freed at a shared receiver goes to the least busy sender, not to whichever
        agent polled first. Those agents are polling (a report that frees a slot wakes every
        parked poll; a parked poll passes again within a second), so the slot is taken at once.
        The priority lane (no free slot) is never held back."""
        limit = self.policy.agent_concurrency
        free = min(
            limit - self.load.agents[peer.id],
            self.policy.pair_concurrency - self.load.pairs[pair],
        )
        if free <= 0:
            return False
        mine = min(self.load.agents[me.id], limit)
        needed = {row.source_volume_id if sending else row.destination_volume_id for row in rows}
        others = sum(
            1
            for agent in self.fleet.at_site(me.site_id)
            if agent.id != me.id
            and self.load.agents[agent.id] < mine
            and (sending or not agent.listening)  # a listening receiver never dials
            and needed <= agent.volumes
        )
        return others >= free

    def _still_dispatchable(self, job: m.Job) -> bool:
        """Lock the job row (job before tasks, the order every writer uses) and re-read it: a
        pause or abort committed since the pass began must not be overwritten."""
        if self.postgres and job.id not in self.locked_jobs:
            self.session.refresh(job, with_for_update=True)
            self.locked_jobs.add(job.id)
        return job.status in _DISPATCHABLE_JOBS

    def _pick(self, job: m.Job, src: frozenset[str], dst: frozenset[str]) -> list[Any]:
        """Up to one batch of due queued tasks, highest priority level first, oldest first."""
        task = m.Task
        levels = select(func.max(task.priority)).where(
            task.job_id == job.id, task.status == _QUEUED
        )
        level = self.session.scalar(levels)
        batch: list[Any] = []
        total = 0
        while level is not None:
            query = (
                select(
                    task.id,
                    task.source_volume_id,
                    task.source_path,
                    task.destination_volume_id,
                    task.destination_path,
                    task.size,
                )
                .where(
                    task.job_id == job.id,
                    task.status == _QUEUED,
                    task.priority == level,
                    or_(task.not_before.is_(None), task.not_before <= self.now),
                    task.source_volume_id.in_(sorted(src)),
                    task.destination_volume_id.in_(sorted(dst)),
                )
                .order_by(task.created)
                .limit(self.batch_files - len(batch))
            )
            if self.postgres:
                query = query.with_for_update(skip_locked=True, of=task)
            for row in self.session.execute(query):
                size = row.size or 0
                if batch and total + size > self.batch_bytes:
                    return batch
                batch.append(row)
                total += size
                if total >= self.batch_bytes:
                    return batch
            if len(batch) >= self.batch_files:
                return batch
            level = self.session.scalar(levels.where(task.priority < level))
        return batch

    def _lease(
        self,
        me: Agent,
        peer: Agent,
        job: m.Job,
        sending: bool,
        pair: tuple[str, str],
        rows: list[Any],
        priority: int,
    ) -> TransferGrant:
        check_task_transition(TaskStatus.QUEUED, TaskStatus.BOOTING, system=True)
        transfer_id = str(uuid.uuid4())
        expires = self.now + timedelta(seconds=self.policy.lease_s)
        ids = [row.id for row in rows]
        for start in range(0, len(ids), 500):
            self.session.execute(
                update(m.Task)
                # by primary key only: a status condition here lets a planner without fresh
                # statistics walk the status index over the whole backlog. The rows are ours:
                # locked by the pick (PostgreSQL) or by the write transaction (SQLite).
                .where(m.Task.id.in_(ids[start : start + 500]))
                .values(
                    status=TaskStatus.BOOTING.value,
                    server_id=me.id,
                    peer_id=peer.id,
                    transfer_id=transfer_id,
                    lease_expires_at=expires,
                    dispatches=m.Task.dispatches + 1,
                    modified=self.now,
                )
                .execution_options(synchronize_session=False)
            )
        if job.status == JobStatus.WAITING.value:
            job.status = JobStatus.RUNNING.value  # what rollup says with a task booting
            job.modified = self.now
        self.load.add(me.id, peer.id, pair, job.queue_id, priority)
        codes = self.fleet.volume_codes
        files = tuple(
            FileGrant(
                task_id=row.id,
                src_volume=codes[row.source_volume_id],
                src_path=row.source_path,
                dst_volume=codes[row.destination_volume_id],
                dst_path=row.destination_path,
                size=row.size,
            )
            for row in rows
        )
        assert peer.peer_address is not None
        assert peer.peer_port is not None
        return TransferGrant(
            transfer_id=transfer_id,
            direction="push" if sending else "pull",
            sender_id=me.id if sending else peer.id,
            receiver_id=peer.id if sending else me.id,
            peer_host=peer.peer_address,
            peer_port=peer.peer_port,
            files=files,
            lease_expires_at=expires,
            priority=priority,
        )
