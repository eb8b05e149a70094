"""/health (no auth), /me, /me/preferences and /workspace."""

from __future__ import annotations

from fastapi import APIRouter

from reelsync import __version__
from reelsync.domain.records import User, UserPreferences, Workspace
from reelsync.server.api_v1.schemas import Health, PreferencesUpdate
from reelsync.server.dependencies import CurrentActor, DatabaseDep
from reelsync.services import users, workspace

router = APIRouter(tags=["workspace"])


@router.get("/health")
def health() -> Health:
    return Health(status="ok", version=__version__)


@router.get("/me")
def me(db: DatabaseDep, actor: CurrentActor) -> User:
    return users.get_user(db, actor, actor.user_id)


@router.get("/me/preferences")
def my_preferences(db: DatabaseDep, actor: CurrentActor) -> UserPreferences:
    return users.get_preferences(db, actor, actor.user_id)


@router.patch("/me/preferences")
def update_my_preferences(
    body: PreferencesUpdate, db: DatabaseDep, actor: CurrentActor
) -> UserPreferences:
    """E.g. ``{"email_opt_out": true}``: no more job e-mail to me."""
    return users.update_preferences(db, actor, actor.user_id, email_opt_out=body.email_opt_out)


@router.get("/workspace")
def get_workspace(db: DatabaseDep, actor: CurrentActor) -> Workspace:
    return workspace.get_workspace(db, actor)
