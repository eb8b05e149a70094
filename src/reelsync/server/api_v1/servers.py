"""/servers (enrolled agents) and /servers/tokens (enrollment tokens)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from reelsync.domain.records import Server
from reelsync.server.api_v1.schemas import (
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    ItemList,
    ServerUpdate,
    all_of,
)
from reelsync.server.dependencies import CurrentActor, DatabaseDep
from reelsync.services import servers

router = APIRouter(prefix="/servers", tags=["servers"])


@router.get("")
def list_servers(db: DatabaseDep, actor: CurrentActor, site: str | None = None) -> ItemList[Server]:
    return all_of(servers.list_servers(db, actor, site=site))


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_enrollment_token(
    body: EnrollmentTokenCreate, db: DatabaseDep, actor: CurrentActor
) -> EnrollmentTokenCreated:
    record, plain = servers.create_enrollment_token(db, actor, body.site, ttl_s=body.ttl_s)
    return EnrollmentTokenCreated(token=plain, enrollment=record)


@router.get("/{server_id}")
def get_server(server_id: str, db: DatabaseDep, actor: CurrentActor) -> Server:
    return servers.get_server(db, actor, server_id)


@router.patch("/{server_id}")
def update_server(
    server_id: str, body: ServerUpdate, db: DatabaseDep, actor: CurrentActor
) -> Server:
    return servers.update_server(
        db,
        actor,
        server_id,
        status=body.status,
        hostname=body.hostname,
        bandwidth_limit=body.bandwidth_limit,
    )


@router.post("/{server_id}/revoke")
def revoke_server(server_id: str, db: DatabaseDep, actor: CurrentActor) -> Server:
    """Revoke an agent for good (admin): the control plane and its peers refuse it."""
    return servers.revoke_server(db, actor, server_id)


@router.delete("/{server_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_server(server_id: str, db: DatabaseDep, actor: CurrentActor) -> Response:
    servers.delete_server(db, actor, server_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
