"""/volumes."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from reelsync.domain.records import Volume
from reelsync.server.api_v1.schemas import ItemList, VolumeCreate, VolumeUpdate, all_of
from reelsync.server.dependencies import CurrentActor, DatabaseDep
from reelsync.services import volumes

router = APIRouter(prefix="/volumes", tags=["volumes"])


@router.get("")
def list_volumes(db: DatabaseDep, actor: CurrentActor) -> ItemList[Volume]:
    return all_of(volumes.list_volumes(db, actor))


@router.post("", status_code=status.HTTP_201_CREATED)
def create_volume(body: VolumeCreate, db: DatabaseDep, actor: CurrentActor) -> Volume:
    return volumes.create_volume(
        db, actor, code=body.code, name=body.name, default=body.default, paths=body.paths
    )


@router.get("/{ref}")
def get_volume(ref: str, db: DatabaseDep, actor: CurrentActor) -> Volume:
    return volumes.get_volume(db, actor, ref)


@router.patch("/{ref}")
def update_volume(ref: str, body: VolumeUpdate, db: DatabaseDep, actor: CurrentActor) -> Volume:
    return volumes.update_volume(
        db, actor, ref, name=body.name, default=body.default, enabled=body.enabled, paths=body.paths
    )


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT)
def delete_volume(ref: str, db: DatabaseDep, actor: CurrentActor) -> Response:
    volumes.delete_volume(db, actor, ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
