"""A job's life through the scheduler: revived by new tasks, stale speed, and the one outbox
entry when it ends (notify's capture, installed as the server process does)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reelsync.db import Database
from reelsync.db.types import utcnow
from reelsync.domain.records import Actor
from reelsync.scheduler import TaskReport, apply_reports, claim_transfers, sweep
from reelsync.services import tasks
from scheduler_world import World


@pytest.fixture
def world(database: Database, admin: Actor) -> World:
    return World(database, admin)


def _finish(world: World, agent: str) -> None:
    for grant in claim_transfers(world.db, agent):
        apply_reports(
            world.db, agent, [TaskReport(f.task_id, "done", 7, size=7) for f in grant.files]
        )


def test_a_revived_job_is_dispatched_again(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(2)
    _finish(world, sender)
    assert world.job_row(job.id).status == "done"
    tasks.add_tasks(world.db, world.admin, job.id, ["shots/late.exr"])
    revived = world.job_row(job.id)
    assert (revived.status, revived.finished) == ("running", None)  # 2 done, 1 queued
    [grant] = claim_transfers(world.db, sender)
    assert [f.src_path for f in grant.files] == ["shots/late.exr"]
    apply_reports(world.db, sender, [TaskReport(grant.files[0].task_id, "done", 7, size=7)])
    row = world.job_row(job.id)
    assert (row.status, row.size, row.progress) == ("done", 21, 100.0)


def test_speed_goes_to_zero_when_reports_stop(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(1)
    world.set_sizes(job.id, 10_000)
    t0 = utcnow()
    [grant] = claim_transfers(world.db, sender, now=t0)
    task_id = grant.files[0].task_id
    apply_reports(world.db, sender, [TaskReport(task_id, "executing", 1000)], now=t0)
    apply_reports(
        world.db, sender, [TaskReport(task_id, "executing", 3000)], now=t0 + timedelta(seconds=2)
    )
    assert world.job_row(job.id).speed == 1000.0
    sweep(world.db, now=t0 + timedelta(seconds=10), offline_after_s=3600)
    assert world.job_row(job.id).speed == 1000.0  # recent enough
    sweep(world.db, now=t0 + timedelta(seconds=60), offline_after_s=3600)
    row = world.job_row(job.id)
    assert (row.speed, row.etr) == (0.0, None)
