"""The one table from exceptions to HTTP responses. Endpoints just raise.

Rules: a :class:`ReelsyncError` answers its class's ``http_status`` with
``{"error": {"code", "message", "hint"?}}`` (a :class:`UserError`, even a 501 for what reelsync
does not offer, is logged at most as one INFO line: a caller cannot fill the log with tracebacks);
a request that does not match the schema answers 422 with code ``invalid`` and one readable line
naming the field; an unknown route or method keeps its 404/405 in the same shape; a client that
hangs up mid-request is logged as such (no traceback); anything else is a bug: logged with its
traceback, answered 500 with code ``internal`` and no detail. The accsyn adapter answers in its
own shape and installs its own handler for its routes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from reelsync.errors import AuthenticationError, InternalError, ReelsyncError, UserError

__all__ = ["EXCEPTION_HANDLERS", "error_body", "install_error_handlers", "validation_message"]

_log = logging.getLogger("reelsync.server")


def error_body(code: str, message: str, hint: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if hint:
        body["hint"] = hint
    return {"error": body}


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """Pydantic's error list as one line: ``body.email: Field required; query.limit: ...``."""
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def _reelsync(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReelsyncError)
    if isinstance(exc, UserError):  # the caller's mistake (a 501 too): one line, no traceback
        if exc.http_status >= 500:
            _log.info("%s %s: %s", request.method, request.url.path, exc.message)
    elif exc.http_status >= 500 and not exc.retryable:
        _log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status, headers=headers)


def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        error_body("invalid", validation_message(list(exc.errors()))), status_code=422
    )


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated"}
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}"
    return JSONResponse(
        error_body(codes.get(exc.status_code, "error"), message),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def _gone(request: Request, exc: Exception) -> JSONResponse:
    """The client hung up while we read its request (an agent killed mid-call): not a bug."""
    _log.info("%s %s: the client went away mid-request", request.method, request.url.path)
    return JSONResponse(error_body("connection_lost", "the client went away"), status_code=400)


def _bug(request: Request, exc: Exception) -> JSONResponse:
    _log.error("%s %s crashed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body(InternalError.code, "internal server error (logged on the server)"),
        status_code=500,
    )


#: exception class -> handler; the most specific class wins (Starlette looks up the MRO).
EXCEPTION_HANDLERS: dict[type[Exception], Callable[[Request, Exception], JSONResponse]] = {
    ReelsyncError: _reelsync,
    RequestValidationError: _invalid,
    StarletteHTTPException: _http,
    ClientDisconnect: _gone,
    Exception: _bug,
}


def install_error_handlers(app: FastAPI) -> None:
    for cls, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(cls, handler)
