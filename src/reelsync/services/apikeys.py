"""API keys: made for a user, shown once, stored hashed, optionally expiring, revocable.

Rules: an admin manages every user's keys; any user manages their own. The plain key is returned
only by :func:`create_api_key`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.ids import new_entity_id
from reelsync.domain.records import Actor, ApiKey
from reelsync.errors import NotFoundError, PermissionDeniedError, ValidationError
from reelsync.services import users
from reelsync.services.credentials import hash_secret, lookup_prefix, new_secret

__all__ = ["API_KEY_KIND", "add_api_key", "create_api_key", "list_api_keys", "revoke_api_key"]

API_KEY_KIND = "rsk"


def _record(row: m.ApiKey) -> ApiKey:
    return ApiKey(
        id=row.id,
        user_id=row.user_id,
        prefix=row.prefix,
        description=row.description,
        created=row.created,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _owner(session: Session, actor: Actor, user_ref: str) -> m.User:
    user = users.get_user_row(session, user_ref)
    if not actor.is_admin and user.id != actor.user_id:
        raise PermissionDeniedError("only an admin may manage another user's API keys")
    return user


def add_api_key(
    session: Session,
    user_id: str,
    *,
    description: str = "",
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Insert a key for ``user_id`` in ``session``; returns the record and the plain key."""
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValidationError("expires_at needs a time zone, e.g. 2026-12-31T00:00:00Z")
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationError("expires_at must be in the future")
    if len(description) > 255:
        raise ValidationError("a key description may be at most 255 characters")
    plain = new_secret(API_KEY_KIND)
    row = m.ApiKey(
        id=new_entity_id(),
        user_id=user_id,
        prefix=lookup_prefix(plain),
        key_hash=hash_secret(plain),
        description=description,
        created=utcnow(),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return _record(row), plain


def create_api_key(
    db: Database,
    actor: Actor,
    user_ref: str,
    *,
    description: str = "",
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key for the user (id or e-mail). The plain key is in the result, and nowhere else."""
    with db.session() as session:
        user = _owner(session, actor, user_ref)
        return add_api_key(session, user.id, description=description, expires_at=expires_at)


def list_api_keys(db: Database, actor: Actor, user_ref: str) -> list[ApiKey]:
    with db.session() as session:
        user = _owner(session, actor, user_ref)
        rows = session.scalars(
            select(m.ApiKey).where(m.ApiKey.user_id == user.id).order_by(m.ApiKey.created)
        ).all()
        return [_record(r) for r in rows]


def revoke_api_key(db: Database, actor: Actor, user_ref: str, key_id: str) -> ApiKey:
    """Revoke a key (idempotent). Authentication with it fails from now on."""
    with db.session() as session:
        user = _owner(session, actor, user_ref)
        row = session.get(m.ApiKey, key_id)
        if row is None or row.user_id != user.id:
            raise NotFoundError(f"no API key {key_id!r} for user {user.email}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        return _record(row)
