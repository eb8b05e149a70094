"""claim_transfers: who gets what, in which order, within which limits (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.records import Actor
from reelsync.scheduler import TaskReport, apply_reports, claim_transfers
from reelsync.services import jobs, tasks, volumes
from scheduler_world import World


@pytest.fixture
def world(database: Database, admin: Actor) -> World:
    return World(database, admin)


def _files(grants) -> list[str]:
    return [f.src_path for g in grants for f in g.files]


def test_sender_dials_a_listening_receiver(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    receiver = world.agent("london", port=7443)
    job = world.job(3)
    assert claim_transfers(world.db, receiver) == []  # the receiver listens: not its to dial
    [grant] = claim_transfers(world.db, sender)
    assert (grant.direction, grant.sender_id, grant.receiver_id) == ("push", sender, receiver)
    assert (grant.peer_host, grant.peer_port) == ("127.0.0.1", 7443)
    assert [(f.src_volume, f.src_path, f.dst_volume, f.dst_path) for f in grant.files] == [
        ("projects", f"shots/f000{i}.exr", "projects", f"shots/f000{i}.exr") for i in range(3)
    ]
    assert grant.lease_expires_at > utcnow() + timedelta(seconds=60)
    rows = world.tasks(job.id)
    assert {(t.status, t.server_id, t.peer_id, t.transfer_id, t.dispatches) for t in rows} == {
        ("booting", sender, receiver, grant.transfer_id, 1)
    }
    assert world.job_row(job.id).status == "running"
    assert claim_transfers(world.db, sender) == []  # nothing left to give


def test_receiver_pulls_when_it_does_not_listen(world: World) -> None:
    sender = world.agent("hq", port=7001)
    receiver = world.agent("london", dialable=False)
    world.job(2)
    assert claim_transfers(world.db, sender) == []  # the receiver cannot be dialed
    [grant] = claim_transfers(world.db, receiver)
    assert (grant.direction, grant.sender_id, grant.receiver_id) == ("pull", sender, receiver)
    assert (grant.dialer_id, grant.listener_id, grant.peer_port) == (receiver, sender, 7001)


def test_no_grant_without_an_online_peer_serving_the_volume(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    offline = world.agent("london", status="offline")
    job = world.job(1)
    assert claim_transfers(world.db, sender) == []
    assert claim_transfers(world.db, offline) == []
    world.agent("paris")  # another site: no use for hq -> london
    assert claim_transfers(world.db, sender) == []
    world.agent("london")
    assert len(claim_transfers(world.db, sender)) == 1
    assert world.statuses(job.id) == {"booting": 1}


def test_queue_priority_then_fifo_then_task_priority(world: World) -> None:
    world.setting("transfer_batch_files", 1)
    world.setting("agent_concurrency", 100)
    world.setting("transfer_concurrency", 100)
    world.queue("backlog", 100)
    world.queue("rush", 900)
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    old_low = world.job(["low/old0", "low/old1"], queue="backlog")
    world.age(old_low.id, 60)
    medium_first = world.job(["med/a0", "med/a1"])
    world.age(medium_first.id, 30)
    medium_next = world.job(["med/b0", "med/b1"])
    world.job(["high/h0", "high/h1"], queue="rush")
    tasks.update_tasks(world.db, world.admin, medium_next.id, [{"uri": "1", "priority": 900}])
    order = _files(claim_transfers(world.db, sender))
    assert order == [
        "high/h0",
        "high/h1",
        "med/a0",
        "med/a1",
        "med/b1",  # raised within its job
        "med/b0",
        "low/old0",
        "low/old1",
    ]


def test_higher_priority_job_takes_the_lane_then_the_next_free_slot(world: World) -> None:
    world.setting("transfer_batch_files", 1)
    world.setting("agent_concurrency", 2)
    world.queue("rush", 900)
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    low = world.job(5)
    first = claim_transfers(world.db, sender)
    assert len(first) == 2
    assert claim_transfers(world.db, sender) == []  # the agent is full
    high = world.job(["urgent/x", "urgent/y"], queue="rush")
    # the priority lane: one transfer past the full agent at once, nothing in flight is cut
    [lane] = claim_transfers(world.db, sender)
    assert _files([lane]) == ["urgent/x"]
    assert claim_transfers(world.db, sender) == []  # one lane transfer, not one per pass
    assert world.statuses(low.id) == {"booting": 2, "queued": 3}
    apply_reports(world.db, sender, [TaskReport(first[0].files[0].task_id, "done", 10, size=10)])
    apply_reports(world.db, sender, [TaskReport(lane.files[0].task_id, "done", 10, size=10)])
    [grant] = claim_transfers(world.db, sender)
    assert _files([grant]) == ["urgent/y"]  # the next free slot goes to the high job too
    assert world.statuses(high.id) == {"done": 1, "booting": 1}
    assert world.statuses(low.id) == {"done": 1, "booting": 1, "queued": 3}


def test_leases_are_sized_from_the_measured_rate(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    world.job(600)
    [first] = claim_transfers(world.db, sender, max_transfers=1)  # nothing measured yet
    assert len(first.files) == 256
    # 50 files/s at a 2 s target: 100 files (the byte rate is no limit here)
    [timed] = claim_transfers(world.db, sender, max_transfers=1, rate_bytes=1e9, rate_files=50)
    assert len(timed.files) == 100
    # a slow link: at least one file
    [slow] = claim_transfers(world.db, sender, max_transfers=1, rate_bytes=1, rate_files=0.01)
    assert len(slow.files) == 1


def test_fair_share_between_queues_of_equal_priority(world: World) -> None:
    world.setting("transfer_batch_files", 1)
    world.setting("agent_concurrency", 8)
    world.setting("transfer_concurrency", 8)
    world.queue("proj1", 500)
    world.queue("proj2", 500)
    world.setting("queue_weight", 3, scope="queue", target="proj2")
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    world.agent("london", port=7002)
    one = world.job(20, queue="proj1", prefix="one")
    world.age(one.id, 60)  # older: plain FIFO would give it everything
    two = world.job(20, queue="proj2", prefix="two")
    grants = claim_transfers(world.db, sender)
    assert len(grants) == 8
    taken = [g.files[0].src_path.split("/")[0] for g in grants]
    assert (taken.count("one"), taken.count("two")) == (2, 6)  # 1 : 3
    assert world.statuses(two.id)["booting"] == 6


def test_paused_queue_paused_job_onhold_and_backoff_are_held(world: World) -> None:
    world.queue("frozen", 900, paused=True)
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    in_frozen = world.job(1, queue="frozen", prefix="frozen")
    paused = world.job(1, prefix="paused", status="paused")
    held = world.job(2, prefix="held")
    tasks.update_tasks(world.db, world.admin, held.id, [{"uri": "0", "status": "onhold"}])
    with world.db.session() as s:
        s.execute(
            update(m.Task)
            .where(m.Task.job_id == held.id, m.Task.uri == "1")
            .values(not_before=utcnow() + timedelta(minutes=5))
        )
    assert claim_transfers(world.db, sender) == []
    later = claim_transfers(world.db, sender, now=utcnow() + timedelta(minutes=6))
    assert _files(later) == ["held/f0001.exr"]
    jobs.update_job(world.db, world.admin, paused.id, status="waiting")
    assert _files(claim_transfers(world.db, sender)) == ["paused/f0000.exr"]
    assert world.statuses(in_frozen.id) == {"queued": 1}


def test_site_pair_and_agent_limits(world: World) -> None:
    world.setting("transfer_batch_files", 1)
    world.setting("transfer_concurrency", 3)
    world.setting("agent_concurrency", 2)
    hq1 = world.agent("hq", dialable=False)
    hq2 = world.agent("hq", dialable=False)
    lon1 = world.agent("london", port=7001)
    lon2 = world.agent("london", port=7002)
    world.agent("paris", port=7003)
    world.job(10)
    paris_job = world.job(3, to="paris", prefix="paris")
    first = claim_transfers(world.db, hq1)
    assert len(first) == 2  # agent limit
    assert {g.receiver_id for g in first} == {lon1, lon2}  # listeners share the work
    second = claim_transfers(world.db, hq2)
    # the pair hq-london has 1 slot left; the rest of hq2's budget goes to hq-paris
    paths = sorted(_files(second))
    assert len(second) == 2
    assert paths[0].startswith("paris/")
    assert paths[1].startswith("shots/")
    assert world.statuses(paris_job.id) == {"booting": 1, "queued": 2}
    assert claim_transfers(world.db, hq2) == []


def test_a_shared_receivers_free_slots_go_to_the_least_busy_sender(world: World) -> None:
    world.setting("transfer_batch_files", 1)
    world.setting("agent_concurrency", 2)
    hq1 = world.agent("hq", dialable=False)
    hq2 = world.agent("hq", dialable=False)
    london = world.agent("london")
    world.job(8)
    # hq1 polls first, but london's second slot is left to hq2, which has nothing in flight
    [first] = claim_transfers(world.db, hq1)
    [second] = claim_transfers(world.db, hq2)
    assert (first.receiver_id, second.receiver_id) == (london, london)
    assert claim_transfers(world.db, hq1) == claim_transfers(world.db, hq2) == []  # london full
    # hq1's transfer ends: hq1 has none in flight, hq2 one; the freed slot is hq1's even if
    # hq2 asks first
    apply_reports(world.db, hq1, [TaskReport(first.files[0].task_id, "done", 10, size=10)])
    assert claim_transfers(world.db, hq2) == []
    assert len(claim_transfers(world.db, hq1)) == 1


def test_a_receivers_slots_are_not_held_for_a_sender_that_cannot_take_them(
    world: World,
) -> None:
    world.setting("transfer_batch_files", 1)
    world.setting("agent_concurrency", 2)
    hq1 = world.agent("hq", dialable=False)
    world.agent("hq", dialable=False, status="offline")
    elsewhere = world.agent("hq", dialable=False)
    # the third hq agent serves another volume only: it cannot send these files
    volumes.create_volume(world.db, world.admin, code="other", paths={"hq": "/mnt/o"})
    with world.db.session() as s:
        other = s.scalar(select(m.Volume.id).where(m.Volume.code == "other"))
        s.add(m.ServerVolume(server_id=elsewhere, volume_id=other))
    world.agent("london")
    world.job(8)
    assert len(claim_transfers(world.db, hq1)) == 2  # nobody else could take london's slots


def test_batches_small_files_together_and_big_files_alone(world: World) -> None:
    world.setting("transfer_batch_files", 4)
    world.setting("transfer_batch_bytes", 1000)
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    small = world.job(6, prefix="small")
    world.set_sizes(small.id, 100)
    big = world.job(2, prefix="big")
    world.set_sizes(big.id, 5000)
    world.age(small.id, 10)
    grants = claim_transfers(world.db, sender)
    assert [len(g.files) for g in grants] == [4, 2, 1, 1]
    assert [f.size for f in grants[2].files] == [5000]


def test_pass_respects_what_the_agent_asks_for(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    world.job(10)
    [grant] = claim_transfers(world.db, sender, max_transfers=1, max_files=3)
    assert len(grant.files) == 3
