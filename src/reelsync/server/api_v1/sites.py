"""/sites."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from reelsync.domain.records import Site
from reelsync.server.api_v1.schemas import ItemList, SiteCreate, SiteUpdate, all_of
from reelsync.server.dependencies import CurrentActor, DatabaseDep
from reelsync.services import sites

router = APIRouter(prefix="/sites", tags=["sites"])


@router.get("")
def list_sites(db: DatabaseDep, actor: CurrentActor) -> ItemList[Site]:
    return all_of(sites.list_sites(db, actor))


@router.post("", status_code=status.HTTP_201_CREATED)
def create_site(body: SiteCreate, db: DatabaseDep, actor: CurrentActor) -> Site:
    return sites.create_site(db, actor, code=body.code, name=body.name)


@router.get("/{ref}")
def get_site(ref: str, db: DatabaseDep, actor: CurrentActor) -> Site:
    return sites.get_site(db, actor, ref)


@router.patch("/{ref}")
def update_site(ref: str, body: SiteUpdate, db: DatabaseDep, actor: CurrentActor) -> Site:
    return sites.update_site(db, actor, ref, name=body.name, enabled=body.enabled, main=body.main)


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT)
def delete_site(ref: str, db: DatabaseDep, actor: CurrentActor) -> Response:
    sites.delete_site(db, actor, ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
