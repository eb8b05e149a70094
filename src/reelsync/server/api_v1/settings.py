"""/settings: GET a scope's settings (``inherited=true`` for the effective ones), PUT one, DELETE
one."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from reelsync.domain.records import Setting
from reelsync.server.api_v1.schemas import SettingPut
from reelsync.server.dependencies import CurrentActor, DatabaseDep
from reelsync.services import settings

router = APIRouter(prefix="/settings", tags=["settings"])


@router.get("")
def list_settings(
    db: DatabaseDep,
    actor: CurrentActor,
    scope: str = "workspace",
    target: str | None = None,
    inherited: bool = False,
) -> dict[str, str]:
    return settings.list_settings(db, actor, scope=scope, target=target, inherited=inherited)


@router.put("")
def put_setting(body: SettingPut, db: DatabaseDep, actor: CurrentActor) -> Setting:
    return settings.set_setting(
        db, actor, scope=body.scope, target=body.target, key=body.key, value=body.value
    )


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
def delete_setting(
    db: DatabaseDep, actor: CurrentActor, scope: str, key: str, target: str | None = None
) -> Response:
    settings.delete_setting(db, actor, scope=scope, target=target, key=key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
