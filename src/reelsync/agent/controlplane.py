"""The agent's HTTP link to the control plane (``/api/v1/agent``). Rules: the agent only dials
out; every call but ``enroll`` carries ``Authorization: Agent <secret>`` and is signed with the
agent's private key (:class:`reelsync.pki.RequestSigner`: method, path and query, time, nonce,
body digest; the certificate goes along), so the secret alone is not enough; the server is verified
against the workspace CA (``ca.crt``); failures become reelsync errors here, once: unreachable
-> ConnectionLostError (the daemon backs off and retries), an error body -> the same class as
on the server (:func:`reelsync.client.transport.error_from_response`)."""

from __future__ import annotations

import getpass
import logging
import ssl
from collections.abc import Callable, Collection, Generator, Sequence
from pathlib import Path
from typing import Any

import httpx

from reelsync import __version__
from reelsync.client.transport import error_from_response
from reelsync.domain.hostos import host_os
from reelsync.errors import ConfigError, ConnectionLostError, InternalError
from reelsync.pki import RequestSigner

__all__ = ["AGENT_API", "ControlPlane"]

AGENT_API = "/api/v1/agent"
_log = logging.getLogger("reelsync.agent")


def _verify(url: str, ca_file: Path | None, insecure: bool) -> ssl.SSLContext | bool:
    if insecure or not url.startswith("https://"):
        return False
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load CA file {ca_file}: {exc}") from exc


class _SignedRequests(httpx.Auth):
    """Signs every request with the agent's key (headers of :class:`RequestSigner`)."""

    requires_request_body = True

    def __init__(self, signer: RequestSigner) -> None:
        self.signer = signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("ascii")
        request.headers.update(self.signer.headers(request.method, target, request.content))
        yield request


class ControlPlane:
    """The control plane as an agent sees it: one URL, or every replica's (the agent uses one at
    a time and moves to the next as soon as a call cannot reach it; ``on_switch(url)`` is told).
    Use ``async with`` or call :meth:`aclose`."""

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        secret: str | None = None,
        signer: RequestSigner | None = None,
        ca_file: Path | None = None,
        insecure: bool = False,
        timeout_s: float = 30.0,
        on_switch: Callable[[str], None] | None = None,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        self.on_switch = on_switch
        if not urls:
            raise ConfigError("the agent needs the control plane's URL")
        for each in urls:
            if not each.startswith(("http://", "https://")):
                raise ConfigError(
                    f"the server URL must start with https:// or http://, got {each!r}"
                )
        self.urls = tuple(u.rstrip("/") for u in urls)
        self._current = 0
        headers = {"User-Agent": f"reelsync-agent/{__version__}", "Accept": "application/json"}
        if secret:
            headers["Authorization"] = f"Agent {secret}"
        self._clients = [
            httpx.AsyncClient(
                base_url=each + AGENT_API,
                headers=headers,
                verify=_verify(each, ca_file, insecure),
                timeout=timeout_s,
                auth=_SignedRequests(signer) if signer is not None else None,
            )
            for each in self.urls
        ]

    @property
    def url(self) -> str:
        """The control plane in use now."""
        return self.urls[self._current]

    async def __aenter__(self) -> ControlPlane:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One call on the control plane in use; unreachable -> the next one at once (each
        tried once per call), and the last error when none answers."""
        error: ConnectionLostError | None = None
        for _ in self.urls:
            index = self._current
            try:
                return await self._call_one(index, method, path, body, params, timeout)
            except ConnectionLostError as exc:
                if len(self.urls) == 1:
                    raise
                error = exc
                if self._current == index:
                    self._current = (index + 1) % len(self.urls)
                    _log.warning(
                        "control plane %s unreachable: using %s", self.urls[index], self.url
                    )
                    if self.on_switch is not None:
                        self.on_switch(self.url)
        raise ConnectionLostError(f"no control plane answers (last: {error})") from error

    async def _call_one(
        self,
        index: int,
        method: str,
        path: str,
        body: Any,
        params: dict[str, Any] | None,
        timeout: float | None,
    ) -> Any:
        url = self.urls[index]
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = await self._clients[index].request(
                method, path, json=body, params=params, **extra
            )
        except httpx.TimeoutException as exc:
            raise ConnectionLostError(f"{url} did not answer in time") from exc
        except httpx.TransportError as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                raise ConfigError(
                    f"cannot verify the TLS certificate of {url}",
                    hint="pass --ca-file with the workspace CA (server DATA_DIR/tls/ca.crt)",
                ) from exc
            raise ConnectionLostError(f"cannot reach {url}: {exc or type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        try:
            return response.json() if response.content else None
        except ValueError as exc:
            raise InternalError(f"{method} {path}: the answer is not JSON", remote=True) from exc

    async def enroll(self, *, token: str, hostname: str, csr_pem: str) -> dict[str, Any]:
        body = {"token": token, "hostname": hostname, "csr": csr_pem, "version": __version__}
        answer: dict[str, Any] = await self._call("POST", "/enroll", body=body)
        return answer

    async def heartbeat(
        self,
        *,
        peer_address: str | None,
        peer_port: int | None,
        dialable: bool,
        rate_sent: float | None = None,
        rate_received: float | None = None,
        bandwidth_limit: float | None = None,
        started: bool = False,
    ) -> dict[str, Any]:
        """Check in: peer endpoint, and bandwidth (bytes/s: rates over the last interval, the
        limit applied); ``started``: this process's first check-in (it holds no lease yet)."""
        body = {
            "version": __version__,
            "peer_address": peer_address,
            "peer_port": peer_port,
            "dialable": dialable,
            "rate_sent": rate_sent,
            "rate_received": rate_received,
            "bandwidth_limit": bandwidth_limit,
            "started": started,
            "os": host_os(),
            "username": _username(),
        }
        answer: dict[str, Any] = await self._call("POST", "/heartbeat", body=body)
        return answer

    async def work(
        self,
        *,
        wait_s: float,
        transfers: int,
        pace: dict[str, float] | None = None,
        held: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """Long-poll: transfers (at most ``transfers``; 0: file operations only) and fileops;
        ``pace``: this agent's measured rates (:class:`reelsync.agent.pace.Pace`); ``held``:
        every transfer this agent holds (running, or with results not yet reported): the control
        plane releases the tasks leased to it under any other one (a work answer it never got)."""
        params: dict[str, Any] = {"wait": wait_s, "transfers": transfers, **(pace or {})}
        if held is not None:
            params["held"] = ",".join(sorted(held))
        answer: dict[str, Any] = await self._call(
            "GET", "/work", params=params, timeout=wait_s + 30.0
        )
        return answer

    async def report(
        self, results: list[dict[str, Any]], *, stopped: Collection[str] = ()
    ) -> dict[str, Any]:
        """Send reports (``stopped``: revoked transfers whose work has ended); the answer
        ``{applied: [task ids], revoked: [task ids]}``."""
        body: dict[str, Any] = {"results": results}
        if stopped:
            body["stopped"] = sorted(stopped)
        answer = await self._call("POST", "/report", body=body)
        return answer if isinstance(answer, dict) else {}

    async def bye(self) -> None:
        """A clean stop: offline at once, leases back to the queue."""
        await self._call("POST", "/bye", timeout=5.0)

    async def fileop_result(self, answer: dict[str, Any]) -> None:
        await self._call("POST", "/fileop-result", body=answer)


def _username() -> str | None:
    """The account the agent runs as (shown to admins as the server's ``username``)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER
        return None
