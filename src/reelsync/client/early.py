"""One request sent before the client's async core is loaded: a command whose first request
does the slow part on the server (``reelsync sync``'s ``POST /syncs``: the checks, a walk of
the folders at the source agent, the day's job) sends it as soon as its options are read, over a
synchronous httpx client in a thread, and loads the rest of what it needs (asyncio, the async
transport, the progress bars) while the server works.

Rules: the request is the one the :class:`~reelsync.client.transport.Transport` would send - the
same URL, headers, TLS verification and timeout (:func:`tls_verify`, :func:`default_headers`) -
and its answer goes through the Transport as the first attempt of that request
(``Transport.request(first=)``), so the result, the errors and their messages, and the retries
are the Transport's own. It is only tried when sending it twice is harmless (a GET, or a POST
with an ``Idempotency-Key``): an attempt that got no answer (no connection, a timeout, a TLS
error) yields nothing, and the Transport sends the request again and says what went wrong.
This module loads without asyncio."""

from __future__ import annotations

import ssl
import threading
from typing import Any

import httpx

from reelsync import __version__
from reelsync.config import ClientConfig
from reelsync.errors import ConfigError

__all__ = ["API_PREFIX", "EarlyRequest", "default_headers", "tls_verify"]

API_PREFIX = "/api/v1"


def tls_verify(config: ClientConfig) -> ssl.SSLContext | bool:
    """What httpx verifies the server's certificate with (``verify=``)."""
    if not config.verify:
        return False
    if config.ca_file is not None:
        try:
            return ssl.create_default_context(cafile=str(config.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load CA file {config.ca_file}: {exc}") from exc
    return True


def default_headers(config: ClientConfig) -> dict[str, str]:
    """The headers every request of a client with ``config`` carries."""
    headers = {"User-Agent": f"reelsync/{__version__}", "Accept": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    return headers


class EarlyRequest:
    """``method path`` sent now in a thread; :meth:`answer` waits for the server's answer. The
    client is made before the thread starts (its imports and TLS context in the caller's
    thread: the sending thread then only connects, sends and waits)."""

    def __init__(
        self,
        config: ClientConfig,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._response: httpx.Response | None = None
        try:
            client = httpx.Client(
                base_url=config.url + API_PREFIX,
                headers=default_headers(config),
                verify=tls_verify(config),
                timeout=config.timeout_s,
                transport=transport,
            )
        except Exception:  # a CA file that does not load: the Transport says so
            self._thread: threading.Thread | None = None
            return
        self._thread = threading.Thread(
            target=self._send,
            args=(client, method, path, json_body, headers),
            name="reelsync-early-request",
            daemon=True,
        )
        self._thread.start()

    def _send(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        json_body: Any,
        headers: dict[str, str] | None,
    ) -> None:
        try:
            with client:
                self._response = client.request(method, path, json=json_body, headers=headers)
        except Exception:  # no answer: the Transport sends it again and says what went wrong
            self._response = None

    def answer(self) -> httpx.Response | None:
        """The server's answer (its body read), or None when the attempt got none."""
        if self._thread is not None:
            self._thread.join()
        return self._response
