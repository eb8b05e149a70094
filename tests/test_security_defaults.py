"""The "weak" list of issue 10, each defence checked: what non-admins see of agents and hooks,
admin mail settings a job's owner cannot override, database files readable by their owner only,
failed API-key attempts slowed per address without locking the owner out, the HTTPS listener's
TLS versions and ciphers, and unsupported requests logged as one INFO line."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor, Role
from reelsync.notify.recipients import job_recipients
from reelsync.server.app import create_app
from reelsync.server.intake import SignInThrottle
from reelsync.services import acls, jobs, servers, settings, users
from reelsync.services.bootstrap import InitResult
from scheduler_world import World
from support.servers import RunningServer, running_server


def _employee(database: Database, admin: Actor, email: str = "emp@acmepost.com") -> Actor:
    user = users.create_user(database, admin, email=email, role="employee")
    return Actor(user_id=user.id, email=user.email, role=Role.EMPLOYEE)


def test_non_admins_see_no_agent_addresses_or_fingerprints(
    database: Database, admin: Actor
) -> None:
    world = World(database, admin)
    agent_id = world.agent("hq")
    with database.session() as s:
        row = s.get(m.Server, agent_id)
        assert row is not None
        row.cert_fingerprint = "ab" * 32
        row.info = {"username": "render", "wan_ip": "203.0.113.9"}
    employee = _employee(database, admin)
    [seen] = [s for s in servers.list_servers(database, employee) if s.id == agent_id]
    assert (seen.peer_address, seen.peer_port, seen.cert_fingerprint) == (None, None, None)
    assert (seen.username, seen.wan_ip) == (None, None)
    assert seen.hostname  # what an employee needs to pick a site stays
    assert seen.status
    assert servers.get_server(database, employee, agent_id).peer_address is None
    full = servers.get_server(database, admin, agent_id)
    assert full.peer_address == "127.0.0.1"
    assert full.cert_fingerprint == "ab" * 32


def test_non_admins_see_no_hook_command_lines(database: Database, admin: Actor) -> None:
    World(database, admin).queue("proj001", 700)
    settings.set_setting(database, admin, scope="workspace", key="hook_post_done",
                         value="/opt/studio/notify --token s3cret")  # fmt: skip
    settings.set_setting(database, admin, scope="queue", target="proj001",
                         key="hook_pre_submit", value="/opt/check")  # fmt: skip
    settings.set_setting(database, admin, scope="workspace", key="job_max_retries", value=3)
    employee = _employee(database, admin)
    for scope, target in (("workspace", None), ("queue", "proj001")):
        shown = settings.list_settings(database, employee, scope=scope, target=target,
                                       inherited=True)  # fmt: skip
        assert not any(k.startswith("hook_") for k in shown), shown
        assert shown["job_max_retries"] == "3"
    assert settings.list_settings(database, admin, scope="queue", target="proj001",
                                  inherited=True)["hook_pre_submit"] == "/opt/check"  # fmt: skip


def test_a_jobs_owner_cannot_override_admin_mail_settings(database: Database, admin: Actor) -> None:
    world = World(database, admin)
    world.queue("proj001", 700)
    employee = _employee(database, admin)
    acls.grant(database, admin, user=employee.email, volume="projects", read=True, write=True)
    users.create_user(database, admin, email="lisa@acmepost.com", role="employee")
    world.setting("email_job_done_recipients", "producer@acmepost.com", scope="queue",
                  target="proj001")  # fmt: skip
    world.setting("email_enabled", "true", scope="queue", target="proj001")
    job = jobs.submit_job(
        database,
        employee,
        {
            "source": "share=projects/a.exr",
            "destination": "site=london",
            "queue": "proj001",
            "settings": {
                "email_enabled": "false",  # the admin said true on the queue
                "email_exclude": "producer@acmepost.com",  # the queue's recipient
                "email_job_done_recipients": "lisa@acmepost.com, anyone@evil.example",
            },
        },
    )
    with database.session() as s:
        row = s.scalar(select(m.Job).where(m.Job.id == job.id))
        assert row is not None
        found = job_recipients(s, row, "done")
    assert found == ("emp@acmepost.com", "producer@acmepost.com", "lisa@acmepost.com")
    # where no admin said anything, the owner may turn their own job's mail off
    world.setting("email_enabled", "true", scope="queue", target="proj001")
    with database.session() as s:
        s.execute(
            m.Setting.__table__.delete().where(m.Setting.key == "email_enabled")  # type: ignore[attr-defined]
        )
        row = s.scalar(select(m.Job).where(m.Job.id == job.id))
        assert row is not None
        assert job_recipients(s, row, "done") == ()


def test_sqlite_files_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "data" / "reelsync.db"
        db = Database(f"sqlite:///{path}")
        db.upgrade()
        with db.session() as s:
            s.execute(select(1))
        files = [path, path.with_name("reelsync.db-wal"), path.with_name("reelsync.db-shm")]
        assert all(f.exists() for f in files)
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        db.dispose()
        path.chmod(0o644)  # an older data dir: tightened when opened
        Database(f"sqlite:///{path}").dispose()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_the_throttle_slows_one_address_only() -> None:
    throttle = SignInThrottle(burst=3, per_s=0.5)
    for _ in range(3):
        assert throttle.wait_s("10.0.0.9", now=100.0) == 0
        throttle.failed("10.0.0.9", now=100.0)
    assert throttle.wait_s("10.0.0.9", now=100.0) == pytest.approx(2.0)
    assert throttle.wait_s("10.0.0.8", now=100.0) == 0  # the owner elsewhere
    assert throttle.wait_s("10.0.0.9", now=102.0) == 0  # one more try after the wait


# -- a live control plane -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {"REELSYNC_SIGNIN_BURST": "4", "REELSYNC_SIGNIN_REFILL_S": "2"}
    with running_server(tmp_path_factory.mktemp("defaults"), env=env) as live:
        yield live


def _get(server: RunningServer, key: str, local: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(
        verify=ssl.create_default_context(cafile=str(server.ca_file)), local_address=local
    )
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.get(f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {key}"})


def test_guessing_api_keys_is_slowed_without_locking_out_the_owner(
    server: RunningServer,
) -> None:
    codes = [_get(server, f"rsk_{i:064x}").status_code for i in range(6)]
    assert codes[:4] == [401] * 4
    assert codes[4:] == [429, 429]
    started = time.monotonic()
    slowed = _get(server, "rsk_" + "f" * 64)
    assert time.monotonic() - started >= 1.0  # held before it is answered
    assert slowed.status_code == 429
    assert 1 <= int(slowed.headers["Retry-After"]) <= 2
    assert slowed.json()["error"]["code"] == "rate_limited"
    # the owner is never locked out: not from another address, not from the same one
    assert _get(server, server.api_key, local="127.0.0.2").status_code == 200
    assert _get(server, server.api_key).status_code == 200
    # an upload with a wrong key is slowed the same way, before its body is read
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    upload = httpx.post(f"{server.url}/api/v1/sites", json={"code": "x"}, verify=ctx,
                        headers={"Authorization": "Bearer rsk_" + "e" * 64})  # fmt: skip
    assert upload.status_code == 429
    # the data dir's database is the owner's only
    for name in ("reelsync.db", "reelsync.db-wal", "reelsync.db-shm"):
        f = server.data_dir / name
        if f.exists():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, name


def _handshake(server: RunningServer, context: ssl.SSLContext) -> str:
    context.load_verify_locations(cafile=str(server.ca_file))
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return f"{tls.version()} {tls.cipher()[0]}"


def test_https_takes_tls_1_2_and_1_3_with_modern_ciphers_only(server: RunningServer) -> None:
    assert _handshake(server, ssl.create_default_context()).startswith("TLSv1.3")
    tls12 = ssl.create_default_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    version, cipher = _handshake(server, tls12).split()
    assert version == "TLSv1.2"
    assert "GCM" in cipher or "CHACHA20" in cipher
    weak = ssl.create_default_context()
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA:AES256-SHA256")
    with pytest.raises(ssl.SSLError):
        _handshake(server, weak)
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # this client could speak TLS 1.1 ...
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError) as refused:
        _handshake(server, old)
    assert "NO_PROTOCOLS_AVAILABLE" not in str(refused.value)  # ... the server would not


def test_unsupported_requests_are_one_info_line(server: RunningServer) -> None:
    before = server.log()
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    for _ in range(3):
        response = httpx.post(
            f"{server.url}/api/v1/jobs",
            json={"source": "~/x.exr", "destination": "site=hq"},
            headers={"Authorization": f"Bearer {server.api_key}"},
            verify=ctx,
        )
        assert response.status_code == 501, response.text
        assert response.json()["error"]["code"] == "not_supported"
    time.sleep(0.2)
    added = server.log()[len(before) :]
    assert "Traceback" not in added
    assert "ERROR" not in added
    assert "home paths (~) are not supported" in added


async def test_webhooks_to_the_private_network_are_refused_at_once(
    database: Database, workspace: InitResult, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {workspace.api_key}"}
    for allow, expected in ((False, 400), (True, 201)):
        config = ServerConfig(data_dir=tmp_path, database_url=str(database.url), tls=False,
                              webhook_allow_private=allow)  # fmt: skip
        transport = httpx.ASGITransport(app=create_app(config, database))
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as api:
            for url in ("http://127.0.0.1:9/h", "https://localhost/h", "http://10.0.0.5/h",
                        "http://169.254.169.254/latest", "http://[::1]/h"):  # fmt: skip
                answer = await api.post("/webhooks", headers=headers,
                                        json={"url": url, "events": ["done"]})  # fmt: skip
                assert answer.status_code == expected, (allow, url, answer.text)
                if not allow:
                    assert "webhook_allow_private" in answer.json()["error"]["hint"]
            hook = {"url": "https://hooks.example/x", "events": ["done"]}
            public = await api.post("/webhooks", headers=headers, json=hook)
            assert public.status_code == 201
