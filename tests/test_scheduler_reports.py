"""apply_reports and sweep: progress, leases, retries with backoff, final failure, rollup, job
controls (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from reelsync.config import DEFAULT_FENCE_S, load_server_config
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.records import Actor
from reelsync.errors import ConfigError, ValidationError
from reelsync.scheduler import (
    TaskReport,
    agent_left,
    agent_restarted,
    apply_reports,
    claim_transfers,
    release_transfers,
    release_unheld,
    sweep,
)
from reelsync.server.agentapi import AgentHub
from reelsync.server.app import create_app
from reelsync.services import jobs
from reelsync.services.bootstrap import InitResult
from scheduler_world import World

FENCE = 3 * DEFAULT_FENCE_S  # the server's fence, set (ServerConfig.fence_s): not the default


@pytest.fixture
def world(database: Database, admin: Actor) -> World:
    return World(database, admin)


def test_progress_renews_the_lease_and_done_finishes_the_job(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(2)
    world.set_sizes(job.id, 1000)
    t0 = utcnow()
    [grant] = claim_transfers(world.db, sender, now=t0)
    first, second = (f.task_id for f in grant.files)
    later = t0 + timedelta(seconds=100)
    outcome = apply_reports(world.db, sender, [TaskReport(first, "executing", 400)], now=later)
    assert outcome.applied == (first,)
    assert outcome.revoked == ()
    rows = {t.id: t for t in world.tasks(job.id)}
    assert (rows[first].status, rows[first].bytes_done) == ("executing", 400)
    for row in rows.values():  # the whole transfer's lease is renewed
        assert row.lease_expires_at == later + timedelta(seconds=120)
    row = world.job_row(job.id)
    assert (row.bytes_done, row.progress, row.status) == (400, 20.0, "running")
    apply_reports(
        world.db, sender, [TaskReport(first, "executing", 1000)], now=later + timedelta(seconds=2)
    )
    row = world.job_row(job.id)
    assert row.speed == 300.0  # 600 bytes in 2 s
    assert row.etr == 4  # 1000 bytes left at 300 B/s, rounded up
    apply_reports(
        world.db,
        sender,
        [
            TaskReport(first, "done", 1000, size=1000, digest="xxh3-128t:aa"),
            TaskReport(second, "done", 1000, size=1000, digest="xxh3-128t:bb"),
        ],
    )
    done = world.job_row(job.id)
    assert (done.status, done.progress, done.bytes_done, done.size) == ("done", 100.0, 2000, 2000)
    assert done.finished is not None
    assert done.speed == 0.0
    assert done.etr is None
    rows = {t.id: t for t in world.tasks(job.id)}
    assert rows[first].digest == "xxh3-128t:aa"
    assert rows[first].server_id is None
    assert rows[first].finished is not None


def test_failures_retry_with_backoff_then_fail_with_the_last_error(world: World) -> None:
    world.setting("job_max_retries", 2)
    world.setting("job_retry_delay_s", 10)
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(1)
    now = utcnow()
    delays = []
    for attempt in range(1, 4):
        [grant] = claim_transfers(world.db, sender, now=now)
        task_id = grant.files[0].task_id
        apply_reports(
            world.db,
            sender,
            [TaskReport(task_id, "failed", 0, error=f"disk full ({attempt})")],
            now=now,
        )
        [row] = world.tasks(job.id)
        assert row.tries == attempt
        assert row.last_error == f"disk full ({attempt})"
        if attempt < 3:
            assert row.status == "queued"
            delays.append((row.not_before - now).total_seconds())
            assert claim_transfers(world.db, sender, now=now) == []  # backing off
            now = row.not_before
            assert world.job_row(job.id).status == "waiting"  # only a queued task left
    assert delays == [10.0, 20.0]
    [row] = world.tasks(job.id)
    assert row.status == "failed"
    assert row.finished is not None
    final = jobs.get_job(world.db, world.admin, job.id)
    assert final.status == "failed"
    # retry: the failed task is queued again with its tries reset, and moves again
    again = jobs.update_job(world.db, world.admin, job.id, status="waiting")
    assert again.status == "waiting"
    [row] = world.tasks(job.id)
    assert (row.status, row.tries, row.last_error) == ("queued", 0, None)
    assert len(claim_transfers(world.db, sender)) == 1


def test_a_job_setting_overrides_max_retries_and_unretryable_fails_at_once(world: World) -> None:
    world.setting("job_max_retries", 0)
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(2, settings={"job_max_retries": "5"})
    [grant] = claim_transfers(world.db, sender)
    a, b = (f.task_id for f in grant.files)
    apply_reports(
        world.db,
        sender,
        [
            TaskReport(a, "failed", 0, error="connection reset"),
            TaskReport(b, "failed", 0, error="forbidden: outside the volume", retryable=False),
        ],
    )
    rows = {t.id: t for t in world.tasks(job.id)}
    assert (rows[a].status, rows[b].status) == ("queued", "failed")
    assert rows[b].last_error == "forbidden: outside the volume"


def test_reports_without_the_lease_are_refused(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    other = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(1)
    [grant] = claim_transfers(world.db, sender)
    task_id = grant.files[0].task_id
    outcome = apply_reports(
        world.db,
        other,
        [TaskReport(task_id, "done", 5), TaskReport("no-such-task", "executing", 1)],
    )
    assert outcome.applied == ()
    assert outcome.revoked == (task_id, "no-such-task")
    assert world.statuses(job.id) == {"booting": 1}
    with pytest.raises(ValidationError):
        apply_reports(world.db, sender, [TaskReport(task_id, "exploded", 5)])  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        apply_reports(world.db, sender, [TaskReport(task_id, "executing", -1)])
    assert world.statuses(job.id) == {"booting": 1}


def test_pause_and_abort_drop_leases_and_the_agent_is_told(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(2)
    [grant] = claim_transfers(world.db, sender)
    ids = [f.task_id for f in grant.files]
    jobs.update_job(world.db, world.admin, job.id, status="paused")
    assert world.statuses(job.id) == {"queued": 2}
    outcome = apply_reports(world.db, sender, [TaskReport(ids[0], "executing", 10)])
    assert outcome.revoked == (ids[0],)
    assert claim_transfers(world.db, sender) == []
    jobs.update_job(world.db, world.admin, job.id, status="waiting")
    # resumed, but the transfer that was moving the files may still run: they wait until the
    # agent says it stopped (or the fence passes)
    assert claim_transfers(world.db, sender) == []
    apply_reports(world.db, sender, [], stopped=[grant.transfer_id])
    [grant] = claim_transfers(world.db, sender)
    jobs.update_job(world.db, world.admin, job.id, status="aborted")
    assert world.statuses(job.id) == {"queued": 2}
    assert world.job_row(job.id).status == "aborted"
    outcome = apply_reports(world.db, sender, [TaskReport(grant.files[0].task_id, "done", 1)])
    assert outcome.revoked == (grant.files[0].task_id,)
    assert claim_transfers(world.db, sender) == []


def test_files_taken_back_by_a_pause_wait_for_their_transfer_to_stop(world: World) -> None:
    """Pause then resume at once: the files are leased again when their dialer reports the
    transfer stopped, or after the server's fence without a word (an older agent); a dialer
    offline at the pause holds nothing back."""
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(2)
    t0 = utcnow()
    [first] = claim_transfers(world.db, sender, now=t0)
    jobs.update_job(world.db, world.admin, job.id, status="paused", fence_s=FENCE)
    jobs.update_job(world.db, world.admin, job.id, status="waiting")
    assert claim_transfers(world.db, sender, now=t0 + timedelta(seconds=1)) == []
    # a stop report for another transfer changes nothing
    apply_reports(world.db, sender, [], stopped=["not-this-one"])
    assert claim_transfers(world.db, sender, now=t0 + timedelta(seconds=1)) == []
    # the fence given, not the default
    assert claim_transfers(world.db, sender, now=t0 + timedelta(seconds=DEFAULT_FENCE_S + 1)) == []
    [second] = claim_transfers(world.db, sender, now=t0 + timedelta(seconds=FENCE + 1))
    assert sorted(f.task_id for f in second.files) == sorted(f.task_id for f in first.files)
    # its stop report, late, does not touch the new lease
    apply_reports(world.db, sender, [], stopped=[first.transfer_id])
    assert world.statuses(job.id) == {"booting": 2}
    # the dialer gone when the job is paused: nothing may still move the files
    with world.db.session() as session:
        session.execute(update(m.Server).where(m.Server.id == sender).values(status="offline"))
    jobs.update_job(world.db, world.admin, job.id, status="paused")
    jobs.update_job(world.db, world.admin, job.id, status="waiting")
    with world.db.reader() as session:
        rows = session.execute(
            select(m.Task.not_before, m.Task.transfer_id).where(m.Task.job_id == job.id)
        ).all()
    assert [tuple(r) for r in rows] == [(None, None), (None, None)]


async def test_the_servers_fence_is_a_setting_a_pause_through_the_api_uses(
    world: World, workspace: InitResult, tmp_path: Path
) -> None:
    (tmp_path / "server.toml").write_text(f"[server]\nfence_s = {FENCE}\n")
    config = load_server_config(tmp_path, {"REELSYNC_DATABASE_URL": str(world.db.url)})
    assert config.fence_s == FENCE
    assert AgentHub.from_config(config, world.db).fence_s == FENCE  # its reports and sweep
    assert load_server_config(tmp_path, {"REELSYNC_FENCE_S": "0.5"}).fence_s == 0.5
    with pytest.raises(ConfigError, match="fence_s"):
        load_server_config(tmp_path, {"REELSYNC_FENCE_S": "0"})
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(1)
    t0 = utcnow()
    claim_transfers(world.db, sender, now=t0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(config, world.db)),
        base_url="http://test/api/v1",
        headers={"Authorization": f"Bearer {workspace.api_key}"},
    ) as api:
        paused = await api.patch(f"/jobs/{job.id}", json={"status": "paused"})
        assert paused.status_code == 200, paused.text
    t1 = utcnow()
    [row] = world.tasks(job.id)
    assert row.not_before is not None
    assert t0 + timedelta(seconds=FENCE) <= row.not_before <= t1 + timedelta(seconds=FENCE)


def test_a_report_from_a_held_job_fences_its_files_for_the_fence_given(world: World) -> None:
    """A file still leased when its job was paused (a pause racing a lease) is taken back by its
    agent's next report and fenced for the server's ``fence_s``."""
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(1)
    t0 = utcnow()
    [grant] = claim_transfers(world.db, sender, now=t0)
    with world.db.session() as session:
        session.execute(update(m.Job).where(m.Job.id == job.id).values(status="paused"))
    task_id = grant.files[0].task_id
    report = TaskReport(task_id, "executing", 1, transfer_id=grant.transfer_id)
    outcome = apply_reports(world.db, sender, [report], now=t0, fence_s=FENCE)
    assert outcome.revoked == (task_id,)
    [row] = world.tasks(job.id)
    assert (row.status, row.transfer_id) == ("queued", grant.transfer_id)
    assert row.not_before is not None
    assert abs((row.not_before - t0).total_seconds() - FENCE) < 1e-3


@pytest.mark.parametrize(
    ("error", "error_code", "busy"),
    [
        # a dialer older than error codes in reports pushing to a newer receiver: the receiver's
        # path_busy reaches it as an unknown code, reported as "error: <message>", not retryable
        ("error: proj:a is being written by another transfer", None, True),
        ("error: proj:a was changed by another transfer since it was planned", None, True),
        ("path_busy: proj:a is being written by another transfer", None, True),
        # the code, when sent, decides
        ("permission_denied: proj:a is being written by another transfer", "permission_denied",
         False),
        # a folder's message names at most three of its failures: not recognised (a try)
        ("error: 2 of 5 files failed: a: proj:f/a is being written by another transfer; "
         "b: proj:f/b: no space left", None, False),
        ("error: no space left on device", None, False),
    ],
)  # fmt: skip
def test_a_busy_destination_reported_without_its_code_is_known_by_its_message(
    world: World, error: str, error_code: str | None, busy: bool
) -> None:
    world.setting("job_max_retries", 0)
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(1)
    now = utcnow()
    [grant] = claim_transfers(world.db, sender, now=now)
    report = TaskReport(
        grant.files[0].task_id, "failed", 0, error=error, retryable=False, error_code=error_code
    )
    apply_reports(world.db, sender, [report], now=now)
    [row] = world.tasks(job.id)
    assert (row.status, row.tries) == (("queued", 0) if busy else ("failed", 1))


def test_expired_lease_goes_to_another_agent_without_counting_a_try(world: World) -> None:
    hq1 = world.agent("hq", dialable=False)
    hq2 = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(1)
    t0 = utcnow()
    [grant] = claim_transfers(world.db, hq1, now=t0)
    assert claim_transfers(world.db, hq2, now=t0) == []
    assert sweep(world.db, now=t0 + timedelta(seconds=60), offline_after_s=3600).released == 0
    result = sweep(world.db, now=t0 + timedelta(seconds=121), offline_after_s=3600, fence_s=FENCE)
    assert result.released == 1
    [row] = world.tasks(job.id)
    assert (row.status, row.tries, row.server_id) == ("queued", 0, None)
    assert "lease expired" in (row.last_error or "")
    assert row.dispatches == 1
    # hq1 is still online (it beats): the file waits until its next report would be refused
    assert claim_transfers(world.db, hq2, now=t0 + timedelta(seconds=122)) == []
    assert claim_transfers(world.db, hq2, now=t0 + timedelta(seconds=122 + DEFAULT_FENCE_S)) == []
    [again] = claim_transfers(world.db, hq2, now=t0 + timedelta(seconds=121 + FENCE))
    assert again.files[0].task_id == grant.files[0].task_id
    [row] = world.tasks(job.id)
    assert row.dispatches == 2  # leased twice, one after the other: the audit count shows it
    # the first agent wakes up: its report is refused
    late = apply_reports(world.db, hq1, [TaskReport(row.id, "done", 1)])
    assert late.revoked == (row.id,)


def test_silent_agents_go_offline_and_their_transfers_back_to_the_queue(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    receiver = world.agent("london")
    job = world.job(1)
    t0 = utcnow()
    claim_transfers(world.db, sender, now=t0)
    result = sweep(world.db, now=t0 + timedelta(seconds=61), offline_after_s=60)
    assert set(result.offline) == {sender, receiver}
    assert result.released == 1
    [row] = world.tasks(job.id)
    assert row.status == "queued"
    assert "went offline" in (row.last_error or "")
    assert world.job_row(job.id).status == "waiting"
    assert claim_transfers(world.db, sender) == []  # offline: no work until its heartbeat


async def test_job_controls_over_the_api(database: Database, workspace, tmp_path) -> None:
    import httpx

    from reelsync.config import ServerConfig
    from reelsync.server.app import create_app

    admin = Actor(workspace.admin.id, workspace.admin.email, workspace.admin.role)
    world = World(database, admin)
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    world.setting("job_max_retries", 0)
    job = world.job(2)
    [grant] = claim_transfers(world.db, sender)
    a, b = (f.task_id for f in grant.files)
    apply_reports(
        world.db,
        sender,
        [TaskReport(a, "done", 3, size=3), TaskReport(b, "failed", 0, error="checksum mismatch")],
    )
    app = create_app(ServerConfig(data_dir=tmp_path, database_url=database.url), database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test/api/v1",
        headers={"Authorization": f"Bearer {workspace.api_key}"},
    ) as api:
        shown = (await api.get(f"/jobs/{job.id}")).json()
        assert (shown["status"], shown["etr"]) == ("failed", None)
        failed = (await api.get(f"/jobs/{job.id}/tasks", params={"status": "failed"})).json()
        assert [(t["tries"], t["last_error"]) for t in failed["items"]] == [
            (1, "checksum mismatch")
        ]
        retried = await api.post(f"/jobs/{job.id}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "running"  # one done, one queued again
        assert world.statuses(job.id) == {"done": 1, "queued": 1}
        [again] = claim_transfers(world.db, sender)
        assert [f.task_id for f in again.files] == [b]
        paused = await api.patch(f"/jobs/{job.id}", json={"status": "paused"})
        assert paused.json()["status"] == "paused"
        assert world.statuses(job.id) == {"done": 1, "queued": 1}
        resumed = await api.patch(f"/jobs/{job.id}", json={"status": "waiting"})
        assert resumed.json()["status"] == "running"
        aborted = await api.patch(f"/jobs/{job.id}", json={"status": "aborted"})
        assert aborted.json()["status"] == "aborted"
        missing = await api.post("/jobs/000000000000000000000000/retry")
        assert missing.status_code == 404


def test_a_stale_transfers_reports_are_never_credited(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(1)
    [old] = claim_transfers(world.db, sender)
    task_id = old.files[0].task_id
    assert release_transfers(world.db, sender, [old.transfer_id]) == 1  # the agent never got it
    [new] = claim_transfers(world.db, sender)  # the same agent, a new transfer of the same file
    assert new.transfer_id != old.transfer_id
    stale = apply_reports(
        world.db, sender, [TaskReport(task_id, "done", 5, size=5, transfer_id=old.transfer_id)]
    )
    assert (stale.applied, stale.revoked) == ((), (task_id,))
    assert world.statuses(job.id) == {"booting": 1}
    fresh = apply_reports(
        world.db, sender, [TaskReport(task_id, "done", 5, size=5, transfer_id=new.transfer_id)]
    )
    assert fresh.applied == (task_id,)
    assert world.statuses(job.id) == {"done": 1}


def test_a_lease_whose_work_answer_died_with_its_process_goes_back_at_the_next_poll(
    world: World,
) -> None:
    # two control-plane processes on one database: the agent's poll on the first is answered
    # (it runs `held`); its next poll on the second is leased `lost`, then that process is
    # killed before it answers; the agent polls the first again, saying what it holds
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(3)
    claim_transfers(world.db, sender, max_transfers=1, max_files=1)
    assert release_unheld(world.db, sender, set()) == 1  # it holds nothing: its only answer lost
    assert world.statuses(job.id) == {"queued": 3}
    [held] = claim_transfers(world.db, sender, max_transfers=1, max_files=1)
    [lost] = claim_transfers(world.db, sender, max_transfers=1, max_files=1)
    assert world.statuses(job.id) == {"booting": 2, "queued": 1}
    assert release_unheld(world.db, sender, {held.transfer_id}) == 1
    rows = {t.id: t for t in world.tasks(job.id)}
    assert rows[lost.files[0].task_id].status == "queued"  # at once, not at the lease's end
    assert rows[lost.files[0].task_id].tries == 0
    assert rows[held.files[0].task_id].status == "booting"  # what it holds is untouched
    assert release_unheld(world.db, sender, {held.transfer_id}) == 0
    done = apply_reports(
        world.db,
        sender,
        [TaskReport(held.files[0].task_id, "done", 5, size=5, transfer_id=held.transfer_id)],
    )
    assert done.applied == (held.files[0].task_id,)
    [rest] = claim_transfers(world.db, sender)
    assert len(rest.files) == 2
    assert release_unheld(world.db, sender, {rest.transfer_id}) == 0
    apply_reports(
        world.db,
        sender,
        [
            TaskReport(f.task_id, "done", 5, size=5, transfer_id=rest.transfer_id)
            for f in rest.files
        ],
    )
    assert world.job_row(job.id).status == "done"


def test_an_agent_leaving_or_restarting_gives_its_leases_back_at_once(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(2)
    claim_transfers(world.db, sender)
    assert world.statuses(job.id) == {"booting": 2}
    assert agent_restarted(world.db, sender) == 2
    assert world.statuses(job.id) == {"queued": 2}
    claim_transfers(world.db, sender)
    assert agent_left(world.db, sender, how="stopped") == 2
    rows = world.tasks(job.id)
    assert {(t.status, t.tries, t.server_id) for t in rows} == {("queued", 0, None)}
    assert all("stopped during the transfer" in (t.last_error or "") for t in rows)
    assert claim_transfers(world.db, sender) == []  # offline: no work until its next heartbeat


def test_progress_does_not_flip_while_sizes_are_still_unknown(world: World) -> None:
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(4)
    [grant] = claim_transfers(world.db, sender)
    first = grant.files[0].task_id
    apply_reports(world.db, sender, [TaskReport(first, "executing", 500, size=1000)])
    after_size = world.job_row(job.id).progress  # the sizes known changed: recomputed
    apply_reports(world.db, sender, [TaskReport(first, "executing", 900, size=1000)])
    row = world.job_row(job.id)
    assert row.bytes_done == 900
    # 1 of 4 sizes known: progress is the share of tasks done (0), not 900 of the 1000 known
    assert row.progress == after_size == 0.0


def test_a_busy_destination_is_retried_without_counting_a_try(world: World) -> None:
    """path_busy: another transfer still writes the file's part file at the receiver. It is
    queued again after the backoff however often it happens, never failed; other failures
    still count."""
    world.setting("job_max_retries", 1)
    world.setting("job_retry_delay_s", 10)
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    job = world.job(1)
    now = utcnow()
    busy = "path_busy: proj:a is being written by another transfer"
    for _ in range(4):  # more than the try budget
        [grant] = claim_transfers(world.db, sender, now=now)
        report = TaskReport(grant.files[0].task_id, "failed", 0, error=busy, error_code="path_busy")
        apply_reports(world.db, sender, [report], now=now)
        [row] = world.tasks(job.id)
        assert (row.status, row.tries, row.last_error) == ("queued", 0, busy)
        assert (row.not_before - now).total_seconds() == 10.0
        assert claim_transfers(world.db, sender, now=now) == []  # backing off
        now = row.not_before
        assert world.job_row(job.id).status == "waiting"
    [grant] = claim_transfers(world.db, sender, now=now)
    task_id = grant.files[0].task_id
    apply_reports(world.db, sender, [TaskReport(task_id, "failed", 0, error="disk full")], now=now)
    [row] = world.tasks(job.id)
    assert (row.status, row.tries) == ("queued", 1)
    now = row.not_before
    [grant] = claim_transfers(world.db, sender, now=now)
    apply_reports(world.db, sender, [TaskReport(task_id, "failed", 0, error="disk full")], now=now)
    [row] = world.tasks(job.id)
    assert (row.status, row.tries) == ("failed", 2)
