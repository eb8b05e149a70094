"""The accsyn v3 HTTP endpoints: login, events, the workspace lookup, and a catch-all.

Rules: every answer is a JSON object the official client can read: ``{"result": ...}`` on
success, ``{"message", "message_hr"}`` on failure (never a bare FastAPI ``detail``); each event is
authenticated by its own Authorization header and runs in one database transaction, so a failed
event changes nothing. The HTTP status follows the error class (the client ignores it). An
``Idempotency-Key`` header (not sent by the official client) makes a job or task create happen once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import anyio.from_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from reelsync.config import DEFAULT_FENCE_S, ServerConfig
from reelsync.db import Database
from reelsync.domain.fileops import FileOperator, FileRequest, NoAgentFileOperator
from reelsync.errors import AuthenticationError, InternalError, ReelsyncError, ValidationError
from reelsync.server.accsyn import handlers
from reelsync.server.accsyn.call import Backend, PendingFileOp
from reelsync.server.accsyn.dispatch import lookup
from reelsync.server.accsyn.handlers.reports import Report
from reelsync.server.accsyn.wire import (
    Envelope,
    decode_body,
    decode_query_string,
    dumps,
    error_body,
    parse_authorization,
    parse_envelope,
)

__all__ = ["LOOKUP_PATH", "build_router"]

_log = logging.getLogger("reelsync.server.accsyn")

#: The path of the client's "where does this workspace live" lookup (sent to ACCSYN_PROXY).
LOOKUP_PATH = "/api/v3/J3PKTtDvolDMBtTy6AFGA"

handlers.register()


def _answer(body: dict[str, Any], status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


def _result_body(result: Any) -> bytes:
    if isinstance(result, Report):  # the client reads the top-level "report"
        return dumps({"result": result.text, "report": result.text})
    return dumps({"result": result})


def _error(exc: BaseException) -> Response:
    if isinstance(exc, ReelsyncError):
        return _answer(error_body(exc.message, str(exc)), exc.http_status)
    incident = uuid.uuid4().hex[:12]
    _log.exception("accsyn event failed (incident %s)", incident)
    message = f"the server failed to handle the request (incident {incident}; see its log)"
    return _answer(error_body(message), 500)


async def _envelope(request: Request) -> Envelope:
    if request.method in ("GET", "DELETE"):
        payload = decode_query_string(request.scope.get("query_string", b""))
    else:
        payload = decode_body(await request.body())
    return parse_envelope(payload)


def _check_workspace(request: Request, backend: Backend, envelope: Envelope | None) -> None:
    header = request.headers.get("x-accsyn-workspace")
    code = backend.workspace_code()
    if header is not None and header.strip().lower() != code.lower():
        raise AuthenticationError(
            f"this server hosts workspace {code!r}, not {header.strip()!r}",
            hint="set ACCSYN_WORKSPACE to the workspace code given at 'reelsync server init'",
        )
    named = envelope.workspace if envelope is not None else None
    if named is not None and named.lower() != code.lower():
        raise AuthenticationError(f"this server hosts workspace {code!r}, not {named!r}")
    if header is None and (envelope is None or envelope.workspace is None):
        raise AuthenticationError("no workspace given: send the X-Accsyn-Workspace header")


async def _run_files(operator: FileOperator, pending: PendingFileOp) -> Any:
    if pending.labels is None:
        return await operator.run(pending.requests[0])
    return [
        {"path": label, "result": await operator.run(request)}
        for label, request in zip(pending.labels, pending.requests, strict=True)
    ]


def _app_database(request: Request) -> Database:
    database = getattr(request.app.state, "database", None)
    if not isinstance(database, Database):
        raise InternalError("the app has no database (create_app puts it on app.state)")
    return database


def build_router(
    database_of: Callable[[Request], Database] | None = None,
    *,
    file_operator: FileOperator | None = None,
) -> APIRouter:
    """The accsyn routes, for ``create_app(config, db, routers=[build_router()])``.

    ``database_of(request)`` gives the Database (default: ``request.app.state.database``, where
    create_app puts it); ``file_operator`` serves ``workspace/file`` (default: no agent)."""
    find_database = database_of or _app_database
    operator: FileOperator = file_operator or NoAgentFileOperator()
    router = APIRouter(include_in_schema=False)
    backends: dict[int, Backend] = {}

    def backend_of(request: Request) -> Backend:
        db = find_database(request)
        backend = backends.get(id(db))
        if backend is None or backend.db is not db:
            backend = backends[id(db)] = Backend(db)
        return backend

    def list_files(file_request: FileRequest, timeout_s: float | None = None) -> Any:
        """A file operation from a handler's worker thread, run on the event loop; given
        ``timeout_s``, it is given up after that long (TimeoutError)."""
        if timeout_s is None:
            return anyio.from_thread.run(operator.run, file_request)

        async def bounded() -> Any:
            with anyio.fail_after(timeout_s):
                return await operator.run(file_request)

        return anyio.from_thread.run(bounded)

    @router.put("/api/v3/api/login")
    async def login(request: Request) -> Response:
        try:
            backend = backend_of(request)
            _check_workspace(request, backend, None)
            credentials = parse_authorization(request.headers.get("authorization"))
            body = await request.body()
            session_id = None
            if body.strip():
                payload = decode_body(body)
                if isinstance(payload, dict) and isinstance(payload.get("session_id"), str):
                    session_id = payload["session_id"]
            actor = await run_in_threadpool(backend.authenticate, credentials)
            return _answer(
                {
                    "result": {
                        "id": actor.user_id,
                        "role": actor.role.value,
                        "session_id": session_id or uuid.uuid4().hex,
                        "workspace": backend.workspace_code(),
                    }
                }
            )
        except Exception as exc:  # the wire boundary answers every error
            return _error(exc)

    @router.api_route("/api/v3/event", methods=["GET", "POST", "PUT", "DELETE"])
    async def event(request: Request) -> Response:
        try:
            backend = backend_of(request)
            envelope = await _envelope(request)
            _check_workspace(request, backend, envelope)
            credentials = parse_authorization(request.headers.get("authorization"))
            kind, action, handler = lookup(request.method, envelope.segments)

            hook = getattr(request.app.state, "submit_hook", None)
            key = request.headers.get("idempotency-key")  # a job or task create sent once
            config = getattr(request.app.state, "config", None)  # create_app puts it there
            fence_s = config.fence_s if isinstance(config, ServerConfig) else DEFAULT_FENCE_S

            def run() -> Any:  # in a worker thread: the event and its answer's encoding
                done = backend.run(
                    credentials,
                    handler,
                    envelope,
                    request.method,
                    kind,
                    action,
                    hook,
                    list_files,
                    key,
                    fence_s,
                )
                return done if isinstance(done, PendingFileOp) else _result_body(done)

            result = await run_in_threadpool(run)
            if isinstance(result, PendingFileOp):
                result = _result_body(await _run_files(operator, result))
            return Response(result, status_code=200, media_type="application/json")
        except Exception as exc:
            return _error(exc)

    @router.get(LOOKUP_PATH)
    async def workspace_lookup(request: Request) -> Response:
        try:
            backend = backend_of(request)
            url = request.url
            port = url.port or (443 if url.scheme == "https" else 80)
            return _answer(
                {
                    "result": {
                        "hostname": url.hostname,
                        "port": port,
                        "workspace": backend.workspace_code(),
                    }
                }
            )
        except Exception as exc:
            return _error(exc)

    @router.api_route("/api/v3/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def unknown(rest: str) -> Response:
        return _error(
            ValidationError(
                f"unknown accsyn endpoint /api/v3/{rest}",
                hint="the accsyn API has PUT /api/v3/api/login and /api/v3/event",
            )
        )

    return router
