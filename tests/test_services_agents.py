"""services.agents on both databases: heartbeat (online, peer endpoint, served volumes with their
site roots), explicit volume assignment, the agents serving a volume, the certificate record."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor
from reelsync.errors import NotFoundError, ValidationError
from reelsync.services import agents, servers, sites, volumes


@pytest.fixture
def fleet(database: Database, admin: Actor) -> dict[str, str]:
    sites.create_site(database, admin, code="london")
    volumes.create_volume(
        database, admin, code="projects", paths={"hq": "/mnt/p", "london": "/data/p"}
    )
    volumes.create_volume(database, admin, code="scratch", paths={"hq": "/mnt/s"})
    ids = {}
    for site in ("hq", "london"):
        _, token = servers.create_enrollment_token(database, admin, site)
        server, _ = servers.enroll_server(database, token, hostname=f"{site}-1")
        ids[site] = server.id
    return ids


def test_heartbeat_marks_online_and_lists_site_roots(
    database: Database, fleet: dict[str, str]
) -> None:
    view = agents.heartbeat(
        database, fleet["hq"], version="0.1", peer_address="10.0.0.5", peer_port=45190,
        dialable=True,
    )  # fmt: skip
    assert view.server.status == "online"
    assert view.server.last_checkin is not None
    assert (view.server.peer_address, view.server.peer_port, view.server.dialable) == (
        "10.0.0.5",
        45190,
        True,
    )
    assert [(v.code, v.root) for v in view.volumes] == [
        ("projects", "/mnt/p"),
        ("scratch", "/mnt/s"),
    ]
    london = agents.heartbeat(database, fleet["london"], dialable=False)
    assert [(v.code, v.root) for v in london.volumes] == [("projects", "/data/p")]
    assert london.bandwidth_limit is None
    with pytest.raises(ValidationError, match="peer_address and peer_port"):
        agents.heartbeat(database, fleet["hq"], dialable=True)
    with pytest.raises(ValidationError, match="peer_port"):
        agents.heartbeat(database, fleet["hq"], peer_address="h", peer_port=70000)
    with pytest.raises(NotFoundError):
        agents.heartbeat(database, "0" * 24)


def test_explicit_assignment_and_who_serves(
    database: Database, admin: Actor, fleet: dict[str, str]
) -> None:
    scratch = volumes.get_volume(database, admin, "scratch")
    projects = volumes.get_volume(database, admin, "projects")
    assert agents.agents_serving(database, projects.id) == []  # nobody online yet
    agents.heartbeat(database, fleet["hq"])
    agents.heartbeat(database, fleet["london"])
    assert [s.id for s in agents.agents_serving(database, projects.id)] == [fleet["hq"]]
    assert [s.id for s in agents.agents_serving(database, projects.id, site_code="london")] == [
        fleet["london"]
    ]
    assert agents.agents_serving(database, scratch.id, site_code="london") == []
    with database.session() as s:
        s.add(m.ServerVolume(server_id=fleet["hq"], volume_id=scratch.id))
    view = agents.heartbeat(database, fleet["hq"])
    assert [v.code for v in view.volumes] == ["scratch"]  # only what is assigned
    assert agents.agents_serving(database, projects.id) == []
    servers.update_server(database, admin, fleet["hq"], status="disabled")
    assert agents.heartbeat(database, fleet["hq"]).server.status == "disabled"
    assert agents.agents_serving(database, scratch.id) == []


def test_record_certificate(database: Database, fleet: dict[str, str]) -> None:
    agents.record_certificate(database, fleet["hq"], fingerprint="ab" * 32, serial="1f")
    with database.session() as s:
        row = s.scalar(select(m.Server).where(m.Server.id == fleet["hq"]))
        assert row is not None
        assert (row.cert_fingerprint, row.cert_serial) == ("ab" * 32, "1f")


def test_revoke_refuses_the_agent_for_good(database: Database, admin: Actor) -> None:
    from reelsync.domain.records import Role
    from reelsync.errors import PermissionDeniedError, RevokedError
    from reelsync.services import users

    _, token = servers.create_enrollment_token(database, admin, "hq")
    server, secret = servers.enroll_server(database, token, hostname="hq-1")
    _, token2 = servers.create_enrollment_token(database, admin, "hq")
    other, _ = servers.enroll_server(database, token2, hostname="hq-2")
    agents.heartbeat(database, server.id)
    assert agents.heartbeat(database, other.id).revoked_agents == ()
    user = users.create_user(database, admin, email="ed@acmepost.com", role=Role.STANDARD)
    standard = Actor(user_id=user.id, email=user.email, role=user.role)
    with pytest.raises(PermissionDeniedError):
        servers.revoke_server(database, standard, server.id)

    revoked = servers.revoke_server(database, admin, server.id)
    assert revoked.status == "revoked"
    assert servers.revoke_server(database, admin, server.id).status == "revoked"  # idempotent
    with pytest.raises(RevokedError, match="was revoked by an admin"):
        servers.authenticate_server(database, secret)
    assert agents.heartbeat(database, other.id).revoked_agents == (server.id,)
    assert agents.heartbeat(database, server.id).server.status == "revoked"  # never online again
    with pytest.raises(ValidationError, match="revoked"):
        servers.update_server(database, admin, server.id, status="enabled")
    projects = volumes.create_volume(database, admin, code="p2", paths={"hq": "/mnt/p2"})
    assert [s.id for s in agents.agents_serving(database, projects.id)] == [other.id]


def test_bandwidth_rates_and_a_central_limit(database: Database, admin: Actor) -> None:
    _, token = servers.create_enrollment_token(database, admin, "hq")
    server, _ = servers.enroll_server(database, token, hostname="hq-1")
    view = agents.heartbeat(
        database, server.id, rate_sent=1.5e6, rate_received=250_000.04, applied_limit=4e6
    )
    assert view.bandwidth_limit is None  # nothing set centrally: the agent keeps its own
    record = servers.get_server(database, admin, server.id)
    assert (record.rate_sent, record.rate_received, record.applied_limit) == (
        1.5e6,
        250_000.0,
        4e6,
    )
    assert record.bandwidth_limit is None
    changed = servers.update_server(database, admin, server.id, bandwidth_limit=2 * 1024**2)
    assert changed.bandwidth_limit == 2 * 1024**2
    view = agents.heartbeat(database, server.id)  # an agent that reports no figures
    assert view.bandwidth_limit == 2 * 1024**2
    record = servers.get_server(database, admin, server.id)
    assert (record.rate_sent, record.rate_received, record.applied_limit) == (None, None, None)
    assert (
        servers.update_server(database, admin, server.id, bandwidth_limit=0).bandwidth_limit is None
    )
    assert agents.heartbeat(database, server.id).bandwidth_limit is None
    with pytest.raises(ValidationError, match="bandwidth limit"):
        servers.update_server(database, admin, server.id, bandwidth_limit=-1)
