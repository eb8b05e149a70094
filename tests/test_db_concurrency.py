"""Several threads writing and reading at once: no "database is locked", no lost update."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from reelsync.db import Database
from reelsync.domain.records import Actor
from reelsync.services import jobs, sites, tasks, volumes


def test_concurrent_submits_appends_and_reads(database: Database, admin: Actor) -> None:
    sites.create_site(database, admin, code="london")
    volumes.create_volume(
        database, admin, code="projects", paths={"hq": "/mnt/p", "london": "/data/p"}
    )
    shared = jobs.submit_job(database, admin, {"source": "shared/0", "destination": "site=london"})

    def work(worker: int) -> int:
        for i in range(8):
            jobs.submit_job(
                database,
                admin,
                {"tasks": [f"w{worker}/{i}/a", f"w{worker}/{i}/b"], "destination": "site=london"},
            )
            tasks.add_tasks(database, admin, shared.id, [f"shared/{worker}/{i}"])
            jobs.list_jobs(database, admin, limit=5)
        return worker

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert sorted(pool.map(work, range(4))) == [0, 1, 2, 3]
    assert jobs.list_jobs(database, admin).total == 1 + 4 * 8
    appended = tasks.list_tasks(database, admin, shared.id)
    assert appended.total == 1 + 4 * 8
    assert sorted(int(t.uri) for t in appended.items) == list(range(33))  # no uri handed twice
