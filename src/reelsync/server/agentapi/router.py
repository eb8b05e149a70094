"""The agents' endpoints, ``/api/v1/agent``: enroll, heartbeat, work (long-poll), report,
fileop-result.

Rules: only ``enroll`` is open (it needs a one-time enrollment token); every other endpoint needs
``Authorization: Agent <agent secret>`` *and* a request signed with the agent's private key, by the
certificate recorded at enrollment (:class:`reelsync.pki.RequestVerifier`: fingerprint, workspace
CA, validity, signature over method, target, time, nonce and body digest, replay window). A
revoked agent is refused (401) whatever it presents. The control plane never dials an agent:
assignments and file operations wait in the agent's long-poll (``GET /work?wait=S``), which
answers as soon as there is something or when ``wait`` runs out, or at once when the server is
stopping. Each transfer carries a ticket signed by the control plane that the listening agent
verifies offline. While the router's app runs, a background loop sweeps (scheduler.sweep):
silent agents go offline and their leases expire.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field, field_validator
from pydantic import ValidationError as PydanticValidationError
from starlette.concurrency import run_in_threadpool

from reelsync import scheduler
from reelsync.db import Database
from reelsync.db.types import utcnow
from reelsync.domain.records import Server
from reelsync.errors import AuthenticationError, ValidationError
from reelsync.pki import CertificateAuthority, Ticket, TicketFile
from reelsync.scheduler.reports import MAX_ERROR_CHARS
from reelsync.server.agentapi.hub import AgentHub
from reelsync.server.dependencies import DatabaseDep
from reelsync.server.intake import cached_agent
from reelsync.services import acls, agents, servers

__all__ = ["build_router"]

_log = logging.getLogger("reelsync.server.agents")
_agent_header = APIKeyHeader(
    name="Authorization", auto_error=False, description="Agent <agent secret>"
)
#: A parked work long-poll runs the scheduling pass again after this long without a wake (work
#: that no wake announces: submitted through another replica, a retry's backoff or a fence run
#: out), doubling while the passes find nothing, up to :data:`_POLL_MAX_S`. A wake (a user's
#: write, a freed slot, a file operation) runs it at once and starts again from the shortest.
_POLL_S = 0.3
_POLL_MAX_S = 1.0  # under the relay's _ALIVE_S: a parked agent still counts as polling
_MAX_HELD_CHARS = 10_000  # ``held`` of a work poll: 200 transfer ids and more (agents send <= 200)


class EnrollBody(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    hostname: str = Field(min_length=1, max_length=255)
    csr: str = Field(min_length=1, max_length=20000)
    version: str | None = Field(default=None, max_length=64)


class HeartbeatBody(BaseModel):
    version: str | None = Field(default=None, max_length=64)
    peer_address: str | None = Field(default=None, max_length=255)
    peer_port: int | None = Field(default=None, ge=1, le=65535)
    dialable: bool = False
    rate_sent: float | None = Field(default=None, ge=0, description="bytes/s, last interval")
    rate_received: float | None = Field(default=None, ge=0, description="bytes/s, last interval")
    bandwidth_limit: float | None = Field(default=None, ge=0, description="bytes/s it applies")
    started: bool = Field(
        default=False, description="the first heartbeat of a new agent process: it holds nothing"
    )
    os: str | None = Field(default=None, pattern="^(linux|windows|mac)$")
    username: str | None = Field(default=None, max_length=255)


class ReportItem(BaseModel):
    task_id: str = Field(min_length=1, max_length=64)
    status: str = Field(pattern="^(executing|done|failed)$")
    bytes_done: int = Field(default=0, ge=0)
    size: int | None = Field(default=None, ge=0)
    error: str | None = None  # cut to MAX_ERROR_CHARS: a long message never refuses the item
    digest: str | None = Field(default=None, max_length=200)
    retryable: bool = True
    error_code: str | None = None  # the failure's code; an odd one is dropped, never refused
    files: int | None = Field(default=None, ge=0, description="a folder task: its file count")
    transfer_id: str | None = Field(
        default=None, max_length=64, description="the transfer this report is about (fencing)"
    )

    @field_validator("error", mode="before")
    @classmethod
    def _cut_error(cls, value: object) -> object:
        if isinstance(value, str) and len(value) > MAX_ERROR_CHARS:
            return value[: MAX_ERROR_CHARS - 3] + "..."
        return value

    @field_validator("error_code", mode="before")
    @classmethod
    def _drop_odd_code(cls, value: object) -> object:
        return value if isinstance(value, str) and len(value) <= 64 else None


class ReportBody(BaseModel):
    """Items are checked one by one (:func:`_report_items`): a bad one is refused alone."""

    results: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)
    stopped: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="transfers the agent was told to stop (revoked) whose work has ended",
    )


def _report_items(body: ReportBody) -> tuple[list[ReportItem], list[dict[str, Any]]]:
    """The valid items of a report, and what was wrong with each other one."""
    items: list[ReportItem] = []
    rejected: list[dict[str, Any]] = []
    for index, raw in enumerate(body.results):
        try:
            items.append(ReportItem.model_validate(raw))
        except PydanticValidationError as exc:
            task_id = raw.get("task_id")
            problem = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            rejected.append(
                {
                    "index": index,
                    "task_id": task_id if isinstance(task_id, str) else None,
                    "error": problem[:500],
                }
            )
    return items, rejected


class FileOpAnswer(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    result: Any = None
    error: dict[str, Any] | None = None


def _target(request: Request) -> str:
    """The request target as the agent signed it: raw path, and query if any."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    return (bytes(raw) + (b"?" + bytes(query) if query else b"")).decode("latin-1")


