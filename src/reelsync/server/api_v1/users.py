"""/users, /users/{ref}/preferences and /users/{ref}/apikeys (``me`` names the caller)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from reelsync.domain.records import ApiKey, User, UserPreferences
from reelsync.server.api_v1.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ItemList,
    PreferencesUpdate,
    UserCreate,
    UserUpdate,
    all_of,
)
from reelsync.server.dependencies import CurrentActor, DatabaseDep
from reelsync.services import apikeys, users

router = APIRouter(prefix="/users", tags=["users"])


@router.get("")
def list_users(
    db: DatabaseDep, actor: CurrentActor, role: str | None = None, enabled: bool | None = None
) -> ItemList[User]:
    return all_of(users.list_users(db, actor, role=role, enabled=enabled))


@router.post("", status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, db: DatabaseDep, actor: CurrentActor) -> User:
    return users.create_user(
        db, actor, email=body.email, name=body.name, role=body.role, enabled=body.enabled
    )


@router.get("/{ref}")
def get_user(ref: str, db: DatabaseDep, actor: CurrentActor) -> User:
    return users.get_user(db, actor, ref)


@router.patch("/{ref}")
def update_user(ref: str, body: UserUpdate, db: DatabaseDep, actor: CurrentActor) -> User:
    return users.update_user(db, actor, ref, name=body.name, role=body.role, enabled=body.enabled)


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(ref: str, db: DatabaseDep, actor: CurrentActor) -> Response:
    users.delete_user(db, actor, ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{ref}/preferences")
def get_preferences(ref: str, db: DatabaseDep, actor: CurrentActor) -> UserPreferences:
    """A user's own choices (``email_opt_out``): yours, or anyone's for an admin."""
    return users.get_preferences(db, actor, ref)


@router.patch("/{ref}/preferences")
def update_preferences(
    ref: str, body: PreferencesUpdate, db: DatabaseDep, actor: CurrentActor
) -> UserPreferences:
    """Change a user's choices, e.g. ``{"email_opt_out": true}``: yours, or anyone's for an
    admin."""
    return users.update_preferences(db, actor, ref, email_opt_out=body.email_opt_out)


@router.get("/{ref}/apikeys")
def list_api_keys(ref: str, db: DatabaseDep, actor: CurrentActor) -> ItemList[ApiKey]:
    return all_of(apikeys.list_api_keys(db, actor, ref))


@router.post("/{ref}/apikeys", status_code=status.HTTP_201_CREATED)
def create_api_key(
    ref: str, body: ApiKeyCreate, db: DatabaseDep, actor: CurrentActor
) -> ApiKeyCreated:
    key, plain = apikeys.create_api_key(
        db, actor, ref, description=body.description, expires_at=body.expires_at
    )
    return ApiKeyCreated.of(key, plain)


@router.delete("/{ref}/apikeys/{key_id}")
def revoke_api_key(ref: str, key_id: str, db: DatabaseDep, actor: CurrentActor) -> ApiKey:
    return apikeys.revoke_api_key(db, actor, ref, key_id)
