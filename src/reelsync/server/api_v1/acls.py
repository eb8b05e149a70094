"""/acls."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from reelsync.domain.records import Acl
from reelsync.server.api_v1.schemas import AclCreate, ItemList, all_of
from reelsync.server.dependencies import CurrentActor, DatabaseDep
from reelsync.services import acls

router = APIRouter(prefix="/acls", tags=["acls"])


@router.get("")
def list_acls(
    db: DatabaseDep, actor: CurrentActor, user: str | None = None, volume: str | None = None
) -> ItemList[Acl]:
    return all_of(acls.list_acls(db, actor, user=user, volume=volume))


@router.post("", status_code=status.HTTP_201_CREATED)
def grant(body: AclCreate, db: DatabaseDep, actor: CurrentActor) -> Acl:
    return acls.grant(
        db,
        actor,
        user=body.user,
        volume=body.volume,
        path=body.path,
        read=body.read,
        write=body.write,
    )


@router.delete("/{acl_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke(acl_id: str, db: DatabaseDep, actor: CurrentActor) -> Response:
    acls.revoke_acl(db, actor, acl_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
