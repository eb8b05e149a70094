"""Two OS processes dispatching from one database (PostgreSQL: SKIP LOCKED + pair locks; SQLite:
BEGIN IMMEDIATE) never grant one task twice, and between them move every file."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor
from scheduler_world import World

CLAIMER = Path(__file__).with_name("scheduler_claimer.py")


def test_two_processes_never_grant_a_task_twice(
    database: Database, admin: Actor, tmp_path: Path
) -> None:
    world = World(database, admin)
    world.setting("transfer_batch_files", 3)
    world.setting("transfer_concurrency", 6)
    world.setting("agent_concurrency", 3)
    senders = [world.agent("hq", dialable=False) for _ in range(4)]
    for port in (7001, 7002, 7003):
        world.agent("london", port=port)
        world.agent("paris", port=port + 10)
    london = world.job(240, prefix="lon")
    paris = world.job(120, to="paris", prefix="par")
    outs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(CLAIMER), database.url, str(out), *order],
            stderr=subprocess.PIPE,
            text=True,
        )
        for out, order in zip(outs, (senders, senders[::-1]), strict=True)
    ]
    deadline = time.monotonic() + 120
    while not all(Path(f"{out}.ready").exists() for out in outs):
        assert time.monotonic() < deadline, "the claimers did not start"
        assert all(proc.poll() is None for proc in procs), "a claimer died"
        time.sleep(0.02)
    for out in outs:  # go: both at once
        Path(f"{out}.go").touch()
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    granted = [line.split() for out in outs for line in out.read_text().splitlines()]
    per_task = Counter(task for task, _ in granted)
    assert len(per_task) == 360
    assert set(per_task.values()) == {1}  # never twice
    with database.session() as s:  # the scheduler's own audit count agrees
        assert set(s.scalars(select(m.Task.dispatches))) == {1}
    by_process = [len(out.read_text().splitlines()) for out in outs]
    assert all(n > 0 for n in by_process), by_process  # both really dispatched
    assert world.job_row(london.id).status == "done"
    assert world.job_row(paris.id).status == "done"


def test_a_pause_committed_during_a_pass_wins(database: Database, admin: Actor) -> None:
    import threading
    import time

    from reelsync.db import models as m
    from reelsync.domain.status import JobStatus
    from reelsync.scheduler import claim_transfers
    from reelsync.services.jobs import set_job_status

    world = World(database, admin)
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(3)
    result: list[object] = []
    with database.session() as s:  # a pause in progress: the job row is locked
        row = s.get(m.Job, job.id, with_for_update=True)
        assert row is not None
        set_job_status(s, row, JobStatus.PAUSED)
        claimer = threading.Thread(target=lambda: result.append(claim_transfers(database, sender)))
        claimer.start()
        time.sleep(0.5)  # the pass is waiting for the job (PG) or the write lock (SQLite)
    claimer.join(timeout=30)
    assert result == [[]]
    assert world.job_row(job.id).status == "paused"
    assert world.statuses(job.id) == {"queued": 3}
