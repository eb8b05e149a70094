"""Who is calling, and may they: API-key authentication and the role rules.

Rules: an API key authenticates when it exists, is not revoked, has not expired and belongs to an
enabled user; with an e-mail given (the accsyn login) the key must also belong to that user. Every
failure gives the same message, so a caller learns nothing about which part was wrong. A key's
last-used time is written at most once a minute. A web UI session (:func:`open_session`) is a row
bound to the key it signed in with; :func:`session_actor` re-checks the session and that key on
every request, so sign-out (:func:`close_session`), the session's expiry, revoking the key, its
expiry or disabling the user each end it. Admins may do everything; what employees and standard
users may do is checked by each service (ACLs in :mod:`reelsync.services.acls`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.ids import new_entity_id
from reelsync.domain.records import Actor, Role
from reelsync.errors import AuthenticationError, PermissionDeniedError
from reelsync.services import catalog
from reelsync.services.credentials import hash_secret, lookup_prefix, same_secret

__all__ = [
    "WebSession",
    "authenticate",
    "close_session",
    "open_session",
    "require_admin",
    "require_role",
    "session_actor",
]

_BAD_KEY = "invalid or expired API key"
# how stale a key's last-used time may get before a request writes it again (one write a minute
# per key at most, not one per request)
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class _SignIn:
    actor: Actor
    key_id: str


@dataclass(frozen=True, slots=True)
class WebSession:
    """A web UI session: its id (what the signed cookie names), who, and until when."""

    id: str
    actor: Actor
    expires_at: datetime


def _touch(db: Database, key: m.ApiKey, now: datetime) -> None:
    """Write the key's last-used time when it is stale (its own small write transaction, so the
    check itself is a read that never waits for SQLite's write lock)."""
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        with db.session() as session:
            session.execute(update(m.ApiKey).where(m.ApiKey.id == key.id).values(last_used_at=now))


def _usable(key: m.ApiKey, user: m.User, now: datetime) -> bool:
    """The key is live; a disabled user is an error of its own (an admin can tell them)."""
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return False
    if not user.enabled:
        raise AuthenticationError(f"user {user.email} is disabled")
    return True


def _sign_in(db: Database, api_key: str, *, email: str | None = None) -> _SignIn:
    api_key = (api_key or "").strip()
    if not api_key:
        raise AuthenticationError("an API key is required", hint="send Authorization: Bearer KEY")
    now = utcnow()
    key_hash = hash_secret(api_key)
    with db.reader() as session:
        owner = catalog.key_owner(session, lookup_prefix(api_key), key_hash)
    if owner is None or not same_secret(api_key, owner.key_hash):
        raise AuthenticationError(_BAD_KEY)
    if owner.revoked_at is not None or (owner.expires_at is not None and owner.expires_at <= now):
        raise AuthenticationError(_BAD_KEY)
    if not owner.enabled:
        raise AuthenticationError(f"user {owner.email} is disabled")
    if email is not None and email.strip().lower() != owner.email:
        raise AuthenticationError(_BAD_KEY)
    if owner.last_used_at is None or now - owner.last_used_at >= LAST_USED_RESOLUTION:
        with db.session() as session:
            session.execute(
                update(m.ApiKey).where(m.ApiKey.id == owner.key_id).values(last_used_at=now)
            )
            catalog.key_used(session, key_hash, now)
    return _SignIn(actor=owner.actor, key_id=owner.key_id)


def authenticate(db: Database, api_key: str, *, email: str | None = None) -> Actor:
    """The :class:`Actor` owning ``api_key`` (and ``email`` when given).

    Raises :class:`AuthenticationError` otherwise."""
    return _sign_in(db, api_key, email=email).actor


def open_session(db: Database, api_key: str, *, email: str | None, ttl_s: int) -> WebSession:
    """Sign in to the web UI with ``api_key`` (and ``email`` when given): a new session of
    ``ttl_s`` seconds. The user's ended sessions are deleted on the way.

    Raises :class:`AuthenticationError` as :func:`authenticate` does."""
    signed = _sign_in(db, api_key, email=email)
    now = utcnow()
    expires = now + timedelta(seconds=ttl_s)
    with db.session() as session:
        session.execute(
            delete(m.UiSession).where(
                m.UiSession.user_id == signed.actor.user_id,
                or_(m.UiSession.expires_at <= now, m.UiSession.revoked_at.is_not(None)),
            )
        )
        row = m.UiSession(
            id=new_entity_id(),
            user_id=signed.actor.user_id,
            api_key_id=signed.key_id,
            created=now,
            expires_at=expires,
        )
        session.add(row)
        return WebSession(id=row.id, actor=signed.actor, expires_at=expires)


def session_actor(db: Database, session_id: str) -> Actor:
    """The Actor of web UI session ``session_id`` while it is open and unexpired, its API key
    live and its user enabled; :class:`AuthenticationError` otherwise."""
    with db.reader() as session:
        row = session.execute(
            select(m.UiSession, m.ApiKey, m.User)
            .join(m.ApiKey, m.ApiKey.id == m.UiSession.api_key_id)
            .join(m.User, m.User.id == m.UiSession.user_id)
            .where(m.UiSession.id == session_id)
        ).first()
    now = utcnow()
    if row is None or row[0].revoked_at is not None or row[0].expires_at <= now:
        raise AuthenticationError("your session has ended", hint="sign in again")
    _, key, user = row
    if not _usable(key, user, now):
        raise AuthenticationError("your session has ended", hint="sign in again")
    _touch(db, key, now)
    return Actor(user_id=user.id, email=user.email, role=Role(user.role))


def close_session(db: Database, session_id: str) -> None:
    """Sign out: the session ends now (its cookie, even a copy, is refused from then on)."""
    with db.session() as session:
        session.execute(
            update(m.UiSession)
            .where(m.UiSession.id == session_id, m.UiSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


def require_admin(actor: Actor, action: str) -> None:
    """Raise PermissionDeniedError unless ``actor`` is an admin; ``action`` names what was tried."""
    if actor.role is not Role.ADMIN:
        raise PermissionDeniedError(f"only an admin may {action}")


def require_role(actor: Actor, roles: frozenset[Role], action: str) -> None:
    if actor.role not in roles:
        names = " or ".join(sorted(r.value for r in roles))
        raise PermissionDeniedError(f"only {names} users may {action}")
