"""The HTTP boundary of the client: one httpx.AsyncClient per session, and the one place where
httpx's failures and the server's error bodies become reelsync errors. Rules: a server error is
rebuilt as the same class with ``remote=True`` (:func:`reelsync.errors.error_from_code`); a server
that cannot be reached is a ConnectionLostError naming the URL and the reason; a certificate that
does not verify is a ConfigError saying how to trust the workspace CA; the API key only ever goes
into the Authorization header, never into a message or a log.

Retries: a request that failed on the way is sent again with growing pauses (0.2 s doubling, up
to 2 s) for up to ``config.retry_s`` seconds (20 s by default: a control-plane restart is ridden
out): always when the connection could not be made
(nothing reached the server), and for a dropped connection, a timeout or a 502/503/504 answer only
when sending it twice is harmless -- GET, PUT, DELETE, or a POST carrying an ``Idempotency-Key``
(job submits and task appends do). A server's own error answer (4xx, 500) is never retried, nor
its answer that no agent is online where the request needs one (``agent_offline``, a 503): an
agent is started by a person, so the operator gets that line at once, not after 20 s.
When the retries run out, the error says to run the command again."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from typing import Any

import httpx

from reelsync.client.early import API_PREFIX, default_headers, tls_verify
from reelsync.config import ClientConfig
from reelsync.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionLostError,
    InternalError,
    NotFoundError,
    PermissionDeniedError,
    ReelsyncError,
    UnavailableError,
    error_from_code,
)

__all__ = ["API_PREFIX", "Transport", "error_from_response"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_STATUS = frozenset({502, 503, 504})
_AGAIN = "the control plane is down or restarting: run the same command again once it answers"
_FIRST_PAUSE, _MAX_PAUSE = 0.2, 2.0


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def _reason(exc: httpx.TransportError) -> str:
    node: BaseException | None = exc
    while node is not None:
        if isinstance(node, OSError) and node.errno:
            return os.strerror(node.errno).lower()
        if isinstance(node, OSError) and node.strerror:
            return node.strerror.lower()
        node = node.__cause__ or node.__context__
    return (str(exc) or type(exc).__name__).lower()


def error_from_response(response: httpx.Response) -> ReelsyncError:
    """The reelsync error an HTTP error response stands for."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("code"), str):
        hint = err.get("hint")
        return error_from_code(
            err["code"],
            str(err.get("message") or err["code"]),
            hint=hint if isinstance(hint, str) else None,
            remote=True,
        )
    status = response.status_code
    detail = body.get("detail") if isinstance(body, dict) else None
    message = f"{response.request.method} {response.request.url.path}: HTTP {status}"
    if detail:
        message += f": {detail}"
    by_status: dict[int, type[ReelsyncError]] = {
        401: AuthenticationError,
        403: PermissionDeniedError,
        404: NotFoundError,
        503: UnavailableError,
    }
    cls = by_status.get(status, InternalError if status >= 500 else ReelsyncError)
    return cls(message, remote=True)


class Transport:
    """JSON over HTTP(S) to one control plane."""

    def __init__(self, config: ClientConfig, *, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self._http = httpx.AsyncClient(
            base_url=config.url + API_PREFIX,
            headers=default_headers(config),
            verify=tls_verify(config),
            timeout=config.timeout_s,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        first: httpx.Response | None = None,
    ) -> Any:
        """Send one request (retried as the module says); the decoded JSON body (None for an
        empty one) or a reelsync error. ``first``: the answer to this same request sent
        already (:class:`~reelsync.client.early.EarlyRequest`), taken as its first attempt."""
        if auth and not self.config.api_key:
            raise AuthenticationError(
                "no API key",
                hint="run `reelsync login`, or set REELSYNC_API_USER and REELSYNC_API_KEY",
            )
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        repeatable = method.upper() in _IDEMPOTENT or bool(headers and "Idempotency-Key" in headers)
        deadline = time.monotonic() + self.config.retry_s
        pause = _FIRST_PAUSE
        while True:
            response: httpx.Response | None
            if first is not None:  # the answer of an attempt made already
                response, error, unsent, first = first, None, False, None
            else:
                response, error, unsent = await self._send(method, path, json_body, clean, headers)
            retry = unsent or repeatable
            if response is not None:
                if response.status_code < 400:
                    break
                error = error_from_response(response)
                retry = repeatable and response.status_code in _RETRY_STATUS and error.worth_waiting
            assert error is not None
            if not retry or time.monotonic() + pause > deadline:
                if isinstance(error, ConnectionLostError | UnavailableError) and not error.hint:
                    error.hint = _AGAIN
                raise error
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)
        if not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InternalError(
                f"{method} {path}: the server answered something that is not JSON", remote=True
            ) from exc

    async def _send(
        self,
        method: str,
        path: str,
        json_body: Any,
        params: dict[str, Any],
        headers: dict[str, str] | None,
    ) -> tuple[httpx.Response | None, ReelsyncError | None, bool]:
        """One attempt: the response, or the error and whether the request surely never left."""
        try:
            response = await self._http.request(
                method, path, json=json_body, params=params or None, headers=headers
            )
        except httpx.TimeoutException as exc:
            lost = ConnectionLostError(f"{self.config.url} did not answer in time")
            lost.__cause__ = exc
            return None, lost, isinstance(exc, httpx.ConnectTimeout)
        except httpx.TransportError as exc:
            root = _root_cause(exc)
            if isinstance(root, ssl.SSLCertVerificationError):
                raise ConfigError(
                    f"cannot verify the TLS certificate of {self.config.url}: "
                    f"{root.verify_message or root.reason}",
                    hint="pass --ca-file DATA_DIR/tls/ca.crt or set REELSYNC_CA_FILE",
                ) from exc
            lost = ConnectionLostError(f"cannot reach {self.config.url}: {_reason(exc)}")
            lost.__cause__ = exc
            return None, lost, isinstance(exc, httpx.ConnectError)
        return response, None, False
