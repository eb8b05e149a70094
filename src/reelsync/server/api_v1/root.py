"""/health (no auth), /me and /workspace."""

from __future__ import annotations

from fastapi import APIRouter

from reelsync import __version__
from reelsync.domain.records import User, Workspace
from reelsync.server.api_v1.schemas import Health
from reelsync.server.dependencies import CurrentActor, DatabaseDep
from reelsync.services import users, workspace

router = APIRouter(tags=["workspace"])


@router.get("/health")
def health() -> Health:
    return Health(status="ok", version=__version__)


@router.get("/me")
def me(db: DatabaseDep, actor: CurrentActor) -> User:
    return users.get_user(db, actor, actor.user_id)


@router.get("/workspace")
def get_workspace(db: DatabaseDep, actor: CurrentActor) -> Workspace:
    return workspace.get_workspace(db, actor)
