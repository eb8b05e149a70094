from __future__ import annotations

import pytest

from reelsync.db import Database
from reelsync.domain.records import Actor, ServerStatus
from reelsync.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from reelsync.services import jobs, servers, settings, sites, users, volumes


def test_settings_inherit_workspace_queue_job(database: Database, admin: Actor) -> None:
    sites.create_site(database, admin, code="london")
    volumes.create_volume(
        database, admin, code="projects", paths={"hq": "/mnt/p", "london": "/data/p"}
    )
    job = jobs.submit_job(
        database,
        admin,
        {
            "source": "a",
            "destination": "site=london",
            "queue": "high",
            "settings": {"transfer_mode": "onewaysync"},
        },
    )
    settings.set_setting(database, admin, scope="workspace", key="job_max_retries", value=3)
    settings.set_setting(database, admin, scope="workspace", key="transfer_mode", value="copy")
    settings.set_setting(
        database, admin, scope="queue", target="High", key="job_max_retries", value="5"
    )
    settings.set_setting(
        database, admin, scope="volume", target="projects", key="email_enabled", value=False
    )
    assert (
        settings.get_setting(database, admin, scope="job", target=job.id, key="job_max_retries")
        == "5"
    )
    assert settings.list_settings(database, admin, scope="job", target=job.id, inherited=True) == {
        "job_max_retries": "5",
        "transfer_mode": "onewaysync",
    }
    assert settings.list_settings(
        database, admin, scope="volume", target="projects", inherited=True
    ) == {"job_max_retries": "3", "transfer_mode": "copy", "email_enabled": "false"}
    settings.set_setting(database, admin, scope="job", target=job.id, key="x", value="1")
    assert jobs.get_job(database, admin, job.id).settings == {
        "transfer_mode": "onewaysync",
        "x": "1",
    }
    settings.delete_setting(database, admin, scope="job", target=job.id, key="x")
    settings.delete_setting(database, admin, scope="queue", target="high", key="job_max_retries")
    assert (
        settings.get_setting(database, admin, scope="queue", target="high", key="job_max_retries")
        == "3"
    )
    with pytest.raises(NotFoundError):
        settings.delete_setting(database, admin, scope="queue", target="high", key="nope")
    with pytest.raises(ValidationError):
        settings.set_setting(database, admin, scope="queue", key="k", value="v")  # no target
    with pytest.raises(ValidationError):
        settings.set_setting(database, admin, scope="workspace", key="bad key", value="v")
    emp_user = users.create_user(database, admin, email="e@acmepost.com", role="employee")
    emp = Actor(emp_user.id, emp_user.email, emp_user.role)
    with pytest.raises(PermissionDeniedError):
        settings.set_setting(database, emp, scope="workspace", key="k", value="v")
    with pytest.raises(NotFoundError):
        settings.list_settings(database, emp, scope="job", target=job.id)
    with pytest.raises(NotFoundError):
        settings.list_settings(database, emp, scope="volume", target="projects")


def test_enrollment_and_server_lifecycle(database: Database, admin: Actor) -> None:
    sites.create_site(database, admin, code="london")
    token, plain = servers.create_enrollment_token(database, admin, "london", ttl_s=600)
    assert token.site == "london"
    assert plain.startswith("rse_")
    with pytest.raises(ValidationError):
        servers.create_enrollment_token(database, admin, "london", ttl_s=5)
    server, secret = servers.enroll_server(
        database, plain, hostname="ldn-agent-1", version="0.1.0", cert_fingerprint="ab" * 32
    )
    assert (server.site, server.status) == ("london", ServerStatus.INIT)
    with pytest.raises(AuthenticationError, match="used"):
        servers.enroll_server(database, plain, hostname="again")
    assert servers.authenticate_server(database, secret).id == server.id
    with pytest.raises(AuthenticationError):
        servers.authenticate_server(database, "rsa_" + "0" * 64)
    assert [s.hostname for s in servers.list_servers(database, admin, site="london")] == [
        "ldn-agent-1"
    ]
    disabled = servers.update_server(database, admin, server.id, status="disabled")
    assert disabled.status is ServerStatus.DISABLED
    with pytest.raises(AuthenticationError, match="disabled"):
        servers.authenticate_server(database, secret)
    # The refused call just now counts as a check-in: enabled, it reads online at once.
    assert (
        servers.update_server(database, admin, server.id, status="enabled").status
        is ServerStatus.ONLINE
    )
    # accsyn scripts write "online" for enabled.
    online = servers.update_server(database, admin, server.id, status="online")
    assert online.status is ServerStatus.ONLINE
    with pytest.raises(ValidationError):
        servers.update_server(database, admin, server.id, status="sleeping")
    servers.delete_server(database, admin, server.id)
    with pytest.raises(NotFoundError):
        servers.get_server(database, admin, server.id)


def test_user_settings_are_personal(database: Database, admin: Actor) -> None:
    lisa_user = users.create_user(database, admin, email="lisa@acmepost.com", role="employee")
    lisa = Actor(lisa_user.id, lisa_user.email, lisa_user.role)
    settings.set_setting(database, lisa, scope="user", key="email_opt_out", value=True)
    assert settings.list_settings(database, lisa, scope="user") == {"email_opt_out": "true"}
    assert (
        settings.get_setting(
            database, admin, scope="user", target="lisa@acmepost.com", key="email_opt_out"
        )
        == "true"
    )
    settings.set_setting(database, admin, scope="workspace", key="email_enabled", value="true")
    assert settings.list_settings(database, lisa, scope="user", inherited=True) == {
        "email_opt_out": "true"
    }
    with pytest.raises(PermissionDeniedError):
        settings.list_settings(database, lisa, scope="user", target="admin@acmepost.com")
    settings.delete_setting(database, lisa, scope="user", key="email_opt_out")
    assert settings.list_settings(database, lisa, scope="user") == {}
