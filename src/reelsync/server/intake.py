"""What every request passes before an endpoint reads it (plain ASGI middleware, outermost).

Rules:
- Sign-in throttle per source address (:class:`SignInThrottle`): each answer 401 to a request that
  carried credentials (an ``Authorization`` header, the web UI's sign-in form) costs the address a
  token; with none left, a request from it whose credentials fail is held :data:`SLOW_S` and
  answered 429 with ``Retry-After`` instead of 401. Tokens come back at a steady rate; good
  credentials cost none and always pass, so the real owner is never locked out, not even behind
  the same address (a site's NAT) as a guesser or a script with a stale key.
- Each route has a body limit (:data:`ROUTES`, first match wins): a ``Content-Length`` over it is
  413 before anything is read, and a body that grows over it while being read (chunked) is 413 at
  that point, never buffered further.
- A route that needs credentials checks them before its body is read, when the method carries a
  body: the native API's API key (the :class:`Actor` is kept for the endpoint, see
  :func:`cached_actor`), the agents' secret (the signature over the body is checked later by the
  agents' router) and the accsyn API's ``basic`` header. An unauthenticated upload is refused
  after its headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from reelsync.db import Database
from reelsync.domain.records import Actor, Server
from reelsync.errors import (
    AuthenticationError,
    RateLimitedError,
    ReelsyncError,
    TooLargeError,
)
from reelsync.server.accsyn.wire import error_body as accsyn_error_body
from reelsync.server.accsyn.wire import parse_authorization
from reelsync.services import auth, catalog, servers

__all__ = ["ROUTES", "Intake", "RouteRule", "SignInThrottle", "cached_actor", "cached_agent"]

_log = logging.getLogger("reelsync.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: how long a failed sign-in from an address over its budget is held before its 429
SLOW_S = 1.0
KIB = 1024
MIB = 1024 * KIB
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ACTOR_KEY = "reelsync_actor"
_AGENT_KEY = "reelsync_agent"


@dataclass(frozen=True, slots=True)
class RouteRule:
    """Requests whose method is in ``methods`` (all when empty) and whose path matches
    ``path``: at most ``limit`` body bytes; ``auth`` checked before the body."""

    path: re.Pattern[str]
    limit: int
    auth: Literal["bearer", "agent", "accsyn"] | None = None
    methods: frozenset[str] = frozenset()

    def matches(self, method: str, path: str) -> bool:
        return (not self.methods or method in self.methods) and self.path.match(path) is not None


def _rule(
    path: str, limit: int, auth: Literal["bearer", "agent", "accsyn"] | None, *methods: str
) -> RouteRule:
    return RouteRule(re.compile(path), limit, auth, frozenset(methods))


#: The body limits and credentials of every route, first match wins.
ROUTES: tuple[RouteRule, ...] = (
    _rule(r"/api/v1/agent/enroll$", 64 * KIB, None),
    _rule(r"/api/v1/agent/report$", 32 * MIB, "agent"),  # up to 100,000 results
    _rule(r"/api/v1/agent/", 1 * MIB, "agent"),
    _rule(r"/api/v1/jobs(/[^/]+/tasks)?/?$", 64 * MIB, "bearer", "POST", "PATCH"),  # submits
    _rule(r"/api/v1/", 1 * MIB, "bearer"),
    _rule(r"/api/v3/event$", 64 * MIB, "accsyn"),  # accsyn submits and bulk creates
    _rule(r"/api/v3/", 64 * KIB, None),
    _rule(r"/ui(/|$)", 64 * KIB, None),
    _rule(r"", 64 * KIB, None),
)


def rule_for(method: str, path: str) -> RouteRule:
    for rule in ROUTES:
        if rule.matches(method, path):
            return rule
    return ROUTES[-1]


def cached_actor(scope: Scope) -> Actor | None:
    """The Actor the intake authenticated for this request (None: it did not)."""
    found = (scope.get("state") or {}).get(_ACTOR_KEY)
    return found if isinstance(found, Actor) else None


def cached_agent(scope: Scope) -> Server | None:
    """The agent whose secret the intake checked for this request (None: it did not)."""
    found = (scope.get("state") or {}).get(_AGENT_KEY)
    return found if isinstance(found, Server) else None


class SignInThrottle:
    """Failed sign-ins per source address: a bucket of ``burst`` tokens refilled at ``per_s``
    tokens a second; at most ``max_addresses`` remembered (the oldest forgotten first)."""

    def __init__(
        self, *, burst: int = 20, per_s: float = 1.0, max_addresses: int = 100_000
    ) -> None:
        self.burst = burst
        self.per_s = per_s
        self.max_addresses = max_addresses
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _get(self, address: str) -> tuple[float, float] | None:
        """``address``'s bucket: (tokens, when counted), None when it has none."""
        return self._buckets.get(address)

    def _put(self, address: str, tokens: float, then: float) -> None:
        self._buckets[address] = (tokens, then)
        self._buckets.move_to_end(address)
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)

    def _tokens(self, address: str, now: float) -> float:
        tokens, then = self._get(address) or (float(self.burst), now)
        return min(float(self.burst), tokens + (now - then) * self.per_s)

    def wait_s(self, address: str, now: float | None = None) -> float:
        """0 when ``address`` may try to sign in now, else the seconds until it may."""
        if self._get(address) is None:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens = self._tokens(address, now)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.per_s

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._put(address, max(0.0, self._tokens(address, now) - 1), now)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    payload = json.dumps(body).encode()

    async def respond(send: Send) -> None:
        raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})

    return respond


