"""The native REST API in-process (httpx over ASGI), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.server.app import create_app
from reelsync.services.bootstrap import InitResult


@pytest.fixture
async def api(
    database: Database, workspace: InitResult, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ServerConfig(data_dir=tmp_path, database_url=database.url), database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test/api/v1",
        headers={"Authorization": f"Bearer {workspace.api_key}"},
    ) as client:
        yield client


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code
    return str(body["message"])


async def test_health_me_workspace_and_auth(api: httpx.AsyncClient) -> None:
    health = await api.get("/health", headers={"Authorization": ""})
    assert health.json()["status"] == "ok"
    assert (await api.get("/me")).json()["email"] == "admin@acmepost.com"
    assert (await api.get("/workspace")).json()["code"] == "acmepost"
    message = _error(await api.get("/me", headers={"Authorization": ""}), 401, "unauthenticated")
    assert "API key" in message
    _error(
        await api.get("/me", headers={"Authorization": "Bearer rsk_nope"}), 401, "unauthenticated"
    )
    _error(await api.get("/nowhere"), 404, "not_found")
    spec = (await api.get("/openapi.json")).json()
    assert "/api/v1/jobs" in spec["paths"]


async def test_admin_crud_and_roles(api: httpx.AsyncClient) -> None:
    r = await api.post("/sites", json={"code": "london", "name": "London"})
    assert r.status_code == 201
    _error(await api.post("/sites", json={"code": "london"}), 409, "conflict")
    r = await api.post(
        "/volumes",
        json={
            "code": "projects",
            "default": True,
            "paths": {"hq": "/mnt/projects", "london": "/data/projects"},
        },
    )
    assert r.status_code == 201
    assert r.json()["paths"] == {"hq": "/mnt/projects", "london": "/data/projects"}
    r = await api.patch("/volumes/projects", json={"paths": {"london": None}})
    assert r.json()["paths"] == {"hq": "/mnt/projects"}
    await api.patch("/volumes/projects", json={"paths": {"london": "/data/projects"}})
    r = await api.post("/queues", json={"code": "proj001", "priority": 700})
    assert (r.status_code, r.json()["priority"]) == (201, 700)
    assert [q["code"] for q in (await api.get("/queues")).json()["items"]][:2] == [
        "high",
        "proj001",
    ]
    _error(await api.post("/queues", json={"code": "q", "priority": 5000}), 400, "invalid")
    r = await api.post("/users", json={"email": "coord@acmepost.com", "role": "employee"})
    assert r.status_code == 201
    key = (await api.post("/users/coord@acmepost.com/apikeys", json={"description": "t"})).json()
    assert key["api_key"].startswith("rsk_")
    r = await api.post(
        "/acls",
        json={
            "user": "coord@acmepost.com",
            "volume": "projects",
            "path": "proj001",
            "read": True,
            "write": True,
        },
    )
    assert r.status_code == 201
    acl_id = r.json()["id"]
    emp = {"Authorization": f"Bearer {key['api_key']}"}
    _error(await api.post("/sites", json={"code": "paris"}, headers=emp), 403, "forbidden")
    _error(await api.delete("/volumes/projects", headers=emp), 403, "forbidden")
    assert [v["code"] for v in (await api.get("/volumes", headers=emp)).json()["items"]] == [
        "projects"
    ]
    job = await api.post(
        "/jobs",
        headers=emp,
        json={"source": "proj001/sc0010/scans", "destination": "site=london", "queue": "proj001"},
    )
    assert job.status_code == 201, job.text
    _error(
        await api.post(
            "/jobs", headers=emp, json={"source": "proj002/x", "destination": "site=london"}
        ),
        403,
        "forbidden",
    )
    assert (await api.delete(f"/acls/{acl_id}")).status_code == 204
    revoked = await api.delete(f"/users/coord@acmepost.com/apikeys/{key['id']}")
    assert revoked.json()["revoked_at"] is not None
    _error(await api.get("/me", headers=emp), 401, "unauthenticated")
    _error(await api.delete("/users/coord@acmepost.com"), 409, "conflict")  # has a job
    assert (await api.patch("/users/coord@acmepost.com", json={"enabled": False})).json()[
        "enabled"
    ] is False
    assert (await api.delete("/queues/proj001")).status_code == 204


async def test_jobs_tasks_and_status(api: httpx.AsyncClient) -> None:
    await api.post("/sites", json={"code": "london"})
    await api.post(
        "/volumes", json={"code": "projects", "paths": {"hq": "/mnt/projects", "london": "/data/p"}}
    )
    r = await api.post(
        "/jobs",
        json={
            "name": "proj001 download london",
            "queue": "High",
            "mirror_paths": True,
            "tasks": [
                {
                    "source": "share=projects/proj001/sc0010/sh0010/scans",
                    "destination": "site=london",
                },
                "proj001/a",
                "proj001/b",
            ],
        },
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["status"], job["queue"], job["tasks"]) == ("waiting", "high", 3)
    before = (await api.get("/jobs")).json()["total"]
    msg = _error(
        await api.post(
            "/jobs", json={"source": "volume=projects/../x", "destination": "site=london"}
        ),
        400,
        "bad_path",
    )
    assert ".." in msg
    _error(
        await api.post("/jobs", json={"source": "a", "destination": "site=nowhere"}),
        404,
        "not_found",
    )
    _error(
        await api.post("/jobs", json={"tasks": "not a list of tasks", "bogus": 1}), 400, "invalid"
    )
    _error(await api.post("/jobs", json=[1, 2]), 422, "invalid")
    assert (await api.get("/jobs")).json()["total"] == before
    jid = job["id"]
    added = await api.post(f"/jobs/{jid}/tasks", json={"tasks": ["proj001/c", "proj001/a"]})
    assert added.status_code == 201
    assert [t["uri"] for t in added.json()] == ["3", "1"]
    _error(
        await api.post(
            f"/jobs/{jid}/tasks", json={"tasks": ["proj001/a"], "allow_duplicates": False}
        ),
        409,
        "conflict",
    )
    edited = await api.patch(
        f"/jobs/{jid}/tasks", json=[{"uri": "2", "status": "onhold"}, {"uri": "0", "priority": 900}]
    )
    assert [(t["uri"], t["status"], t["priority"]) for t in edited.json()] == [
        ("2", "onhold", 500),
        ("0", "queued", 900),
    ]
    _error(
        await api.patch(f"/jobs/{jid}/tasks", json=[{"uri": "0", "status": "booting"}]),
        409,
        "invalid_transition",
    )
    page = (await api.get(f"/jobs/{jid}/tasks", params={"status": "queued", "limit": 2})).json()
    assert (page["total"], len(page["items"])) == (3, 2)
    assert (await api.get(f"/jobs/{jid}/tasks/2")).json()["status"] == "onhold"
    counts = await api.get(f"/jobs/{jid}/task-counts")
    assert counts.json() == {"queued": 3, "onhold": 1}
    _error(await api.get("/jobs/000000000000000000000000/task-counts"), 404, "not_found")
    assert (await api.patch(f"/jobs/{jid}", json={"status": "paused"})).json()["status"] == (
        "paused"
    )
    _error(await api.patch(f"/jobs/{jid}", json={"status": "running"}), 409, "invalid_transition")
    _error(await api.delete(f"/jobs/{jid}"), 409, "conflict")
    aborted = (await api.patch(f"/jobs/{jid}", json={"status": "aborted"})).json()
    assert aborted["status"] == "aborted"
    assert (await api.get("/jobs", params={"finished": "false"})).json()["total"] == 0
    assert (await api.get("/jobs", params={"active": "true"})).json()["total"] == 0
    assert (await api.get("/jobs", params={"active": "false"})).json()["total"] == 1
    assert (await api.delete(f"/jobs/{jid}")).status_code == 204
    _error(await api.get(f"/jobs/{jid}"), 404, "not_found")


async def test_settings_and_servers(api: httpx.AsyncClient) -> None:
    put = await api.put(
        "/settings", json={"scope": "workspace", "key": "job_max_retries", "value": 3}
    )
    assert put.json()["value"] == "3"
    await api.put(
        "/settings",
        json={"scope": "queue", "target": "High", "key": "transfer_concurrent", "value": True},
    )
    assert (
        await api.get("/settings", params={"scope": "queue", "target": "high", "inherited": "true"})
    ).json() == {"job_max_retries": "3", "transfer_concurrent": "true"}
    assert (
        await api.delete("/settings", params={"scope": "workspace", "key": "job_max_retries"})
    ).status_code == 204
    _error(
        await api.delete("/settings", params={"scope": "workspace", "key": "job_max_retries"}),
        404,
        "not_found",
    )
    _error(await api.get("/settings", params={"scope": "planet"}), 400, "invalid")
    token = await api.post("/servers/tokens", json={"site": "hq"})
    assert token.status_code == 201
    assert token.json()["token"].startswith("rse_")
    assert (await api.get("/servers")).json()["items"] == []
    _error(await api.get("/servers/abc"), 404, "not_found")


async def test_preferences_email_opt_out_own_or_admin(api: httpx.AsyncClient) -> None:
    """A user reads and changes their own ``email_opt_out`` (by ``me``, id or e-mail); an admin
    anyone's; nobody else's; the notifier's setting row is what changes."""
    keys = {}
    for email, role in (("emp@acmepost.com", "employee"), ("std@acmepost.com", "standard")):
        assert (await api.post("/users", json={"email": email, "role": role})).status_code == 201
        keys[email] = (await api.post(f"/users/{email}/apikeys", json={})).json()["api_key"]

    def as_(email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[email]}"}

    emp, std = as_("emp@acmepost.com"), as_("std@acmepost.com")
    mine = (await api.get("/me/preferences", headers=emp)).json()
    assert (mine["email"], mine["email_opt_out"]) == ("emp@acmepost.com", False)
    r = await api.patch("/me/preferences", json={"email_opt_out": True}, headers=emp)
    assert (r.status_code, r.json()["email_opt_out"]) == (200, True)
    assert (await api.get("/users/me/preferences", headers=emp)).json()["email_opt_out"] is True
    assert (await api.get("/users/me", headers=emp)).json()["email"] == "emp@acmepost.com"
    # the admin sees it and the USER-scoped setting the notifier reads says so
    assert (await api.get("/users/emp@acmepost.com/preferences")).json()["email_opt_out"] is True
    user_id = mine["user_id"]
    r = await api.get("/settings", params={"scope": "user", "target": user_id})
    assert r.json()["email_opt_out"] == "true", r.text
    # an employee may not change (or read) another user's preferences; a standard user cannot
    # see other users at all
    message = _error(
        await api.patch(
            "/users/std@acmepost.com/preferences", json={"email_opt_out": True}, headers=emp
        ),
        403,
        "forbidden",
    )
    assert "only an admin may change another user's preferences" in message
    _error(await api.get("/users/std@acmepost.com/preferences", headers=emp), 403,
           "forbidden")  # fmt: skip
    _error(await api.get("/users/emp@acmepost.com/preferences", headers=std), 404, "not_found")
    # the admin changes anyone's; an unknown field is refused
    r = await api.patch(f"/users/{user_id}/preferences", json={"email_opt_out": False})
    assert r.json()["email_opt_out"] is False
    assert (await api.get("/me/preferences", headers=emp)).json()["email_opt_out"] is False
    r = await api.get("/settings", params={"scope": "user", "target": user_id})
    assert "email_opt_out" not in r.json()
    _error(await api.patch("/me/preferences", json={"mail": "no"}), 422, "invalid")
    _error(await api.get("/users/nobody@acmepost.com/preferences"), 404, "not_found")


async def test_idempotency_key_header_makes_a_resubmit_safe(api: httpx.AsyncClient) -> None:
    await api.post("/sites", json={"code": "london"})
    await api.post(
        "/volumes", json={"code": "projects", "paths": {"hq": "/mnt/projects", "london": "/data/p"}}
    )
    spec = {"source": "volume=projects/proj001/plate.exr", "destination": "site=london"}
    first = await api.post("/jobs", json=spec, headers={"Idempotency-Key": "sub-77"})
    again = await api.post("/jobs", json=spec, headers={"Idempotency-Key": "sub-77"})
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert (await api.get("/jobs")).json()["total"] == 1
    other = await api.post("/jobs", json=spec, headers={"Idempotency-Key": "sub-78"})
    assert other.json()["id"] != first.json()["id"]
    _error(
        await api.post("/jobs", json=spec, headers={"Idempotency-Key": "x" * 300}),
        400,
        "invalid",
    )
