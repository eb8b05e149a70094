"""Who is calling, and may they: API-key authentication and the role rules.

Rules: an API key authenticates when it exists, is not revoked, has not expired and belongs to an
enabled user; with an e-mail given (the accsyn login) the key must also belong to that user. Every
failure gives the same message, so a caller learns nothing about which part was wrong. A key's
last-used time is written at most once a minute. Admins may do everything; what employees and
standard users may do is checked by each service (ACLs in :mod:`reelsync.services.acls`).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.records import Actor, Role
from reelsync.errors import AuthenticationError, PermissionDeniedError
from reelsync.services.credentials import lookup_prefix, same_secret

__all__ = ["authenticate", "require_admin", "require_role"]

_BAD_KEY = "invalid or expired API key"
# how stale a key's last-used time may get before a request writes it again (one write a minute
# per key at most, not one per request)
LAST_USED_RESOLUTION = timedelta(seconds=60)


def authenticate(db: Database, api_key: str, *, email: str | None = None) -> Actor:
    """The :class:`Actor` owning ``api_key`` (and ``email`` when given).

    Raises :class:`AuthenticationError` otherwise."""
    api_key = (api_key or "").strip()
    if not api_key:
        raise AuthenticationError("an API key is required", hint="send Authorization: Bearer KEY")
    now = utcnow()
    with db.session() as session:
        rows = session.execute(
            select(m.ApiKey, m.User)
            .join(m.User, m.User.id == m.ApiKey.user_id)
            .where(m.ApiKey.prefix == lookup_prefix(api_key))
        ).all()
        for key, user in rows:
            if not same_secret(api_key, key.key_hash):
                continue
            if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
                break
            if not user.enabled:
                raise AuthenticationError(f"user {user.email} is disabled")
            if email is not None and email.strip().lower() != user.email:
                break
            if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
                key.last_used_at = now
            return Actor(user_id=user.id, email=user.email, role=Role(user.role))
    raise AuthenticationError(_BAD_KEY)


def require_admin(actor: Actor, action: str) -> None:
    """Raise PermissionDeniedError unless ``actor`` is an admin; ``action`` names what was tried."""
    if actor.role is not Role.ADMIN:
        raise PermissionDeniedError(f"only an admin may {action}")


def require_role(actor: Actor, roles: frozenset[Role], action: str) -> None:
    if actor.role not in roles:
        names = " or ".join(sorted(r.value for r in roles))
        raise PermissionDeniedError(f"only {names} users may {action}")
