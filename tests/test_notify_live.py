"""A real `reelsync server run` process sends the job mail and the webhooks: SMTP settings from
REELSYNC_SMTP_*, a real aiosmtpd server, a real HTTP receiver, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from http_receiver import Receiver
from smtp_sink import SmtpSink
from support.fixtures import DATABASES
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
            time.sleep(1.0)
        assert len(sink.received) == 1  # exactly one mail
        msg = sink.received[0].message
        assert sink.received[0].rcpt_tos == [server.admin]
        assert msg["Subject"] == "[reelsync] done: sh0010 plates (hq -> london, 1 file)"
        assert f"https://hq.acme.test:8443/jobs/{job['id']}" in msg.as_string()
        assert [d.json["event"] for d in receiver.deliveries] == ["job.submitted", "job.done"]
        assert all(d.verified for d in receiver.deliveries)
    finally:
        receiver.stop()
        sink.stop()
