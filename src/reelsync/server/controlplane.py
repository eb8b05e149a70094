"""The control plane assembled for one process: the database and the ASGI app with every router
it serves. Rules: one :class:`~reelsync.db.Database` per process, upgraded to the newest schema
before anything is served and disposed after the last request; other parts add their routers
(accsyn v3, agent endpoints) in :func:`routers`, the one place that lists them. The app's lifespan
runs the notifier (job-event capture + outbox dispatcher: mail, webhooks, post hooks) and the app
refuses jobs its pre-submit hook rejects. With several workers (:func:`run_worker_processes`)
each builds its own app after the fork; the database is upgraded once, before it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging.config
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from reelsync.config import ServerConfig
from reelsync.db import Database, pool_size_for
from reelsync.notify.presubmit import PreSubmitHook
from reelsync.notify.service import Notifier
from reelsync.pki import TicketSigner
from reelsync.server.accsyn import build_router as accsyn_router
from reelsync.server.agentapi import AgentHub
from reelsync.server.agentapi import build_router as agent_router
from reelsync.server.agentapi.wake import WakeOnWrites
from reelsync.server.app import create_app
from reelsync.server.housekeeping import Housekeeper
from reelsync.server.process import log_config, serve
from reelsync.server.ui.sessions import KEY_FILE as UI_KEY_FILE
from reelsync.server.ui.sessions import load_or_create_key
from reelsync.server.workers import RING_JOBS, WAKE_AGENTS, Worker, run_workers

__all__ = ["control_plane", "routers", "run_worker_processes"]


def routers(
    config: ServerConfig, database: Database, hub: AgentHub | None = None
) -> list[APIRouter]:
    """Routers served beside the native REST API (each carries its own prefix): the accsyn v3
    wire API (reads the database from ``app.state``; its file calls go to the agents) and the
    agents' API ``/api/v1/agent`` (with its background sweep of silent agents)."""
    hub = hub or AgentHub.from_config(config, database)
    return [accsyn_router(file_operator=hub.relay), agent_router(hub)]


@contextmanager
def control_plane(config: ServerConfig, worker: Worker | None = None) -> Iterator[FastAPI]:
    """Open and upgrade the database, build the app; dispose the database on exit. ``worker``:
    this process is one of several (:mod:`reelsync.server.workers`; the parent upgraded the
    database): the background loops run in the first only, and the workers tell each other
    about writes (wake-ups) over their link."""
    pool = config.db_pool_size or pool_size_for(worker.count if worker is not None else 1)
    database = Database(config.database_url, pool_size=pool)
    try:
        if worker is None:
            database.upgrade()
        background = worker is None or worker.runs_background
        hook = PreSubmitHook(tmp_dir=config.data_dir / "tmp")
        hub = AgentHub.from_config(config, database)
        hub.background = background
        app = create_app(
            config,
            database,
            routers=routers(config, database, hub),
            submit_hook=hook,
            throttle=worker.throttle if worker is not None else None,
        )
        app.add_middleware(WakeOnWrites, hub=hub)  # new work is claimed at once

        routers_lifespan = app.router.lifespan_context  # the agent router's sweeper etc.

        @asynccontextmanager
        async def lifespan(inner: FastAPI) -> AsyncIterator[Any]:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(Notifier(config, database, dispatch=background))
                if background:
                    await stack.enter_async_context(Housekeeper(database))
                if worker is not None:
                    stack.enter_context(_listening(worker, hub, inner))
                state = await stack.enter_async_context(routers_lifespan(inner))
                # What start-up built (the app, its routes and schemas, the database's metadata)
                # lives as long as the process: out of the cyclic collector's way, a full
                # collection walks what requests made (~20,000 objects, 5-20 ms) instead of
                # ~170,000 more (150-180 ms, a request's p99 stall at one client).
                gc.freeze()
                yield state

        app.router.lifespan_context = lifespan
        yield app
    finally:
        database.dispose()


@contextmanager
def _listening(worker: Worker, hub: AgentHub, app: FastAPI) -> Iterator[None]:
    """While the app runs: what the sibling workers say wakes this one's long-polls and job
    followers; this one's wake-ups reach them."""
    loop = asyncio.get_running_loop()
    inbox = worker.link.inbox

    def heard() -> None:
        said = worker.link.drain()
        if WAKE_AGENTS in said:
            hub.wake_here()
        if RING_JOBS in said:
            app.state.job_bell.ring()

    hub.attach_siblings(worker.link.send)
    loop.add_reader(inbox.fileno(), heard)
    try:
        yield
    finally:
        loop.remove_reader(inbox.fileno())


def run_worker_processes(config: ServerConfig, count: int, sockets: list[socket.socket]) -> None:
    """Serve ``sockets`` from ``count`` worker processes (:mod:`reelsync.server.workers`) until
    SIGTERM or SIGINT; the database is upgraded once, here, before they start."""
    logging.config.dictConfig(log_config(config.log_level))
    database = Database(config.database_url)
    try:
        database.upgrade()
    finally:
        database.dispose()  # no connection crosses the fork
    # the keys made at first use are made once, here, not raced for by the workers
    TicketSigner.load_or_create(config.ca_file.parent)
    load_or_create_key(config.data_dir / UI_KEY_FILE)

    def start(worker: Worker) -> int:
        with control_plane(config, worker) as app:
            serve(config, app, sockets, worker=worker.index + 1)
        return 0

    run_workers(config, count, start)
