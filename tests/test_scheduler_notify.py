"""A job finished by agent reports writes exactly one outbox mail, in the report's transaction
(notify's capture installed as the server process does)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor
from reelsync.notify.capture import install_job_events
from reelsync.scheduler import TaskReport, apply_reports, claim_transfers
from reelsync.services import jobs
from scheduler_world import World


@pytest.fixture
def world(database: Database, admin: Actor) -> Iterator[World]:
    capture = install_job_events(database)
    try:
        yield World(database, admin)
    finally:
        capture.remove()


def _mails(world: World, job_id: str) -> list[str]:
    with world.db.session() as s:
        keys = s.scalars(select(m.Outbox.dedupe_key).where(m.Outbox.kind == "mail"))
        return sorted(k for k in keys if k and k.startswith(f"job:{job_id}:"))


def test_done_and_failed_jobs_enqueue_one_mail_each_time_they_end(world: World) -> None:
    world.setting("job_max_retries", 0)
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(3)
    [grant] = claim_transfers(world.db, sender)
    a, b, c = (f.task_id for f in grant.files)
    apply_reports(world.db, sender, [TaskReport(a, "done", 1, size=1)])
    assert _mails(world, job.id) == []
    apply_reports(
        world.db,
        sender,
        [TaskReport(b, "done", 1, size=1), TaskReport(c, "failed", 0, error="disk full")],
    )
    assert world.job_row(job.id).status == "failed"
    [failed_mail] = _mails(world, job.id)
    assert ":failed:" in failed_mail
    apply_reports(world.db, sender, [TaskReport(c, "failed", 0, error="again")])  # refused
    assert len(_mails(world, job.id)) == 1
    jobs.update_job(world.db, world.admin, job.id, status="waiting")  # retry
    [again] = claim_transfers(world.db, sender)
    apply_reports(world.db, sender, [TaskReport(again.files[0].task_id, "done", 1, size=1)])
    assert world.job_row(job.id).status == "done"
    mails = _mails(world, job.id)
    assert len(mails) == 2
    assert sum(":done:" in key for key in mails) == 1
