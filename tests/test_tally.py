"""The running totals behind /metrics (triggers on job and task, folded by compact) agree with
counting the rows, through submits, status changes, a queue move, a delete and pruning."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.records import Actor
from reelsync.server.housekeeping import Housekeeper
from reelsync.services import history, jobs, queues, settings, sites, tally, tasks, volumes


def _counted(db: Database) -> dict[str, Any]:
    """What the totals must say, by counting every row."""
    with db.reader() as s:
        job_rows = s.execute(
            select(
                m.Job.queue_id,
                m.Job.source_site_id,
                m.Job.destination_site_id,
                m.Job.status,
                func.count(),
            ).group_by(
                m.Job.queue_id, m.Job.source_site_id, m.Job.destination_site_id, m.Job.status
            )
        ).all()
        task_rows = s.execute(
            select(
                m.Job.queue_id,
                m.Job.source_site_id,
                m.Job.destination_site_id,
                m.Task.status,
                func.count(),
            )
            .join(m.Job, m.Job.id == m.Task.job_id)
            .group_by(
                m.Job.queue_id, m.Job.source_site_id, m.Job.destination_site_id, m.Task.status
            )
        ).all()
        done = s.execute(
            select(m.Job.source_site_id, m.Job.destination_site_id, func.sum(m.Task.size))
            .join(m.Job, m.Job.id == m.Task.job_id)
            .where(m.Task.status == "done")
            .group_by(m.Job.source_site_id, m.Job.destination_site_id)
        ).all()
    return {
        "jobs": sorted(tuple(r) for r in job_rows),
        "tasks": sorted(tuple(r) for r in task_rows),
        "done": sorted((a, b, int(n or 0)) for a, b, n in done if n),
    }


def _totals(db: Database) -> dict[str, Any]:
    got = tally.totals(db)
    return {
        "jobs": sorted(got.jobs),
        "tasks": sorted(got.tasks),
        "done": sorted(r for r in got.done_bytes if r[2]),
    }


def _submit(db: Database, actor: Actor, n: int, queue: str | None = None) -> str:
    payload: dict[str, Any] = {
        "tasks": [
            {"source": f"share=projects/p/f{n}_{i}.exr", "destination": "site=london"}
            for i in range(n)
        ]
    }
    if queue:
        payload["queue"] = queue
    return jobs.submit_job(db, actor, payload).id


def test_totals_follow_every_change(database: Database, admin: Actor) -> None:
    sites.create_site(database, admin, code="london")
    volumes.create_volume(
        database, admin, code="projects", paths={"hq": "/mnt/projects", "london": "/data/projects"}
    )
    queues.create_queue(database, admin, code="proj001", priority=900)
    a = _submit(database, admin, 3)
    b = _submit(database, admin, 5, queue="proj001")
    c = _submit(database, admin, 2)
    assert _totals(database) == _counted(database)
    with database.session() as s:  # what an agent's reports do: files done with their sizes
        s.execute(
            update(m.Task)
            .where(m.Task.job_id == b, m.Task.uri.in_(["0", "1"]))
            .values(status="done", size=1000, finished=utcnow())
        )
        s.execute(update(m.Task).where(m.Task.job_id == b, m.Task.uri == "2").values(size=7))
        s.execute(update(m.Task).where(m.Task.job_id == b, m.Task.uri == "0").values(size=1500))
        s.execute(update(m.Job).where(m.Job.id == b).values(status="running"))
    assert _totals(database) == _counted(database)
    jobs.update_job(database, admin, a, status="paused")
    jobs.update_job(database, admin, a, queue="proj001")  # its tasks move to the queue's totals
    tasks.update_tasks(database, admin, c, [{"uri": "0", "status": "excluded"}])
    jobs.update_job(database, admin, c, status="aborted")
    assert _totals(database) == _counted(database)
    jobs.delete_job(database, admin, c)
    assert _totals(database) == _counted(database)
    before = _totals(database)
    assert tally.compact(database) > 0
    assert _totals(database) == before
    with database.reader() as s:  # one row per key left
        rows = s.scalar(select(func.count()).select_from(m.Tally))
    assert rows == len(before["jobs"]) + len(before["tasks"])
    _submit(database, admin, 4)  # and it goes on counting after a fold
    assert _totals(database) == _counted(database)


def test_pruning_keeps_jobs_and_totals(database: Database, admin: Actor) -> None:
    sites.create_site(database, admin, code="london")
    volumes.create_volume(
        database, admin, code="projects", paths={"hq": "/mnt/projects", "london": "/data/projects"}
    )
    old = _submit(database, admin, 4)
    fresh = _submit(database, admin, 2)
    long_ago = utcnow() - timedelta(days=40)
    with database.session() as s:
        s.execute(
            update(m.Task)
            .where(m.Task.job_id.in_([old, fresh]))
            .values(status="done", size=10, finished=long_ago)
        )
        s.execute(update(m.Job).where(m.Job.id == old).values(status="done", finished=long_ago))
        s.execute(update(m.Job).where(m.Job.id == fresh).values(status="running"))
    job_before = jobs.get_job(database, admin, old)
    totals_before = _totals(database)
    assert history.prune(database) == 0  # unset: everything kept
    settings.set_setting(database, admin, scope="workspace", key=history.PRUNE_SETTING, value="30")
    assert history.prune(database) == 4  # the live job's tasks stay, however old
    assert tasks.list_tasks(database, admin, old).items == []
    assert len(tasks.list_tasks(database, admin, fresh).items) == 2
    job_after = jobs.get_job(database, admin, old)
    assert (job_after.tasks, job_after.size, job_after.progress, job_after.status) == (
        job_before.tasks,
        job_before.size,
        job_before.progress,
        job_before.status,
    )
    assert _totals(database) == totals_before


def _three_jobs(database: Database, admin: Actor) -> dict[str, Any]:
    """Site london, volume projects and three jobs of 1-3 tasks; their totals as counted."""
    sites.create_site(database, admin, code="london")
    volumes.create_volume(
        database, admin, code="projects", paths={"hq": "/mnt/projects", "london": "/data/projects"}
    )
    for n in range(1, 4):
        _submit(database, admin, n)
    return _counted(database)


async def _until(done: Callable[[], bool], limit_s: float = 30) -> None:
    """Wait while the housekeeping loop runs until ``done()`` (the callers assert it after)."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while not done() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)


