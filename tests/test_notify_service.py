"""The notifier wired as the server runs it: REST API + capture + dispatcher loop + real SMTP
(STARTTLS with login, settings from REELSYNC_SMTP_*) + a real webhook receiver; and the
pre-submit hook refusing jobs through the REST API."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from http_receiver import Receiver
from reelsync.config import load_server_config
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor
from reelsync.notify.dispatcher import DispatcherPolicy
from reelsync.notify.presubmit import PreSubmitHook
from reelsync.notify.service import Notifier
from reelsync.server.app import create_app
from reelsync.services import acls, queues, settings, sites, volumes, webhooks
from reelsync.services.bootstrap import InitResult
from reelsync.services.rollup import refresh_job
from smtp_sink import SmtpSink, make_tls


@pytest.fixture
def studio(database: Database, admin: Actor) -> Actor:
    sites.create_site(database, admin, code="london")
    volumes.create_volume(
        database, admin, code="projects", paths={"hq": "/mnt/projects", "london": "/data/projects"}
    )
    queues.create_queue(database, admin, code="proj001", priority=700)
    acls.grant(database, admin, user=admin.user_id, volume="projects", read=True, write=True)
    return admin


@pytest.fixture
async def api(
    database: Database, workspace: InitResult, studio: Actor, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    config = load_server_config(tmp_path, {})
    app = create_app(config, database, submit_hook=PreSubmitHook(tmp_dir=tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test/api/v1",
        headers={"Authorization": f"Bearer {workspace.api_key}"},
    ) as client:
        yield client


JOB = {
    "name": "sh0010 scans",
    "queue": "proj001",
    "tasks": [{"source": "share=projects/proj001/sh0010/a.exr", "destination": "site=london"}],
}


def _finish(db: Database, job_id: str) -> None:
    with db.session() as s:
        for task in s.scalars(select(m.Task).where(m.Task.job_id == job_id)):
            task.status, task.size, task.bytes_done = "done", 10, 10
        job = s.get(m.Job, job_id)
        assert job is not None
        refresh_job(s, job)


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def test_job_done_reaches_real_smtp_and_webhook(
    database: Database, studio: Actor, workspace: InitResult, tmp_path: Path
) -> None:
    tls = make_tls(tmp_path)
    sink = SmtpSink("starttls", tls=tls, login=("mailer", "s3cret"))
    sink.start()
    receiver = Receiver(secret="k" * 32).start()
    env = {
        "REELSYNC_SMTP_HOST": "localhost",
        "REELSYNC_SMTP_PORT": str(sink.port),
        "REELSYNC_SMTP_TLS": "starttls",
        "REELSYNC_SMTP_USER": "mailer",
        "REELSYNC_SMTP_PASSWORD": "s3cret",
        "REELSYNC_SMTP_FROM": "reelsync@acmepost.com",
        "REELSYNC_PUBLIC_URL": "https://hq.acmepost.com:8443",
        "REELSYNC_WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver is on 127.0.0.1
    }
    config = load_server_config(tmp_path, env)
    webhooks.create_webhook(
        database, studio, url=receiver.url, events=["submitted", "done"], secret="k" * 32
    )
    policy = DispatcherPolicy(poll_s=0.05)
    try:
        async with Notifier(config, database, policy=policy, smtp_ssl_context=tls.client_context):
            app = create_app(config, database)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://test/api/v1",
                headers={"Authorization": f"Bearer {workspace.api_key}"},
            ) as api:
                r = await api.post("/jobs", json=JOB)
                assert r.status_code == 201, r.text
                job_id = r.json()["id"]
            await _until(lambda: len(receiver.deliveries) == 1)
            _finish(database, job_id)
            await _until(lambda: len(sink.received) == 1 and len(receiver.deliveries) == 2)
            await asyncio.sleep(0.3)  # nothing more arrives
        assert len(sink.received) == 1
        msg = sink.received[0].message
        assert msg["From"] == "reelsync@acmepost.com"
        assert msg["Subject"] == "[reelsync] done: sh0010 scans (hq -> london, 1 file)"
        assert f"https://hq.acmepost.com:8443/ui/jobs/{job_id}" in msg.as_string()
        assert [d.json["event"] for d in receiver.deliveries] == ["job.submitted", "job.done"]
        assert all(d.verified for d in receiver.deliveries)
    finally:
        receiver.stop()
        sink.stop()


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "presubmit.py"
    path.write_text(body)
    return f"{sys.executable} {path} ${{PATH_JSON_INPUT}}"


def _jobs(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(m.Job)) or 0


async def test_pre_submit_hook_accepts_and_rejects(
    api: httpx.AsyncClient, database: Database, studio: Actor, tmp_path: Path
) -> None:
    assert (await api.post("/jobs", json=JOB)).status_code == 201  # no hook set: accepted
    command = _script(
        tmp_path,
        "import json,sys\n"
        "job = json.load(open(sys.argv[1]))\n"
        "assert job['hook'] == 'pre-submit' and job['queue'] == 'proj001'\n"
        "assert job['user'] == 'admin@acmepost.com' and len(job['tasks']) == 1\n"
        "if 'bad' in job['name']:\n"
        "    sys.stderr.write('names with bad are not allowed on proj001')\n"
        "    sys.exit(1)\n",
    )
    settings.set_setting(
        database, studio, scope="queue", target="proj001", key="hook_pre_submit", value=command
    )
    assert (await api.post("/jobs", json=JOB)).status_code == 201
    before = _jobs(database)
    r = await api.post("/jobs", json={**JOB, "name": "a bad name"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "the pre-submit hook rejected the job: names with bad are not allowed on proj001"
    )
    assert _jobs(database) == before  # nothing written
    # another queue has no hook (the queue's setting, not the workspace's)
    r = await api.post("/jobs", json={**JOB, "name": "a bad name", "queue": "medium"})
    assert r.status_code == 201


async def test_pre_submit_hook_timeout_rejects(
    api: httpx.AsyncClient, database: Database, studio: Actor, tmp_path: Path
) -> None:
    settings.set_setting(
        database, studio, scope="workspace", key="hook_pre_submit",
        value=_script(tmp_path, "import time\ntime.sleep(30)\n"),
    )  # fmt: skip
    settings.set_setting(database, studio, scope="workspace", key="hook_timeout_s", value="0.5")
    before = _jobs(database)
    r = await api.post("/jobs", json=JOB)
    assert r.status_code == 400
    assert "timed out" in r.json()["error"]["message"]
    assert _jobs(database) == before
