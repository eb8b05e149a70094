"""Who is calling, and may they: API-key authentication and the role rules.

Rules: an API key authenticates when it exists, is not revoked, has not expired and belongs to an
enabled user; with an e-mail given (the accsyn login) the key must also belong to that user. Every
failure gives the same message, so a caller learns nothing about which part was wrong. A key's
last-used time is written at most once a minute. A web UI session is bound to the key it signed in
with (:func:`sign_in` gives its id, :func:`session_actor` re-checks it on every request): revoking
the key, its expiry or disabling the user ends the session. Admins may do everything; what
employees and standard users may do is checked by each service (ACLs in
:mod:`reelsync.services.acls`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.records import Actor, Role
from reelsync.errors import AuthenticationError, PermissionDeniedError
from reelsync.services.credentials import lookup_prefix, same_secret

__all__ = ["SignIn", "authenticate", "require_admin", "require_role", "session_actor", "sign_in"]

_BAD_KEY = "invalid or expired API key"
# how stale a key's last-used time may get before a request writes it again (one write a minute
# per key at most, not one per request)
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SignIn:
    """Who signed in and with which API key (its id, never the key)."""

    actor: Actor
    key_id: str


def _touch(key: m.ApiKey, now: datetime) -> None:
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now


def _usable(key: m.ApiKey, user: m.User, now: datetime) -> bool:
    """The key is live; a disabled user is an error of its own (an admin can tell them)."""
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return False
    if not user.enabled:
        raise AuthenticationError(f"user {user.email} is disabled")
    return True


def sign_in(db: Database, api_key: str, *, email: str | None = None) -> SignIn:
    """The :class:`Actor` owning ``api_key`` (and ``email`` when given) and the key's id.

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
            if not _usable(key, user, now):
                break
            if email is not None and email.strip().lower() != user.email:
                break
            _touch(key, now)
            actor = Actor(user_id=user.id, email=user.email, role=Role(user.role))
            return SignIn(actor=actor, key_id=key.id)
    raise AuthenticationError(_BAD_KEY)


def authenticate(db: Database, api_key: str, *, email: str | None = None) -> Actor:
    """The :class:`Actor` owning ``api_key`` (and ``email`` when given).

    Raises :class:`AuthenticationError` otherwise."""
    return sign_in(db, api_key, email=email).actor


def session_actor(db: Database, user_id: str, key_id: str) -> Actor:
    """The Actor of a session signed in with key ``key_id`` by ``user_id``, while that key is
    still live and its user enabled; :class:`AuthenticationError` otherwise."""
    with db.session() as session:
        row = session.execute(
            select(m.ApiKey, m.User)
            .join(m.User, m.User.id == m.ApiKey.user_id)
            .where(m.ApiKey.id == key_id, m.User.id == user_id)
        ).first()
        now = utcnow()
        if row is None or not _usable(row[0], row[1], now):
            raise AuthenticationError("your session has ended", hint="sign in again")
        _touch(row[0], now)
        user = row[1]
        return Actor(user_id=user.id, email=user.email, role=Role(user.role))


def require_admin(actor: Actor, action: str) -> None:
    """Raise PermissionDeniedError unless ``actor`` is an admin; ``action`` names what was tried."""
    if actor.role is not Role.ADMIN:
        raise PermissionDeniedError(f"only an admin may {action}")


def require_role(actor: Actor, roles: frozenset[Role], action: str) -> None:
    if actor.role not in roles:
        names = " or ".join(sorted(r.value for r in roles))
        raise PermissionDeniedError(f"only {names} users may {action}")