async def _authenticated_agent(
    request: Request,
    database: DatabaseDep,
    header: Annotated[str | None, Depends(_agent_header)],
) -> Server:
    scheme, _, secret = (header or "").partition(" ")
    if scheme.lower() != "agent" or not secret.strip():
        raise AuthenticationError(
            "this endpoint is for enrolled agents", hint="send Authorization: Agent <agent secret>"
        )
    agent = cached_agent(request.scope)
    if agent is None:
        agent = await run_in_threadpool(servers.authenticate_server, database, secret.strip())
    hub: AgentHub = request.app.state.agent_hub
    body = await request.body()
    try:
        hub.verifier.verify(
            request.headers,
            method=request.method,
            target=_target(request),
            body=body,
            agent=f"{agent.hostname} ({agent.id})",
            enrolled_fingerprint=agent.cert_fingerprint,
        )
    except AuthenticationError as exc:
        _log.warning("refused a request of agent %s: %s", agent.id, exc.message)
        raise
    return agent


AgentDep = Annotated[Server, Depends(_authenticated_agent)]


def _validate_csr(pem: str) -> None:
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError as exc:
        raise ValidationError("the certificate request (csr) is not a PEM CSR") from exc
    if not csr.is_signature_valid:
        raise ValidationError("the certificate request's signature does not verify")
    if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
        raise ValidationError("the certificate request must use an ECDSA P-256 key")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _scopes(
    scopes: acls.TransferScopes, file: scheduler.FileGrant
) -> tuple[str | None, str | None]:
    return scopes.get(file.task_id, (None, None))  # a task gone meanwhile: no access


def _grant_json(
    hub: AgentHub, grant: scheduler.TransferGrant, scopes: acls.TransferScopes
) -> dict[str, Any]:
    """A transfer as the dialing agent gets it; each file carries the scopes of its job owner's
    grants (the agents judge the resolved paths against them), signed into the ticket too."""
    files = [
        {
            "task_id": f.task_id,
            "src_volume": f.src_volume,
            "src_path": f.src_path,
            "dst_volume": f.dst_volume,
            "dst_path": f.dst_path,
            "size": f.size,
            "src_scope": _scopes(scopes, f)[0],
            "dst_scope": _scopes(scopes, f)[1],
        }
        for f in grant.files
    ]
    ticket = Ticket(
        transfer_id=grant.transfer_id,
        sender_id=grant.sender_id,
        receiver_id=grant.receiver_id,
        files=tuple(
            TicketFile(f.src_volume, f.src_path, f.dst_volume, f.dst_path, *_scopes(scopes, f))
            for f in grant.files
        ),
        expires_at=time.time() + hub.ticket_ttl_s,
    )
    return {
        "transfer_id": grant.transfer_id,
        "direction": grant.direction,
        "sender_id": grant.sender_id,
        "receiver_id": grant.receiver_id,
        "peer": {"host": grant.peer_host, "port": grant.peer_port},
        "files": files,
        "lease_expires_at": _iso(grant.lease_expires_at),
        "lease_s": max(1.0, (grant.lease_expires_at - utcnow()).total_seconds()),
        "priority": grant.priority,
        "ticket": hub.signer.sign(ticket),
    }


