"""The transactional outbox on SQLite and PostgreSQL: one mail per finished job, webhooks, hooks,
retries with backoff through a real SMTP outage, leases, and two dispatchers on one database."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from http_receiver import Receiver
from reelsync.config import SmtpConfig
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.records import Actor
from reelsync.domain.status import JobStatus, TaskStatus
from reelsync.errors import ValidationError
from reelsync.notify.capture import install_job_events
from reelsync.notify.dispatcher import Dispatcher, DispatcherPolicy
from reelsync.notify.mailer import MemoryMailer, OutgoingMail, SmtpMailer
from reelsync.notify.outbox import enqueue_job_finished
from reelsync.notify.recipients import set_opt_out
from reelsync.notify.webhook import HttpWebhookSender
from reelsync.services import acls, jobs, queues, settings, sites, users, volumes, webhooks
from reelsync.services.rollup import refresh_job
from smtp_sink import SmtpSink

POLICY = DispatcherPolicy(base_backoff_s=60, max_backoff_s=600, max_attempts=5, lease_s=120)


@pytest.fixture
def studio(database: Database, admin: Actor) -> Iterator[dict[str, Actor]]:
    sites.create_site(database, admin, code="london")
    volumes.create_volume(
        database, admin, code="projects", paths={"hq": "/mnt/projects", "london": "/data/projects"}
    )
    queues.create_queue(database, admin, code="proj001", priority=700)
    emp = users.create_user(database, admin, email="coord@acmepost.com", role="employee")
    acls.grant(database, admin, user=emp.id, volume="projects", read=True, write=True)
    capture = install_job_events(database)
    yield {"admin": admin, "employee": Actor(emp.id, emp.email, emp.role)}
    capture.remove()


def submit(db: Database, actor: Actor, n: int = 3, name: str = "sh0010 scans") -> str:
    job = jobs.submit_job(
        db,
        actor,
        {
            "name": name,
            "queue": "proj001",
            "tasks": [
                {
                    "source": f"share=projects/proj001/sh0010/f{i:04d}.exr",
                    "destination": "site=london",
                }
                for i in range(n)
            ],
        },
    )
    return job.id


def finish(db: Database, job_id: str, failed: dict[str, str] | None = None) -> str:
    """What the scheduler does on agent reports: tasks done (or failed), then the rollup."""
    failed = failed or {}
    with db.session() as s:
        for task in s.scalars(select(m.Task).where(m.Task.job_id == job_id)):
            if task.uri in failed:
                task.status, task.last_error = TaskStatus.FAILED.value, failed[task.uri]
            else:
                task.status, task.size, task.bytes_done = TaskStatus.DONE.value, 1000, 1000
        job = s.get(m.Job, job_id)
        assert job is not None
        return refresh_job(s, job).value


def rows(db: Database, kind: str | None = None) -> list[m.Outbox]:
    with db.session() as s:
        q = select(m.Outbox).order_by(m.Outbox.created, m.Outbox.id)
        if kind:
            q = q.where(m.Outbox.kind == kind)
        return list(s.scalars(q))


def later(seconds: float):
    return utcnow() + timedelta(seconds=seconds)


async def test_one_mail_per_finished_job(database: Database, studio: dict[str, Actor]) -> None:
    admin, emp = studio["admin"], studio["employee"]
    settings.set_setting(
        database, admin, scope="queue", target="proj001",
        key="email_job_done_recipients", value="producer@acmepost.com, ops@acmepost.com",
    )  # fmt: skip
    settings.set_setting(
        database, admin, scope="volume", target="projects",
        key="email_job_done_recipients", value="io@acmepost.com",
    )  # fmt: skip
    settings.set_setting(
        database, admin, scope="workspace", key="email_exclude", value="ops@acmepost.com"
    )
    job_id = submit(database, emp)
    assert rows(database, "mail") == []  # submitting mails nobody by default
    assert finish(database, job_id) == "done"
    [row] = rows(database, "mail")
    assert row.payload["to"] == ["coord@acmepost.com", "producer@acmepost.com", "io@acmepost.com"]
    with database.session() as s:  # the scheduler may call it too: nothing is written twice
        assert enqueue_job_finished(s, job_id, JobStatus.DONE) == 0
        job = s.get(m.Job, job_id)
        assert job is not None
        refresh_job(s, job)
    assert len(rows(database, "mail")) == 1

    mailer = MemoryMailer(sender="reelsync@acmepost.com")
    dispatcher = Dispatcher(
        database, mailer=mailer, public_url="https://hq.acmepost.com:8443", policy=POLICY
    )
    assert await dispatcher.run_once() == {"sent": 1}
    assert await dispatcher.run_once() == {}
    [msg] = mailer.sent
    assert msg["To"] == "coord@acmepost.com, producer@acmepost.com, io@acmepost.com"
    assert msg["Subject"] == "[reelsync] done: sh0010 scans (hq -> london, 3 files)"
    body = msg.get_body(("plain",)).get_content()
    for fact in (
        "proj001",
        "hq",
        "london",
        "2.9 KiB",
        f"https://hq.acmepost.com:8443/ui/jobs/{job_id}",
    ):
        assert fact in body
    [row] = rows(database, "mail")
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert row.sent_at is not None


async def test_failed_job_lists_failures_and_revival_mails_again(
    database: Database, studio: dict[str, Actor]
) -> None:
    admin, emp = studio["admin"], studio["employee"]
    settings.set_setting(
        database, admin, scope="workspace",
        key="email_job_failed_recipients", value="oncall@acmepost.com",
    )  # fmt: skip
    job_id = submit(database, emp, n=4)
    assert (
        finish(database, job_id, {"1": "disk full on london", "3": "source vanished"}) == "failed"
    )
    mailer = MemoryMailer()
    dispatcher = Dispatcher(database, mailer=mailer, policy=POLICY)
    assert await dispatcher.run_once() == {"sent": 1}
    body = mailer.sent[0].get_body(("plain",)).get_content()
    assert "Failures (2):" in body
    assert "projects/proj001/sh0010/f0001.exr: disk full on london" in body
    assert "2 of 4 done" in body
    assert mailer.sent[0]["To"] == "coord@acmepost.com, oncall@acmepost.com"

    jobs.update_job(database, emp, job_id, status="waiting")  # retry: the job revives
    assert finish(database, job_id) == "done"
    assert await dispatcher.run_once() == {"sent": 1}
    assert [m_["Subject"].split(":")[0] for m_ in mailer.sent] == [
        "[reelsync] FAILED",
        "[reelsync] done",
    ]
    assert len({r.dedupe_key for r in rows(database, "mail")}) == 2


async def test_opt_out_disabled_and_email_enabled(
    database: Database, studio: dict[str, Actor]
) -> None:
    admin, emp = studio["admin"], studio["employee"]
    settings.set_setting(
        database, admin, scope="queue", target="proj001",
        key="email_job_done_recipients", value="producer@acmepost.com",
    )  # fmt: skip
    with database.session() as s:
        set_opt_out(s, emp.user_id, True)
    job_id = submit(database, emp)
    finish(database, job_id)
    assert [r.payload["to"] for r in rows(database, "mail")] == [["producer@acmepost.com"]]

    settings.set_setting(
        database, admin, scope="queue", target="proj001", key="email_enabled", value=False
    )
    finish(database, submit(database, emp, name="quiet"))
    assert len(rows(database, "mail")) == 1  # no mail for the second job


async def test_real_smtp_outage_delays_then_delivers_once(
    database: Database, studio: dict[str, Actor]
) -> None:
    sink = SmtpSink("none")
    sink.start()
    sink.stop()  # the mail server is down when the job ends
    try:
        finish(database, submit(database, studio["employee"]))
        mailer = SmtpMailer(SmtpConfig(host="127.0.0.1", port=sink.port, timeout_s=5))
        dispatcher = Dispatcher(database, mailer=mailer, policy=POLICY)
        assert await dispatcher.run_once() == {"retry": 1}
        [row] = rows(database, "mail")
        assert (row.status, row.attempts) == ("pending", 1)
        assert "unreachable" in (row.last_error or "")
        assert row.next_attempt_at > later(50)  # backed off ~60 s
        assert await dispatcher.run_once() == {}  # not due yet
        assert await dispatcher.run_once(now=later(61)) == {"retry": 1}  # still down
        assert rows(database, "mail")[0].next_attempt_at > later(110)  # 120 s now
        sink.start()  # the server is back
        assert await dispatcher.run_once(now=later(130)) == {"sent": 1}
        assert await dispatcher.run_once(now=later(10_000)) == {}
        assert len(sink.received) == 1
        assert sink.received[0].rcpt_tos == ["coord@acmepost.com"]
        [row] = rows(database, "mail")
        assert (row.status, row.attempts) == ("sent", 3)
    finally:
        sink.stop()


async def test_refused_mail_is_kept_as_failed_and_can_be_requeued(
    database: Database, studio: dict[str, Actor]
) -> None:
    sink = SmtpSink("none")
    sink.handler.reject_rcpt = {"coord@acmepost.com"}
    sink.start()
    try:
        finish(database, submit(database, studio["employee"]))
        mailer = SmtpMailer(SmtpConfig(host="127.0.0.1", port=sink.port))
        dispatcher = Dispatcher(database, mailer=mailer, policy=POLICY)
        assert await dispatcher.run_once() == {"failed": 1}
        [row] = rows(database, "mail")
        assert row.status == "failed"
        assert "550" in (row.last_error or "")
        sink.handler.reject_rcpt = set()
        assert dispatcher.requeue_failed() == 1
        assert await dispatcher.run_once() == {"sent": 1}
        assert len(sink.received) == 1
    finally:
        sink.stop()


async def test_retries_stop_after_max_attempts(
    database: Database, studio: dict[str, Actor]
) -> None:
    finish(database, submit(database, studio["employee"]))
    mailer = MemoryMailer(fail_with=OSError("boom"))
    policy = DispatcherPolicy(base_backoff_s=1, max_backoff_s=1, max_attempts=3)
    dispatcher = Dispatcher(database, mailer=mailer, policy=policy)
    outcomes = [await dispatcher.run_once(now=later(10 * i)) for i in range(5)]
    assert outcomes == [{"retry": 1}, {"retry": 1}, {"failed": 1}, {}, {}]
    [row] = rows(database, "mail")
    assert (row.status, row.attempts) == ("failed", 3)
    assert "boom" in (row.last_error or "")


async def test_no_smtp_keeps_mail_waiting(database: Database, studio: dict[str, Actor]) -> None:
    finish(database, submit(database, studio["employee"]))
    assert await Dispatcher(database, mailer=None, policy=POLICY).run_once() == {}
    assert rows(database, "mail")[0].status == "pending"


async def test_lease_crash_between_send_and_mark(
    database: Database, studio: dict[str, Actor]
) -> None:
    """A dispatcher that claimed and died: nobody else sends until the lease runs out; then the
    mail goes out (at least once) with the same Message-ID, and a late mark cannot clobber it."""
    finish(database, submit(database, studio["employee"]))
    crashed = Dispatcher(database, mailer=MemoryMailer(), policy=POLICY)
    [(row_id, _kind, _payload, attempts)] = crashed._claim(utcnow())
    mailer = MemoryMailer()
    other = Dispatcher(database, mailer=mailer, policy=POLICY)
    assert await other.run_once() == {}  # leased by the crashed one
    assert await other.run_once(now=later(121)) == {"sent": 1}
    crashed._mark(row_id, attempts, status="pending", error="late", retry_at=utcnow())
    [row] = rows(database, "mail")
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert mailer.sent[0]["Message-ID"].endswith("@reelsync>")


@dataclass
class GatedMailer(MemoryMailer):
    """Holds every send until ``release`` is set (a stuck SMTP server); ``sending`` is set once
    the first send has started."""

    sending: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, mail: OutgoingMail) -> None:
        self.sending.set()
        await self.release.wait()
        await super().send(mail)


async def test_a_slow_pass_keeps_its_rows_past_the_lease(
    database: Database, studio: dict[str, Actor]
) -> None:
    """The lease is short and renewed while the pass holds its rows: a second dispatcher takes
    nothing while a slow send and the row queued behind it outlast several leases.

    The send is held until the test has seen the leases renewed; the second dispatcher claims
    with ``now`` just past the lease it would have found before each renewal, so the proof
    does not depend on how fast a loaded machine runs the renewals."""
    for i in range(2):
        finish(database, submit(database, studio["employee"], n=1, name=f"slow{i}"))
    policy = DispatcherPolicy(lease_s=0.6)
    slow_mailer = GatedMailer()
    slow = Dispatcher(database, mailer=slow_mailer, policy=policy)
    other_mailer = MemoryMailer()
    other = Dispatcher(database, mailer=other_mailer, policy=policy)
    passing = asyncio.create_task(slow.run_once())
    await slow_mailer.sending.wait()  # the slow pass holds both rows, its first send is stuck
    claimed = rows(database, "mail")
    assert [r.status for r in claimed] == ["sending"] * 2
    expiry = max(r.next_attempt_at for r in claimed)
    for _renewal in range(4):  # renewed every third of the lease: four renewals outlast a lease
        while min(r.next_attempt_at for r in rows(database, "mail")) <= expiry:
            assert not passing.done()
            await asyncio.sleep(0.01)  # the next renewal
        assert await other.run_once(now=expiry + timedelta(milliseconds=1)) == {}
        expiry = max(r.next_attempt_at for r in rows(database, "mail"))
    slow_mailer.release.set()
    assert await passing == {"sent": 2}
    assert len(slow_mailer.sent) == 2
    assert other_mailer.sent == []
    assert [(r.status, r.attempts) for r in rows(database, "mail")] == [("sent", 1)] * 2


async def test_a_dead_dispatchers_rows_go_out_within_the_lease(
    database: Database, studio: dict[str, Actor]
) -> None:
    """A control plane killed mid-send renews nothing: the next pass (another replica, or the
    restarted process) sends the row once the short lease has run out."""
    finish(database, submit(database, studio["employee"]))
    policy = DispatcherPolicy(lease_s=20)
    Dispatcher(database, mailer=MemoryMailer(), policy=policy)._claim(utcnow())  # then killed
    mailer = MemoryMailer()
    restarted = Dispatcher(database, mailer=mailer, policy=policy)
    assert await restarted.run_once(now=later(5)) == {}
    assert await restarted.run_once(now=later(21)) == {"sent": 1}
    assert len(mailer.sent) == 1


async def test_two_dispatchers_never_send_a_row_twice(
    database: Database, studio: dict[str, Actor]
) -> None:
    for i in range(12):
        finish(database, submit(database, studio["employee"], n=1, name=f"job{i}"))
    assert len(rows(database, "mail")) == 12
    second_db = Database(database.url)
    try:
        a, b = MemoryMailer(), MemoryMailer()
        policy = DispatcherPolicy(batch=3)
        da = Dispatcher(database, mailer=a, policy=policy)
        db_ = Dispatcher(second_db, mailer=b, policy=policy)
        for _ in range(6):
            await asyncio.gather(da.run_once(), db_.run_once())
        subjects = [str(x["Subject"]) for x in a.sent + b.sent]
        assert len(subjects) == 12
        assert len(set(subjects)) == 12
        assert all(r.status == "sent" for r in rows(database))
    finally:
        second_db.dispose()


async def test_webhooks_for_submitted_done_failed_with_retries(
    database: Database, studio: dict[str, Actor]
) -> None:
    admin = studio["admin"]
    receiver = Receiver(secret="x" * 32).start()
    try:
        hook = webhooks.create_webhook(
            database, admin, url=receiver.url, events=["submitted", "done", "failed"],
            secret="x" * 32,
        )  # fmt: skip
        quiet = webhooks.create_webhook(database, admin, url=receiver.url, events=["job.failed"])
        assert quiet.secret is not None
        assert len(quiet.secret) == 64
        rotated = webhooks.update_webhook(database, admin, quiet.id, secret="x" * 32)
        assert rotated.secret == "x" * 32
        assert webhooks.get_webhook(database, admin, quiet.id).secret is None  # never listed
        job_id = submit(database, studio["employee"])
        finish(database, job_id)
        kinds = [(r.payload["event"], r.payload["webhook_id"]) for r in rows(database, "webhook")]
        assert kinds == [("job.submitted", hook.id), ("job.done", hook.id)]
        receiver.status = 500  # the receiver is broken at first
        dispatcher = Dispatcher(
            database,
            mailer=MemoryMailer(),
            policy=POLICY,
            webhooks=HttpWebhookSender(allow_private=True),  # the receiver is on 127.0.0.1
        )
        assert await dispatcher.run_once() == {"retry": 2, "sent": 1}  # the mail went out
        receiver.status = 200
        assert await dispatcher.run_once(now=later(61)) == {"sent": 2}
        ok = [d for d in receiver.deliveries if d.verified]
        assert len(receiver.deliveries) == 4
        assert len(ok) == 4
        submitted, done = receiver.deliveries[-2:]
        assert submitted.json["event"] == "job.submitted"
        assert submitted.json["job"]["tasks"] == 3
        assert done.json["job"]["status"] == "done"
        assert done.json["job"]["queue"] == "proj001"
        keys = {r.dedupe_key for r in rows(database, "webhook")}
        assert done.headers["X-Reelsync-Delivery"] in keys
        retried = [d.headers["X-Reelsync-Delivery"] for d in receiver.deliveries]
        assert sorted(retried[:2]) == sorted(retried[2:])  # the same deliveries, retried
        # a deleted webhook's pending deliveries fail for good instead of retrying forever
        second = submit(database, studio["employee"], name="second")  # job.submitted pending
        webhooks.delete_webhook(database, admin, hook.id)
        finish(database, second, {"0": "x"})
        assert await dispatcher.run_once() == {"failed": 1, "sent": 2}  # mail, quiet's job.failed
        [gone] = [r for r in rows(database, "webhook") if r.status == "failed"]
        assert "deleted" in (gone.last_error or "")
        assert len(receiver.deliveries) == 5
    finally:
        receiver.stop()


def _hook_script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "hook.py"
    path.write_text(body)
    return f"{sys.executable} {path} ${{PATH_JSON_INPUT}}"


async def test_post_done_hook_runs_once_with_the_job_json(
    database: Database, studio: dict[str, Actor], tmp_path: Path
) -> None:
    admin = studio["admin"]
    seen = tmp_path / "seen.json"
    command = _hook_script(
        tmp_path, f"import shutil,sys\nshutil.copy(sys.argv[1], {str(seen)!r})\n"
    )
    settings.set_setting(
        database, admin, scope="queue", target="proj001", key="hook_post_done", value=command
    )
    settings.set_setting(
        database, admin, scope="workspace", key="hook_post_failed", value="false"
    )  # exits 1: a failing hook
    job_id = submit(database, studio["employee"])
    finish(database, job_id)
    dispatcher = Dispatcher(database, mailer=MemoryMailer(), policy=POLICY)
    assert await dispatcher.run_once() == {"sent": 2}
    doc = json.loads(seen.read_text())
    assert doc["hook"] == "post-done"
    assert doc["id"] == job_id
    assert [t["uri"] for t in doc["tasks"]] == ["0", "1", "2"]
    assert doc["tasks"][0]["source"] == "volume=projects/proj001/sh0010/f0000.exr"

    finish(database, submit(database, studio["employee"], name="bad"), {"0": "x"})
    assert await dispatcher.run_once() == {"sent": 1, "failed": 1}
    [failed] = [r for r in rows(database, "hook") if r.status == "failed"]
    assert "hook post-failed failed" in (failed.last_error or "")
    assert await dispatcher.run_once(now=later(10_000)) == {}  # not retried


def test_job_settings_cannot_set_hooks(database: Database, studio: dict[str, Actor]) -> None:
    emp = studio["employee"]
    job_id = submit(database, emp)
    settings.set_setting(database, emp, scope="job", target=job_id, key="hook_post_done", value="x")
    finish(database, job_id)
    assert rows(database, "hook") == []


def test_only_done_or_failed(database: Database, studio: dict[str, Actor]) -> None:
    job_id = submit(database, studio["employee"])
    with database.session() as s, pytest.raises(ValidationError):
        enqueue_job_finished(s, job_id, "running")


def test_a_rolled_back_finish_leaves_no_row(database: Database, studio: dict[str, Actor]) -> None:
    job_id = submit(database, studio["employee"])

    def crash_before_commit() -> None:
        with database.session() as s:
            s.execute(update(m.Task).where(m.Task.job_id == job_id).values(status="done"))
            job = s.get(m.Job, job_id)
            assert job is not None
            refresh_job(s, job)
            s.flush()
            raise RuntimeError("the scheduler crashed before commit")

    with pytest.raises(RuntimeError):
        crash_before_commit()
    assert rows(database, "mail") == []


def test_a_folder_task_counts_its_files_in_the_summary(
    database: Database, studio: dict[str, Actor]
) -> None:
    job_id = submit(database, studio["employee"], n=2, name="shot folders")
    with database.session() as s:  # task 0 was a folder of 40 files (as its agent reported)
        s.execute(update(m.Task).where(m.Task.job_id == job_id, m.Task.uri == "0").values(files=40))
    assert finish(database, job_id) == "done"
    [row] = rows(database, "mail")
    assert row.payload["summary"]["file_count"] == 41
    assert row.payload["summary"]["files_done"] == 41
