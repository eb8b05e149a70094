"""The control plane wakes the agents' parked work long-polls after a successful user write (so
new work is claimed at once, not at the next poll tick), and only then: not after reads, failed
writes or the agents' own calls. In-process app (httpx over ASGI), SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.server.agentapi import AgentHub
from reelsync.server.agentapi.wake import WakeOnWrites
from reelsync.server.app import create_app
from reelsync.services.bootstrap import InitResult


async def test_successful_user_writes_wake_parked_long_polls(
    database: Database, workspace: InitResult, tmp_path: Path
) -> None:
    config = ServerConfig(data_dir=tmp_path, database_url=database.url)
    (tmp_path / "tls").mkdir()
    hub = AgentHub.from_config(config, database)
    app = create_app(config, database)
    app.add_middleware(WakeOnWrites, hub=hub)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test/api/v1",
        headers={"Authorization": f"Bearer {workspace.api_key}"},
    ) as api:
        parked = asyncio.create_task(hub.relay.wait("agent-a", 60))
        await asyncio.sleep(0.2)
        for request in (
            api.get("/sites"),  # a read
            api.post("/sites", json={"code": "hq"}),  # refused: hq exists (409)
        ):
            response = await request
            assert response.status_code in (200, 409), response.text
        await asyncio.sleep(0.3)
        assert not parked.done()  # none of those woke it
        response = await api.post("/sites", json={"code": "london"})
        assert response.status_code == 201
        await asyncio.wait_for(parked, 10)  # woken long before its 60 s
        # the long-poll's next round (take, then wait) parks again until the next write
        assert hub.relay.take("agent-a") == []
        again = asyncio.create_task(hub.relay.wait("agent-a", 60))
        await asyncio.sleep(0.3)
        assert not again.done()
        assert (await api.patch("/sites/london", json={"name": "London"})).status_code == 200
        await asyncio.wait_for(again, 10)


async def test_the_agents_own_calls_do_not_wake(
    database: Database, workspace: InitResult, tmp_path: Path
) -> None:
    """A successful call to the agents' API (a report, a heartbeat) is no reason to wake: only
    the user-facing paths are watched. (Any app behind the middleware: here one that says 200.)"""
    config = ServerConfig(data_dir=tmp_path, database_url=database.url)
    (tmp_path / "tls").mkdir()
    hub = AgentHub.from_config(config, database)

    async def ok(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    app = WakeOnWrites(ok, hub=hub)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        parked = asyncio.create_task(hub.relay.wait("agent-a", 60))
        await asyncio.sleep(0.2)
        for path in ("/api/v1/agent/report", "/api/v1/agent/heartbeat", "/api/v1/agent"):
            assert (await client.post(path, json={})).status_code == 200
        await asyncio.sleep(0.3)
        assert not parked.done()
        assert (await client.post("/api/v1/agents-list-lookalike", json={})).status_code == 200
        await asyncio.wait_for(parked, 10)
