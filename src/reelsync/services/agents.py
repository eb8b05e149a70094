"""What an enrolled agent asks of the control plane (its own view, not a user's).

Rules: the caller has already authenticated the agent (services.servers.authenticate_server). A
heartbeat marks the agent online and records how peers reach it; its answer lists the revoked
agents (whose certificates peers must refuse) and the volumes the agent serves - the volumes
explicitly assigned to it (server_volume rows) or, when none are, every enabled volume with a
path at the agent's site - each with that site's path prefix as its root (the prefix for the OS
the agent reports, when the volume has per-OS prefixes there).
The control plane never touches volume files itself: file operations go to an online agent of the
volume's site (:func:`agents_serving`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.records import Actor, Server, ServerStatus
from reelsync.errors import ValidationError
from reelsync.services import volumes
from reelsync.services.servers import get_server_row, revoked_server_ids, server_record
from reelsync.services.sites import get_site_row, main_site_row

__all__ = [
    "AgentView",
    "ServedVolume",
    "agents_serving",
    "checked_in",
    "heartbeat",
    "list_agents",
    "record_certificate",
    "served_volumes",
]


@dataclass(frozen=True, slots=True)
class ServedVolume:
    """A volume an agent serves, rooted at its site's path prefix."""

    id: str
    code: str
    root: str


@dataclass(frozen=True, slots=True)
class AgentView:
    """The heartbeat's answer: the agent as the control plane sees it and what it serves."""

    server: Server
    volumes: tuple[ServedVolume, ...]
    bandwidth_limit: float | None
    revoked_agents: tuple[str, ...] = ()
    became_online: bool = False  # this heartbeat brought it back (work may be dispatchable now)


def _site_code(session: Session, site_id: str) -> str:
    return session.scalar(select(m.Site.code).where(m.Site.id == site_id)) or ""


def served_volumes(session: Session, server: m.Server) -> tuple[ServedVolume, ...]:
    """Volumes ``server`` serves, with the local root at its site."""
    query = (
        select(m.Volume.id, m.Volume.code, m.VolumePath.prefix, m.VolumePath.os_prefixes)
        .join(m.VolumePath, m.VolumePath.volume_id == m.Volume.id)
        .where(m.VolumePath.site_id == server.site_id, m.Volume.enabled.is_(True))
    )
    assigned = set(
        session.scalars(
            select(m.ServerVolume.volume_id).where(m.ServerVolume.server_id == server.id)
        )
    )
    rows = session.execute(query.order_by(m.Volume.code))
    own_os = str((server.info or {}).get("os") or "")
    return tuple(
        ServedVolume(id=vid, code=code, root=(per_os or {}).get(own_os) or prefix)
        for vid, code, prefix, per_os in rows
        if not assigned or vid in assigned
    )


def _limit_of(row: m.Server) -> float | None:
    value = (row.info or {}).get("bandwidth_limit")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def checked_in(db: Database, server_id: str) -> None:
    """The agent was heard from now (a work long-poll arrived): its ``last_checkin``."""
    with db.session() as session:
        session.execute(
            update(m.Server).where(m.Server.id == server_id).values(last_checkin=utcnow())
        )


def heartbeat(
    db: Database,
    server_id: str,
    *,
    version: str | None = None,
    peer_address: str | None = None,
    peer_port: int | None = None,
    dialable: bool = False,
    rate_sent: float | None = None,
    rate_received: float | None = None,
    applied_limit: float | None = None,
    os: str | None = None,
    username: str | None = None,
    wan_ip: str | None = None,
    now: datetime | None = None,
) -> AgentView:
    """Mark the agent online, record its version, peer endpoint and bandwidth (its rates over
    the last interval and the limit it applies, bytes/s); what it should serve and the limit an
    admin set for it centrally."""
    if peer_port is not None and not 0 < peer_port < 65536:
        raise ValidationError(f"peer_port must be 1..65535, got {peer_port}")
    if dialable and (not peer_address or peer_port is None):
        raise ValidationError("a dialable agent must give its peer_address and peer_port")
    with db.session() as session:
        row = get_server_row(session, server_id)
        stamp = now or utcnow()
        was = row.status
        if row.status not in (ServerStatus.DISABLED, ServerStatus.REVOKED):
            row.status = ServerStatus.ONLINE.value
        row.last_checkin = stamp
        row.version = (version or row.version or "")[:64] or None
        row.peer_address = (peer_address or "")[:255] or None
        row.peer_port = peer_port
        row.dialable = bool(dialable)
        info = dict(row.info or {})
        for key, value in (
            ("rate_sent", rate_sent),
            ("rate_received", rate_received),
            ("applied_limit", applied_limit),
        ):
            if value is not None and value >= 0:
                info[key] = round(float(value), 1)
            else:
                info.pop(key, None)
        for key, text in (("os", os), ("username", username), ("wan_ip", wan_ip)):
            if text:
                info[key] = text[:255]
        row.info = info
        row.modified = stamp
        return AgentView(
            server=server_record(row, _site_code(session, row.site_id)),
            volumes=served_volumes(session, row),
            bandwidth_limit=_limit_of(row),
            revoked_agents=tuple(revoked_server_ids(session)),
            became_online=was != row.status,
        )


def list_agents(db: Database, actor: Actor) -> list[AgentView]:
    """Every enrolled agent with the volumes it serves, as ``actor`` may see them: every user sees
    the agents (as :func:`reelsync.services.servers.list_servers`), and of their volumes only
    those :func:`reelsync.services.volumes.list_volumes` shows ``actor``."""
    visible = {v.id for v in volumes.list_volumes(db, actor)}
    with db.reader() as session:
        rows = session.execute(
            select(m.Server, m.Site.code)
            .join(m.Site, m.Site.id == m.Server.site_id)
            .order_by(m.Site.code, m.Server.hostname)
        ).all()
        return [
            AgentView(
                server=server_record(row, code),
                volumes=tuple(v for v in served_volumes(session, row) if v.id in visible),
                bandwidth_limit=_limit_of(row),
            )
            for row, code in rows
        ]


def record_certificate(db: Database, server_id: str, *, fingerprint: str, serial: str) -> None:
    """Store the fingerprint and serial of the certificate issued to the agent at enrollment."""
    with db.session() as session:
        row = get_server_row(session, server_id)
        row.cert_fingerprint, row.cert_serial = fingerprint, serial
        row.modified = utcnow()


def agents_serving(db: Database, volume_id: str, *, site_code: str | None = None) -> list[Server]:
    """Online agents that serve ``volume_id`` at site ``site_code`` (the main site when None),
    most recently seen first."""
    with db.reader() as session:
        site = main_site_row(session) if site_code is None else get_site_row(session, site_code)
        query = select(m.Server).where(
            m.Server.status == ServerStatus.ONLINE.value, m.Server.site_id == site.id
        )
        out = []
        for row in session.scalars(query.order_by(m.Server.last_checkin.desc())):
            if any(v.id == volume_id for v in served_volumes(session, row)):
                out.append(server_record(row, site.code))
        return out
