"""A real `reelsync server run` process sends the job mail and the webhooks: SMTP settings from
REELSYNC_SMTP_*, a real aiosmtpd server, a real HTTP receiver, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from http_receiver import Receiver
from smtp_sink import SmtpSink
from support.fixtures import DATABASES
from support.outbox import delivered
from support.servers import RunningServer

pytestmark = pytest.mark.slow


def _until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


@pytest.mark.parametrize("database", DATABASES)
def test_server_mails_and_posts_when_a_job_ends(
    server_factory: Callable[..., RunningServer], database: str
) -> None:
    sink = SmtpSink("none")
    sink.start()
    receiver = Receiver(secret="s" * 32).start()
    try:
        server = server_factory(
            database=database,
            env={
                "REELSYNC_SMTP_HOST": "127.0.0.1",
                "REELSYNC_SMTP_PORT": str(sink.port),
                "REELSYNC_SMTP_FROM": "reelsync@acme.test",
                "REELSYNC_PUBLIC_URL": "https://hq.acme.test:8443",
                "REELSYNC_WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver is on 127.0.0.1
            },
        )
        with server.session() as admin:
            admin.create("site", {"code": "london"})
            admin.create(
                "volume",
                {"code": "projects", "default": True,
                 "paths": {"hq": "/mnt/projects", "london": "/data/p"}},
            )  # fmt: skip
            admin.create("queue", {"code": "proj001", "priority": 700})
            admin.request(
                "POST", "/webhooks",
                json_body={"url": receiver.url, "events": ["submitted", "done"],
                           "secret": "s" * 32},
            )  # fmt: skip
            job = admin.submit_job(
                {
                    "name": "sh0010 plates",
                    "queue": "proj001",
                    "tasks": [
                        {"source": "share=projects/proj001/a.exr", "destination": "site=london"}
                    ],
                }  # fmt: skip
            )
            _until(lambda: len(receiver.deliveries) == 1)
            admin.update("task", job["id"], [{"uri": "0", "status": "done"}])
            _until(lambda: len(sink.received) == 1 and len(receiver.deliveries) == 2)
        assert delivered(server.database_url, "mail") == {"sent": 1}  # nothing more to come
        assert delivered(server.database_url, "webhook") == {"sent": 2}
        assert len(sink.received) == 1  # exactly one mail
        msg = sink.received[0].message
        assert sink.received[0].rcpt_tos == [server.admin]
        assert msg["Subject"] == "[reelsync] done: sh0010 plates (hq -> london, 1 file)"
        assert f"https://hq.acme.test:8443/ui/jobs/{job['id']}" in msg.as_string()
        assert [d.json["event"] for d in receiver.deliveries] == ["job.submitted", "job.done"]
        assert all(d.verified for d in receiver.deliveries)
    finally:
        receiver.stop()
        sink.stop()


def test_an_opted_out_creator_gets_no_mail_but_the_extra_recipients_do(
    server_factory: Callable[..., RunningServer],
) -> None:
    """The job's creator opts out with ``reelsync user opt-out`` (as themselves, against the real
    server): the next job's summary goes to the queue's and the volume's extra recipients only;
    the job before still went to the creator too."""
    sink = SmtpSink("none")
    sink.start()
    try:
        server = server_factory(
            env={"REELSYNC_SMTP_HOST": "127.0.0.1", "REELSYNC_SMTP_PORT": str(sink.port)}
        )
        creator = "coord@acme.test"
        with server.session() as admin:
            admin.create("site", {"code": "london"})
            admin.create(
                "volume",
                {"code": "projects", "default": True,
                 "paths": {"hq": "/mnt/projects", "london": "/data/p"}},
            )  # fmt: skip
            admin.create("queue", {"code": "proj001", "priority": 700})
            for scope, target, address in (
                ("queue", "proj001", "producer@acme.test"),
                ("volume", "projects", "io@acme.test"),
            ):
                admin.request(
                    "PUT", "/settings",
                    json_body={"scope": scope, "target": target, "value": address,
                               "key": "email_job_done_recipients"},
                )  # fmt: skip
            admin.create("user", {"email": creator, "role": "employee"})
            admin.grant(creator, "projects", read=True, write=True)
            key = admin.create_apikey(creator)["api_key"]

            def run_job(name: str) -> None:
                with server.session(api_user=creator, api_key=key) as user:
                    job = user.submit_job(
                        {"name": name, "queue": "proj001",
                         "tasks": [{"source": f"share=projects/proj001/{name}.exr",
                                    "destination": "site=london"}]}
                    )  # fmt: skip
                admin.update("task", job["id"], [{"uri": "0", "status": "done"}])

            run_job("before")
            _until(lambda: len(sink.received) == 1)
            as_creator = {"REELSYNC_API_USER": creator, "REELSYNC_API_KEY": key}
            done = server.cli("user", "opt-out", **as_creator)
            assert done.returncode == 0, done.stderr
            assert f"{creator}: job e-mail off (opted out)" in done.stdout + done.stderr
            shown = server.cli("user", "preferences", creator, "--json")  # the admin looks
            assert json.loads(shown.stdout)["email_opt_out"] is True
            run_job("after")
            _until(lambda: len(sink.received) == 2)
        assert delivered(server.database_url, "mail") == {"sent": 2}  # nothing more to come
        assert len(sink.received) == 2
        first, second = sink.received
        assert "before" in first.message["Subject"]
        assert sorted(first.rcpt_tos) == sorted([creator, "producer@acme.test", "io@acme.test"])
        assert "after" in second.message["Subject"]
        assert sorted(second.rcpt_tos) == ["io@acme.test", "producer@acme.test"]
        assert creator not in second.message.as_string().split("\n\n", 1)[0]  # not in the headers
    finally:
        sink.stop()
