"""The native REST API over real HTTPS against a real `reelsync server run` process, on SQLite and
on PostgreSQL, through reelsync.client."""

from __future__ import annotations

import ssl

import httpx
import pytest

from reelsync.client import Session
from reelsync.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ReelsyncError,
    UserError,
)
from support.servers import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture
def admin(live_server: RunningServer) -> Session:
    with live_server.session() as session:
        yield session


def test_health_and_me(admin: Session, live_server: RunningServer) -> None:
    assert admin.health()["status"] == "ok"
    me = admin.me()
    assert me["email"] == live_server.admin
    assert me["role"] == "admin"
    assert admin.workspace()["code"] == live_server.workspace


def test_crud_flow(admin: Session) -> None:
    site = admin.create("site", {"code": "london", "name": "London"})
    assert len(site["id"]) == 24
    assert {s["code"] for s in admin.find("site")} >= {"hq", "london"}
    volume = admin.create(
        "volume",
        {
            "code": "projects",
            "default": True,
            "paths": {"hq": "/mnt/projects", "london": "/data/p"},
        },
    )
    assert admin.get_entity("volume", "projects")["id"] == volume["id"]
    queue = admin.create("queue", {"code": "proj001", "priority": 700})
    assert admin.get_entity("queue", queue["id"])["priority"] == 700
    assert admin.update("queue", "proj001", {"priority": 800})["priority"] == 800
    with pytest.raises(ConflictError):
        admin.create("queue", {"code": "proj001"})
    user = admin.create("user", {"email": "coordinator@acmepost.com", "role": "employee"})
    acl = admin.grant(user["email"], "projects", read=True, write=True)
    assert [a["id"] for a in admin.acls(user=user["email"])] == [acl["id"]]
    admin.revoke_acl(acl["id"])
    assert admin.acls(user=user["email"]) == []
    admin.delete("queue", "proj001")
    with pytest.raises(NotFoundError):
        admin.get_entity("queue", "proj001")


def test_api_keys_shown_once_and_revocable(live_server: RunningServer, admin: Session) -> None:
    admin.create("user", {"email": "script@acme.test", "role": "employee"})
    made = admin.create_apikey("script@acme.test", description="render farm")
    listed = admin.list_apikeys("script@acme.test")
    assert [k["id"] for k in listed] == [made["id"]]
    assert all("api_key" not in k for k in listed)
    with live_server.session(api_key=made["api_key"], api_user="script@acme.test") as script:
        assert script.me()["email"] == "script@acme.test"
        with pytest.raises(PermissionDeniedError):
            script.create("site", {"code": "paris"})
        admin.revoke_apikey("script@acme.test", made["id"])
        with pytest.raises(AuthenticationError):
            script.me()


def test_auth_failures(live_server: RunningServer) -> None:
    with (
        live_server.session(api_key="rsk_not_a_real_key") as bad,
        pytest.raises(AuthenticationError) as info,
    ):
        bad.find("site")
    assert info.value.remote
    ctx = ssl.create_default_context(cafile=str(live_server.ca_file))
    response = httpx.get(f"{live_server.url}/api/v1/sites", verify=ctx)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_a_bad_job_is_refused_and_writes_nothing(admin: Session) -> None:
    before = admin.find("job")
    with pytest.raises(UserError) as info:
        admin.submit_job(
            {"tasks": [{"source": "volume=nosuchvolume/a/b", "destination": "site=hq"}]}
        )
    assert "nosuchvolume" in str(info.value)
    with pytest.raises(UserError):
        admin.submit_job(
            {"tasks": [{"source": "volume=projects/../../etc", "destination": "site=london"}]}
        )
    assert admin.find("job") == before


def test_a_job_round_trip(admin: Session) -> None:
    if not admin.find_one("site", code="paris"):
        admin.create("site", {"code": "paris"})
    if not admin.find_one("volume", code="jobs"):
        admin.create("volume", {"code": "jobs", "paths": {"hq": "/mnt/jobs", "paris": "/p/jobs"}})
    job = admin.submit_job(
        {
            "name": "proj001 download paris",
            "tasks": [
                {"source": "volume=jobs/proj001/a.exr", "destination": "site=paris"},
                {"source": "volume=jobs/proj001/b.exr", "destination": "site=paris"},
            ],
        }
    )
    assert len(job["id"]) == 24
    tasks = admin.tasks(job["id"])
    assert sorted(t["uri"] for t in tasks) == ["0", "1"]
    assert admin.get_entity("job", job["id"])["name"] == "proj001 download paris"


def test_error_classes_are_remote(admin: Session) -> None:
    with pytest.raises(ReelsyncError) as info:
        admin.get_entity("site", "atlantis")
    assert isinstance(info.value, NotFoundError)
    assert info.value.remote
