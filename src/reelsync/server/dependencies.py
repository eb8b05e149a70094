"""Request dependencies every router may use: the Database, the ServerConfig and the calling
:class:`Actor` (``Authorization: Bearer <api key>``). ``create_app`` puts the first two on
``app.state``; no router builds its own. They are coroutines, so FastAPI runs them on the event
loop: a plain ``def`` dependency costs a hop to the thread pool and back on every request, and
only the API key's look-up touches the database (it alone goes to a thread)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.domain.records import Actor
from reelsync.errors import AuthenticationError
from reelsync.server.intake import cached_actor
from reelsync.services import auth
from reelsync.services.jobs import SubmitHook

__all__ = [
    "CurrentActor",
    "DatabaseDep",
    "ServerConfigDep",
    "SubmitHookDep",
    "bearer_actor",
    "get_config",
    "get_database",
    "get_submit_hook",
]

_bearer = HTTPBearer(auto_error=False, description="a reelsync API key")


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_config(request: Request) -> ServerConfig:
    config: ServerConfig = request.app.state.config
    return config


async def get_submit_hook(request: Request) -> SubmitHook | None:
    """The pre-submit hook ``create_app`` was given (None: no hook)."""
    hook: SubmitHook | None = getattr(request.app.state, "submit_hook", None)
    return hook


DatabaseDep = Annotated[Database, Depends(get_database)]
SubmitHookDep = Annotated[SubmitHook | None, Depends(get_submit_hook)]
ServerConfigDep = Annotated[ServerConfig, Depends(get_config)]


async def bearer_actor(
    request: Request,
    database: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The Actor of the request's API key (checked by the intake already when the request has
    a body); 401 without one."""
    known = cached_actor(request.scope)
    if known is not None:
        return known
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationError(
            "this endpoint needs an API key", hint="send Authorization: Bearer <api key>"
        )
    return await run_in_threadpool(auth.authenticate, database, credentials.credentials)


CurrentActor = Annotated[Actor, Depends(bearer_actor)]