def _refusal(path: str, exc: ReelsyncError, headers: dict[str, str] | None = None) -> Any:
    """``exc`` in the shape of the API that ``path`` belongs to."""
    if path.startswith("/api/v3/"):
        return _json(exc.http_status, accsyn_error_body(exc.message, str(exc)), headers)
    if isinstance(exc, AuthenticationError) and not path.startswith("/api/v1/agent/"):
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    return _json(exc.http_status, {"error": exc.to_dict()}, headers)


class Intake:
    """The middleware (see the module's rules); ``throttle`` is shared by the whole app."""

    def __init__(self, app: ASGIApp, *, throttle: SignInThrottle | None = None) -> None:
        self.app = app
        self.throttle = throttle or SignInThrottle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with catalog.request_scope():  # one check of the configuration's generation
            await self._request(scope, receive, send)

    async def _request(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        headers = Headers(scope=scope)
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        credentialed = "authorization" in headers or (method == "POST" and path == "/ui/login")
        rule = rule_for(method, path)
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > rule.limit:
            await _refusal(path, _too_large(rule))(send)
            return
        if rule.auth is not None and method in _BODY_METHODS:
            try:
                await self._authenticate(rule, scope, headers)
            except ReelsyncError as exc:
                if credentialed and exc.http_status == 401:
                    await self._failed(path, address, send, exc)
                else:
                    await _refusal(path, exc)(send)
                return
        await self._pass(scope, receive, send, rule, address if credentialed else None)

    async def _failed(
        self, path: str, address: str, send: Send, refusal: ReelsyncError | None
    ) -> None:
        """Credentials from ``address`` failed: count it; answer ``refusal`` (None: the
        endpoint's 401 went out already), or a slow 429 when the address is over its budget."""
        wait = self.throttle.wait_s(address)
        self.throttle.failed(address)
        if wait <= 0:
            if refusal is not None:
                await _refusal(path, refusal)(send)
            return
        retry = str(max(1, math.ceil(wait)))
        _log.info("slowed sign-ins from %s: too many failed attempts", address)
        await asyncio.sleep(SLOW_S)
        exc = RateLimitedError(
            "too many failed sign-in attempts from this address", hint=f"try again in {retry} s"
        )
        await _refusal(path, exc, {"Retry-After": retry})(send)

    async def _authenticate(self, rule: RouteRule, scope: Scope, headers: Headers) -> None:
        database: Database = scope["app"].state.database
        header = headers.get("authorization") or ""
        state = scope.setdefault("state", {})
        if rule.auth == "bearer":
            scheme, _, key = header.partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                raise AuthenticationError(
                    "this endpoint needs an API key", hint="send Authorization: Bearer <api key>"
                )
            state[_ACTOR_KEY] = await run_in_threadpool(auth.authenticate, database, key.strip())
        elif rule.auth == "agent":
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "agent" or not secret.strip():
                raise AuthenticationError(
                    "this endpoint is for enrolled agents",
                    hint="send Authorization: Agent <agent secret>",
                )
            state[_AGENT_KEY] = await run_in_threadpool(
                servers.authenticate_server, database, secret.strip()
            )
        else:
            credentials = parse_authorization(header or None)
            await run_in_threadpool(
                auth.authenticate, database, credentials.api_key, email=credentials.username
            )

    async def _pass(
        self, scope: Scope, receive: Receive, send: Send, rule: RouteRule, address: str | None
    ) -> None:
        received = 0
        too_large = False
        started = False
        refused = False  # a 401 held back: the throttle decides what goes out

        async def limited_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > rule.limit:
                    too_large = True
                    raise _too_large(rule)
            return message

        held: list[Message] = []

        async def watched_send(message: Message) -> None:
            nonlocal started, refused
            if message["type"] == "http.response.start":
                if too_large and message["status"] != 413:
                    return  # the endpoint's answer to a body we cut: ours goes instead
                if address is not None and message["status"] == 401:
                    refused = True
                    held.append(message)
                    return
                started = True
            elif refused:
                held.append(message)
                return
            elif not started:
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await _refusal(scope["path"], _too_large(rule))(send)
        elif refused and address is not None:
            if self.throttle.wait_s(address) <= 0:
                for message in held:  # within budget: the endpoint's own 401
                    await send(message)
                self.throttle.failed(address)
            else:
                await self._failed(scope["path"], address, send, None)


def _too_large(rule: RouteRule) -> TooLargeError:
    return TooLargeError(
        f"the request body is larger than this endpoint takes ({rule.limit // KIB} KiB)",
        hint="send less at a time (a big job can be submitted in parts)",
    )
