"""Webhooks: signed JSON POSTs for job events, a sender on httpx and an in-memory twin.

Rules:
- The body is compact JSON (UTF-8). The signature is HMAC-SHA256, keyed by the webhook's secret,
  over ``<timestamp>.<raw body>`` (so a captured request cannot be replayed later with a new
  timestamp); headers ``X-Reelsync-Timestamp: <unix seconds>`` and
  ``X-Reelsync-Signature: sha256=<hex>``. ``X-Reelsync-Event`` names the event and
  ``X-Reelsync-Delivery`` is stable across retries of one event, for receivers to drop duplicates.
- Receivers call :func:`verify_signature` on the raw body before parsing it.
- Any answer but 2xx, a timeout or a network error raises :class:`UnavailableError`: the outbox
  retries with backoff.
- No requests to the control plane's own network unless an admin allows them (server setting
  ``webhook_allow_private``): the host is resolved first and a loopback, link-local, private or
  otherwise non-global address is refused (:class:`PermissionDeniedError`, not retried); the
  request then goes to the address checked (``Host`` and TLS name kept), so a name that
  resolves differently a moment later cannot redirect it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from reelsync.errors import AuthenticationError, PermissionDeniedError, UnavailableError
from reelsync.services.webhooks import WEBHOOK_EVENTS, parse_events

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WEBHOOK_EVENTS",
    "HttpWebhookSender",
    "MemoryWebhookSender",
    "SignedRequest",
    "WebhookSender",
    "parse_events",
    "sign",
    "sign_request",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Reelsync-Signature"
TIMESTAMP_HEADER = "X-Reelsync-Timestamp"
EVENT_HEADER = "X-Reelsync-Event"
DELIVERY_HEADER = "X-Reelsync-Delivery"
DEFAULT_TOLERANCE_S = 300.0


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What goes on the wire: the raw body and the headers that sign it."""

    body: bytes
    headers: Mapping[str, str]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``<timestamp>.`` + body)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def sign_request(
    secret: str,
    payload: Mapping[str, Any],
    *,
    event: str,
    delivery: str,
    now: float | None = None,
) -> SignedRequest:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    ts = int(time.time() if now is None else now)
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
    }
    return SignedRequest(body=body, headers=headers)


def verify_signature(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """For receivers: raise :class:`AuthenticationError` unless the request is genuine and fresh.

    ``headers`` may be any case-insensitive mapping (httpx, Starlette) or a plain dict.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    ts_text = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not ts_text.isdigit() or not given:
        raise AuthenticationError("the webhook request is not signed")
    ts = int(ts_text)
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise AuthenticationError("the webhook request's timestamp is too old or in the future")
    if not hmac.compare_digest(sign(secret, ts, body), given):
        raise AuthenticationError("the webhook signature does not match")


class WebhookSender(Protocol):
    """POSTs one signed request to ``url``; raises :class:`UnavailableError` unless it was taken."""

    async def post(self, url: str, request: SignedRequest) -> None: ...


class HttpWebhookSender:
    """The real sender on an httpx.AsyncClient (give one to share its pool, or let it make one)."""

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        timeout_s: float = 10.0,
        allow_private: bool = False,
    ) -> None:
        self._client = client
        self._timeout = timeout_s
        self.allow_private = allow_private

    async def post(self, url: str, request: SignedRequest) -> None:
        if self._client is not None:
            await self._post(self._client, url, request)
            return
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
            await self._post(client, url, request)

    async def _pinned(self, url: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(URL to the checked address, extra headers, request extensions) for ``url``."""
        if self.allow_private:
            return url, {}, {}
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise UnavailableError(f"webhook {url}: cannot resolve {host!r}: {exc}") from exc
        addresses = [str(info[4][0]) for info in infos]
        for text in addresses:
            address = ipaddress.ip_address(text.split("%")[0])
            if not address.is_global or address.is_multicast:
                raise PermissionDeniedError(
                    f"webhook {url} leads to {address}, an address of a private, loopback or "
                    "link-local network",
                    hint="an admin may allow those with the server setting webhook_allow_private",
                )
        first = addresses[0]
        netloc = f"[{first}]" if ":" in first else first
        if parts.port is not None:
            netloc += f":{parts.port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        return pinned, {"Host": host_header}, extensions

    async def _post(self, client: httpx.AsyncClient, url: str, request: SignedRequest) -> None:
        target, headers, extensions = await self._pinned(url)
        try:
            response = await client.post(
                target,
                content=request.body,
                headers={**request.headers, **headers},
                timeout=self._timeout,
                extensions=extensions,
            )
        except httpx.HTTPError as exc:
            raise UnavailableError(f"webhook {url} is unreachable: {exc!r}") from exc
        if not 200 <= response.status_code < 300:
            raise UnavailableError(
                f"webhook {url} answered HTTP {response.status_code}: {response.text[:200]}"
            )


@dataclass(slots=True)
class MemoryWebhookSender:
    """The in-memory twin: records ``(url, request)``; ``fail_with`` simulates a dead receiver."""

    posted: list[tuple[str, SignedRequest]] = field(default_factory=list)
    fail_with: Exception | None = None

    async def post(self, url: str, request: SignedRequest) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.posted.append((url, request))
