"""The control plane assembled for one process: the database and the ASGI app with every router
it serves. Rules: one :class:`~reelsync.db.Database` per process, upgraded to the newest schema
before anything is served and disposed after the last request; other parts add their routers
(accsyn v3, agent endpoints) in :func:`routers`, the one place that lists them. The app's lifespan
runs the notifier (job-event capture + outbox dispatcher: mail, webhooks, post hooks) and the app
refuses jobs its pre-submit hook rejects."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.notify.presubmit import PreSubmitHook
from reelsync.notify.service import Notifier
from reelsync.server.accsyn import build_router as accsyn_router
from reelsync.server.agentapi import AgentHub
from reelsync.server.agentapi import build_router as agent_router
from reelsync.server.agentapi.wake import WakeOnWrites
from reelsync.server.app import create_app
from reelsync.server.housekeeping import Housekeeper

__all__ = ["control_plane", "routers"]


def routers(
    config: ServerConfig, database: Database, hub: AgentHub | None = None
) -> list[APIRouter]:
    """Routers served beside the native REST API (each carries its own prefix): the accsyn v3
    wire API (reads the database from ``app.state``; its file calls go to the agents) and the
    agents' API ``/api/v1/agent`` (with its background sweep of silent agents)."""
    hub = hub or AgentHub.from_config(config, database)
    return [accsyn_router(file_operator=hub.relay), agent_router(hub)]


@contextmanager
def control_plane(config: ServerConfig) -> Iterator[FastAPI]:
    """Open and upgrade the database, build the app; dispose the database on exit."""
    database = Database(config.database_url)
    try:
        database.upgrade()
        hook = PreSubmitHook(tmp_dir=config.data_dir / "tmp")
        hub = AgentHub.from_config(config, database)
        app = create_app(config, database, routers=routers(config, database, hub), submit_hook=hook)
        app.add_middleware(WakeOnWrites, hub=hub)  # new work is claimed at once

        routers_lifespan = app.router.lifespan_context  # the agent router's sweeper etc.

        @asynccontextmanager
        async def lifespan(inner: FastAPI) -> AsyncIterator[Any]:
            async with (
                Notifier(config, database),
                Housekeeper(database),
                routers_lifespan(inner) as state,
            ):
                yield state

        app.router.lifespan_context = lifespan
        yield app
    finally:
        database.dispose()
