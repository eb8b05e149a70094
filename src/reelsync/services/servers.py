"""Servers (enrolled site agents) and their enrollment tokens.

Rules: every user may list servers; only an admin changes or deletes them, or makes enrollment
tokens. A token is a one-time secret for one site, stored hashed, valid until it expires; redeeming
it registers a server at that site and returns the agent's own secret (shown once, stored hashed).
An admin may set a server ``disabled`` or ``enabled`` (``online`` when it checked in within the
last minute, else ``offline`` until it does); the heartbeat sets ``online``. An admin may revoke
a server for good (``revoked``): its requests are refused whatever it presents, the scheduler no
longer picks it (its leases go back to the queue at the next sweep) and the other agents learn at
their next heartbeat to refuse its certificate; a revoked server cannot be enabled again (enroll
the machine anew).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.ids import new_entity_id
from reelsync.domain.records import Actor, EnrollmentToken, Server, ServerStatus
from reelsync.errors import (
    AgentOfflineError,
    AuthenticationError,
    NotFoundError,
    RevokedError,
    ValidationError,
)
from reelsync.services.auth import require_admin
from reelsync.services.credentials import hash_secret, new_secret
from reelsync.services.sites import get_site_row

__all__ = [
    "AGENT_SECRET_KIND",
    "ENROLLMENT_TOKEN_KIND",
    "authenticate_server",
    "create_enrollment_token",
    "delete_server",
    "enroll_server",
    "get_server",
    "get_server_row",
    "list_servers",
    "require_online",
    "revoke_server",
    "revoked_server_ids",
    "server_record",
    "update_server",
]

ENROLLMENT_TOKEN_KIND = "rse"
AGENT_SECRET_KIND = "rsa"
MAX_TOKEN_TTL_S = 30 * 24 * 3600


def server_record(row: m.Server, site_code: str) -> Server:
    info = row.info or {}
    return Server(
        id=row.id,
        site_id=row.site_id,
        site=site_code,
        hostname=row.hostname,
        status=ServerStatus(row.status),
        version=row.version,
        last_checkin=row.last_checkin,
        cert_fingerprint=row.cert_fingerprint,
        peer_address=row.peer_address,
        peer_port=row.peer_port,
        dialable=row.dialable,
        created=row.created,
        modified=row.modified,
        bandwidth_limit=_rate(info, "bandwidth_limit"),
        applied_limit=_rate(info, "applied_limit"),
        rate_sent=_rate(info, "rate_sent"),
        rate_received=_rate(info, "rate_received"),
        os=_text(info, "os"),
        username=_text(info, "username"),
        wan_ip=_text(info, "wan_ip"),
    )


def _text(info: dict[str, Any], key: str) -> str | None:
    value = info.get(key)
    return value if isinstance(value, str) and value else None


def _rate(info: dict[str, Any], key: str) -> float | None:
    value = info.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def get_server_row(session: Session, server_id: str) -> m.Server:
    row = session.get(m.Server, server_id) if isinstance(server_id, str) else None
    if row is None:
        raise NotFoundError(f"no server {server_id!r}")
    return row


def _site_code(session: Session, site_id: str) -> str:
    return session.scalar(select(m.Site.code).where(m.Site.id == site_id)) or ""


def seen_by(actor: Actor, server: Server) -> Server:
    """``server`` as ``actor`` may see it: only admins see where agents are and who they are
    (addresses, ports, certificate fingerprints, the account they run as)."""
    if actor.is_admin:
        return server
    return replace(
        server, cert_fingerprint=None, peer_address=None, peer_port=None, username=None,
        wan_ip=None,
    )  # fmt: skip


def list_servers(db: Database, actor: Actor, *, site: str | None = None) -> list[Server]:
    with db.reader() as session:
        query = select(m.Server, m.Site.code).join(m.Site, m.Site.id == m.Server.site_id)
        if site is not None:
            query = query.where(m.Server.site_id == get_site_row(session, site).id)
        rows = session.execute(query.order_by(m.Site.code, m.Server.hostname))
        return [seen_by(actor, server_record(s, code)) for s, code in rows]


def require_online(db: Database, actor: Actor, *site_codes: str) -> None:
    """Each of these sites has an agent online, or :class:`AgentOfflineError` naming the first
    that has none (and the state of the agents it has)."""
    for code in site_codes:
        found = list_servers(db, actor, site=code)
        if not any(a.status is ServerStatus.ONLINE for a in found):
            raise AgentOfflineError.at_site(code, [(a.hostname, str(a.status)) for a in found])


def get_server(db: Database, actor: Actor, server_id: str) -> Server:
    with db.reader() as session:
        row = get_server_row(session, server_id)
        return seen_by(actor, server_record(row, _site_code(session, row.site_id)))


def update_server(
    db: Database,
    actor: Actor,
    server_id: str,
    *,
    status: str | None = None,
    hostname: str | None = None,
    bandwidth_limit: float | None = None,
) -> Server:
    """Change a server (admin). ``bandwidth_limit`` (bytes/s, each direction) is applied by the
    agent at its next heartbeat over its own config; 0 removes it (the agent's config again)."""
    require_admin(actor, "change servers")
    with db.session() as session:
        row = get_server_row(session, server_id)
        if status is not None:
            if row.status == ServerStatus.REVOKED:
                raise ValidationError(
                    f"server {row.hostname} was revoked; it cannot be enabled or disabled",
                    hint="enroll the machine again with a new token",
                )
            wanted = str(status).strip().lower()
            if wanted == ServerStatus.DISABLED:
                row.status = ServerStatus.DISABLED.value
            elif wanted in ("enabled", ServerStatus.OFFLINE, ServerStatus.ONLINE):
                if row.status == ServerStatus.DISABLED:
                    row.status = _enabled_status(row)
            else:
                raise ValidationError(
                    f"a server can be set disabled or enabled (online), not {status!r}"
                )
        if hostname is not None:
            if not hostname.strip() or len(hostname) > 255:
                raise ValidationError("a hostname must be 1..255 characters")
            row.hostname = hostname.strip()
        if bandwidth_limit is not None:
            if isinstance(bandwidth_limit, bool) or not 0 <= bandwidth_limit < 1e13:
                raise ValidationError("a bandwidth limit is 0 (none) or a positive bytes/s")
            info = dict(row.info or {})
            if bandwidth_limit > 0:
                info["bandwidth_limit"] = float(bandwidth_limit)
            else:
                info.pop("bandwidth_limit", None)
            row.info = info
        row.modified = utcnow()
        return server_record(row, _site_code(session, row.site_id))


#: An enabled agent that checked in this recently reads ``online`` at once (its next heartbeat
#: confirms it; the sweep marks it offline if none comes).
RECENT_CHECKIN_S = 60.0


def _enabled_status(row: m.Server) -> str:
    seen = row.last_checkin
    if seen is not None and utcnow() - seen <= timedelta(seconds=RECENT_CHECKIN_S):
        return ServerStatus.ONLINE.value
    return ServerStatus.OFFLINE.value


def revoke_server(db: Database, actor: Actor, server_id: str) -> Server:
    """Revoke an agent for good (admin); revoking twice is harmless."""
    require_admin(actor, "revoke servers")
    with db.session() as session:
        row = get_server_row(session, server_id)
        if row.status != ServerStatus.REVOKED:
            now = utcnow()
            row.status = ServerStatus.REVOKED.value
            row.info = {
                **(row.info or {}),
                "revoked_at": now.isoformat(),
                "revoked_by": actor.user_id,
            }
            row.modified = now
        return server_record(row, _site_code(session, row.site_id))


def revoked_server_ids(session: Session) -> list[str]:
    """Ids of every revoked agent (peers refuse their certificates)."""
    return list(
        session.scalars(
            select(m.Server.id)
            .where(m.Server.status == ServerStatus.REVOKED.value)
            .order_by(m.Server.id)
        )
    )


def delete_server(db: Database, actor: Actor, server_id: str) -> None:
    require_admin(actor, "delete servers")
    with db.session() as session:
        session.delete(get_server_row(session, server_id))


def create_enrollment_token(
    db: Database, actor: Actor, site: str, *, ttl_s: int = 3600
) -> tuple[EnrollmentToken, str]:
    """A one-time token to enroll an agent at ``site``; the plain token is returned only here."""
    require_admin(actor, "make enrollment tokens")
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 60 <= ttl_s <= MAX_TOKEN_TTL_S:
        raise ValidationError(f"a token lifetime must be 60..{MAX_TOKEN_TTL_S} seconds")
    plain = new_secret(ENROLLMENT_TOKEN_KIND)
    with db.session() as session:
        site_row = get_site_row(session, site)
        now = utcnow()
        row = m.EnrollmentToken(
            id=new_entity_id(),
            site_id=site_row.id,
            token_hash=hash_secret(plain),
            created=now,
            expires_at=now + timedelta(seconds=ttl_s),
            created_by=actor.user_id,
        )
        session.add(row)
        session.flush()
        return EnrollmentToken(
            id=row.id,
            site_id=site_row.id,
            site=site_row.code,
            created=row.created,
            expires_at=row.expires_at,
            used_at=None,
            server_id=None,
        ), plain


def enroll_server(
    db: Database,
    token: str,
    *,
    hostname: str,
    version: str | None = None,
    cert_fingerprint: str | None = None,
    cert_serial: str | None = None,
) -> tuple[Server, str]:
    """Redeem an enrollment token: register the server; returns it and its agent secret."""
    if not hostname or len(hostname) > 255:
        raise ValidationError("a hostname must be 1..255 characters")
    with db.session() as session:
        row = session.scalar(
            select(m.EnrollmentToken)
            .where(m.EnrollmentToken.token_hash == hash_secret(token or ""))
            .with_for_update()
        )
        now = utcnow()
        if row is None or row.used_at is not None or row.expires_at <= now:
            raise AuthenticationError(
                "invalid, used or expired enrollment token",
                hint="make a new one: reelsync agent token --site SITE",
            )
        secret = new_secret(AGENT_SECRET_KIND)
        server = m.Server(
            id=new_entity_id(),
            site_id=row.site_id,
            hostname=hostname.strip(),
            status=ServerStatus.INIT.value,
            version=version,
            cert_fingerprint=cert_fingerprint,
            cert_serial=cert_serial,
            secret_hash=hash_secret(secret),
            dialable=False,
            info={},
            created=now,
            modified=now,
        )
        session.add(server)
        session.flush()
        row.used_at, row.server_id = now, server.id
        return server_record(server, _site_code(session, server.site_id)), secret


def authenticate_server(db: Database, secret: str) -> Server:
    """The enabled server owning an agent secret, else AuthenticationError. A disabled agent's
    refused call still counts as its last check-in, so enabling it reads ``online`` at once."""
    with db.session() as session:
        row = session.scalar(
            select(m.Server).where(m.Server.secret_hash == hash_secret(secret or ""))
        )
        if row is None:
            raise AuthenticationError("invalid agent credentials")
        if row.status == ServerStatus.REVOKED:
            raise RevokedError(
                f"agent {row.hostname} ({row.id}) was revoked by an admin",
                hint="enroll this machine again with a new token: reelsync agent token --site SITE",
            )
        if row.status != ServerStatus.DISABLED:
            return server_record(row, _site_code(session, row.site_id))
        row.last_checkin = utcnow()  # committed: the refusal below is not a failure here
        hostname = row.hostname
    raise AuthenticationError(f"server {hostname} is disabled")