def build_router(hub: AgentHub) -> APIRouter:
    """The ``/api/v1/agent`` routes over ``hub`` (keys, relay, timings); while the app runs, a
    background task sweeps silent agents and expired leases."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database: Database = app.state.database
        app.state.agent_hub = hub
        app.state.stop_hooks = [*getattr(app.state, "stop_hooks", []), hub.stop]
        app.state.file_operator = hub.relay  # the native file routes use it too
        sweeper = scheduler.Sweeper(
            database,
            offline_after_s=hub.offline_after_s,
            interval_s=hub.sweep_interval_s,
            fence_s=hub.fence_s,
        )
        async with contextlib.AsyncExitStack() as stack:
            if hub.background:  # one worker of several sweeps
                await stack.enter_async_context(sweeper)
            try:
                yield
            finally:
                hub.stop()

    router = APIRouter(prefix="/api/v1/agent", tags=["agent"], lifespan=lifespan)

    @router.post("/enroll")
    async def enroll(body: EnrollBody, database: DatabaseDep) -> dict[str, Any]:
        _validate_csr(body.csr)
        ca = await run_in_threadpool(CertificateAuthority.load, hub.tls_dir)  # before the token
        server, secret = await run_in_threadpool(
            servers.enroll_server,
            database,
            body.token,
            hostname=body.hostname,
            version=body.version,
        )
        cert_pem = ca.sign_agent_csr(body.csr.encode(), agent_id=server.id, site=server.site)
        cert = x509.load_pem_x509_certificate(cert_pem)
        await run_in_threadpool(
            agents.record_certificate,
            database,
            server.id,
            fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
            serial=format(cert.serial_number, "x"),
        )
        _log.info("enrolled agent %s (%s) at site %s", server.id, server.hostname, server.site)
        return {
            "server_id": server.id,
            "site": server.site,
            "workspace": ca.workspace,
            "certificate": cert_pem.decode(),
            "ca_certificate": ca.cert_pem.decode(),
            "agent_secret": secret,
            "ticket_public_key": hub.signer.public_key_pem,
        }

    @router.post("/heartbeat")
    async def heartbeat(
        body: HeartbeatBody, request: Request, agent: AgentDep, database: DatabaseDep
    ) -> dict[str, Any]:
        address = body.peer_address
        if body.dialable and not address and request.client is not None:
            address = request.client.host
        view = await run_in_threadpool(
            agents.heartbeat,
            database,
            agent.id,
            version=body.version,
            peer_address=address,
            peer_port=body.peer_port,
            dialable=body.dialable,
            rate_sent=body.rate_sent,
            rate_received=body.rate_received,
            applied_limit=body.bandwidth_limit,
            os=body.os,
            username=body.username,
            wan_ip=request.client.host if request.client is not None else None,
        )
        if body.started:
            released = await run_in_threadpool(scheduler.agent_restarted, database, agent.id)
            if released:
                _log.info(
                    "agent %s restarted: its %d task(s) in flight back to the queue",
                    agent.id,
                    released,
                )
        if body.started or view.became_online:
            hub.wake_all()  # work for it, or with it as the peer, may be dispatchable now
        return {
            "server_id": view.server.id,
            "site": view.server.site,
            "status": view.server.status.value,
            "volumes": [{"id": v.id, "code": v.code, "root": v.root} for v in view.volumes],
            "bandwidth_limit": view.bandwidth_limit,
            "revoked_agents": list(view.revoked_agents),
            "heartbeat_s": hub.heartbeat_s,
        }

    @router.get("/work")
    async def work(
        request: Request,
        agent: AgentDep,
        database: DatabaseDep,
        wait: Annotated[float, Query(ge=0, le=120)] = 20.0,
        transfers: Annotated[int, Query(ge=0, le=64)] = 4,
        rate_bytes: Annotated[float | None, Query(ge=0, description="bytes/s, measured")] = None,
        rate_files: Annotated[float | None, Query(ge=0, description="files/s, measured")] = None,
        held: Annotated[
            str | None,
            Query(
                max_length=_MAX_HELD_CHARS,
                description="the transfers the agent holds, comma-separated ('' for none)",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Transfers to dial (none when ``transfers`` is 0: the agent is busy) and file
        operations, as soon as there are any, else an empty answer after ``wait`` seconds. A
        client gone meanwhile takes nothing: what was leased for it goes back at once. With
        ``held``, the tasks leased to the agent under any other transfer go back first (their
        work answer never reached it: a process killed before it could answer)."""
        presence = hub.presence
        if presence is not None and presence.begin(agent.id):
            # it may come from another worker or replica, which must not take it for lost
            await run_in_threadpool(agents.checked_in, database, agent.id)
        dropped = False
        try:
            if held is not None:
                kept = {t for t in held.split(",") if t}
                released = await run_in_threadpool(
                    scheduler.release_unheld, database, agent.id, kept
                )
                if released:
                    _log.info(
                        "agent %s never got the work answer of %d task(s): back to the queue",
                        agent.id,
                        released,
                    )
            answer = await _work(
                request, agent, database, wait, transfers, (rate_bytes, rate_files)
            )
            dropped = answer is None
            return answer or {"transfers": [], "fileops": []}
        finally:
            if presence is not None:
                presence.end(agent.id, dropped=dropped)

    async def _work(
        request: Request,
        agent: Server,
        database: Database,
        wait: float,
        transfers: int,
        rates: tuple[float | None, float | None],
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + wait
        pause = _POLL_S
        while True:
            if await request.is_disconnected():
                return None
            fileops = await hub.relay.collect(agent.id)
            grants = []
            if transfers > 0:
                grants = await run_in_threadpool(
                    functools.partial(
                        scheduler.claim_transfers,
                        database,
                        agent.id,
                        max_transfers=transfers,
                        rate_bytes=rates[0],
                        rate_files=rates[1],
                    )
                )
            if (grants or fileops) and await request.is_disconnected():
                await hub.relay.give_back(agent.id, fileops)
                released = await run_in_threadpool(
                    scheduler.release_transfers,
                    database,
                    agent.id,
                    [g.transfer_id for g in grants],
                )
                _log.info(
                    "agent %s went away before its work answer: %d task(s) back to the queue",
                    agent.id,
                    released,
                )
                return None
            remaining = deadline - time.monotonic()
            if grants or fileops or remaining <= 0 or hub.stopping:
                task_ids = [f.task_id for g in grants for f in g.files]
                scopes = await run_in_threadpool(acls.transfer_scopes, database, task_ids)
                return {
                    "transfers": [_grant_json(hub, g, scopes) for g in grants],
                    "fileops": fileops,
                }
            woken = await hub.relay.wait(agent.id, min(pause, remaining))
            pause = _POLL_S if woken else min(2 * pause, _POLL_MAX_S)

    @router.post("/bye")
    async def bye(agent: AgentDep, database: DatabaseDep) -> dict[str, Any]:
        """A clean stop: the agent is offline at once and its leases go back to the queue."""
        released = await run_in_threadpool(scheduler.agent_left, database, agent.id, how="stopped")
        _log.info("agent %s stopped: offline, %d task(s) back to the queue", agent.id, released)
        return {"released": released}

    @router.post("/report")
    async def report(
        body: ReportBody, request: Request, agent: AgentDep, database: DatabaseDep
    ) -> dict[str, Any]:
        items, rejected = _report_items(body)
        if rejected:
            _log.warning(
                "refused %d of %d report item(s) of agent %s; first: %s",
                len(rejected),
                len(body.results),
                agent.id,
                rejected[0]["error"],
            )
        reports = [
            scheduler.TaskReport(
                task_id=item.task_id,
                status=item.status,  # type: ignore[arg-type]
                bytes_done=item.bytes_done,
                size=item.size,
                error=item.error,
                digest=item.digest,
                retryable=item.retryable,
                error_code=item.error_code,
                files=item.files,
                transfer_id=item.transfer_id,
            )
            for item in items
        ]
        stopped = [t for t in body.stopped if 0 < len(t) <= 64]
        outcome = await run_in_threadpool(
            functools.partial(
                scheduler.apply_reports,
                database,
                agent.id,
                reports,
                stopped=stopped,
                fence_s=hub.fence_s,
            )
        )
        if stopped or any(r.status != "executing" for r in reports):
            hub.wake_all()  # slots were freed: parked long-polls take the next work at once
        bell = getattr(request.app.state, "job_bell", None)
        if bell is not None and outcome.applied:
            bell.ring()  # clients following these jobs see the change now
            hub.ring_siblings()
        return {
            "applied": list(outcome.applied),
            "revoked": list(outcome.revoked),
            "rejected": rejected,
        }

    @router.post("/fileop-result")
    async def fileop_result(body: FileOpAnswer, agent: AgentDep) -> dict[str, Any]:
        delivered = await hub.relay.deliver(agent.id, body.id, body.model_dump())
        return {"delivered": delivered}

    return router
