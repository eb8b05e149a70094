"""/api/v1/webhooks in-process (httpx over ASGI), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.domain.records import Actor
from reelsync.server.app import create_app
from reelsync.services import apikeys, users
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


async def test_webhook_crud(api: httpx.AsyncClient) -> None:
    r = await api.post("/webhooks", json={"url": "https://ci.acme.test/hook", "events": ["done"]})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["events"] == ["job.done"]
    assert len(created["secret"]) == 64
    hook_id = created["id"]
    listed = (await api.get("/webhooks")).json()
    assert [h["id"] for h in listed["items"]] == [hook_id]
    assert listed["items"][0]["secret"] is None  # the secret is shown once
    r = await api.patch(
        f"/webhooks/{hook_id}", json={"events": ["failed", "submitted"], "enabled": False}
    )
    assert r.json()["events"] == ["job.failed", "job.submitted"]
    assert r.json()["enabled"] is False
    r = await api.patch(f"/webhooks/{hook_id}", json={"rotate_secret": True})
    assert len(r.json()["secret"]) == 64
    assert r.json()["secret"] != created["secret"]
    assert (await api.delete(f"/webhooks/{hook_id}")).status_code == 204
    r = await api.get(f"/webhooks/{hook_id}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_webhook_mistakes_are_clear(api: httpx.AsyncClient) -> None:
    r = await api.post("/webhooks", json={"url": "ftp://x/y", "events": ["done"]})
    assert r.status_code == 400
    assert "http(s) URL" in r.json()["error"]["message"]
    r = await api.post("/webhooks", json={"url": "https://x/y", "events": ["exploded"]})
    assert r.status_code == 400
    assert "unknown webhook event" in r.json()["error"]["message"]
    assert (await api.get("/webhooks")).json()["items"] == []


async def test_only_admins(
    api: httpx.AsyncClient, database: Database, workspace: InitResult
) -> None:
    admin = Actor(workspace.admin.id, workspace.admin.email, workspace.admin.role)
    emp = users.create_user(database, admin, email="e@acmepost.com", role="employee")
    _key, plain = apikeys.create_api_key(database, admin, emp.id)
    headers = {"Authorization": f"Bearer {plain}"}
    r = await api.get("/webhooks", headers=headers)
    assert r.status_code == 403
    r = await api.post(
        "/webhooks", headers=headers, json={"url": "https://x/y", "events": ["done"]}
    )
    assert r.status_code == 403