async def test_the_server_loop_folds_the_totals(database: Database, admin: Actor) -> None:
    expected = _three_jobs(database, admin)

    def rows() -> int:
        with database.reader() as s:
            return int(s.scalar(select(func.count()).select_from(m.Tally)) or 0)

    unfolded = rows()
    async with Housekeeper(database, compact_every_s=0.05):
        await _until(lambda: rows() < unfolded)
    assert rows() < unfolded
    assert _totals(database) == expected


async def test_the_server_loop_vacuums_what_it_folds(database: Database, admin: Actor) -> None:
    expected = _three_jobs(database, admin)
    keeper = Housekeeper(database, compact_every_s=0.05, vacuum_after_rows=1)
    async with keeper:
        await _until(lambda: keeper.vacuums > 0)
    assert keeper.vacuums >= 1
    tally.vacuum(database)  # beside nothing, and again: a no-op for the totals
    assert _totals(database) == expected


async def test_the_server_loop_outlives_a_defect_in_a_pass(
    database: Database, admin: Actor, monkeypatch: Any
) -> None:
    """A pass that raises something other than a reelsync error (a defect) is logged and the
    loop goes on: the next pass folds the totals."""
    expected = _three_jobs(database, admin)
    real = tally.compact
    calls = 0

    def broken_once(db: Database) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a defect in the first pass")
        return real(db)

    monkeypatch.setattr(tally, "compact", broken_once)
    async with Housekeeper(database, compact_every_s=0.05):
        await _until(lambda: calls >= 2)
    assert calls >= 2
    assert _totals(database) == expected
