"""Volumes: named storage, found at a path prefix per site. Exactly one is the default.

Rules: only an admin creates, changes or deletes volumes; admins see every volume, other users the
volumes an ACL grants them. The first volume becomes the default; making another the default takes
the flag. Prefixes are absolute (``/mnt/projects``, ``D:\\projects``, ``\\\\nas\\projects``), stored
with ``/`` separators, without ``..``. A volume used by tasks cannot be deleted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.codes import parse_code
from reelsync.domain.hostos import OS_NAMES, is_os_key
from reelsync.domain.ids import is_entity_id, new_entity_id
from reelsync.domain.party import DEFAULT_VOLUME, normalise_relative
from reelsync.domain.records import Actor, Volume
from reelsync.errors import ConflictError, NotFoundError, PathError, ValidationError
from reelsync.services.auth import require_admin
from reelsync.services.sites import get_site_row, main_site_row

__all__ = [
    "assign_server",
    "create_volume",
    "default_volume_row",
    "delete_volume",
    "get_volume",
    "get_volume_row",
    "list_volumes",
    "normalise_prefix",
    "record",
    "serving_server_ids",
    "unassign_server",
    "update_volume",
    "volume_paths",
]

_DRIVE_RE = re.compile(r"^([A-Za-z]):[\\/]")


def normalise_prefix(text: object) -> str:
    """An absolute path prefix with ``/`` separators and no trailing separator."""
    if not isinstance(text, str) or not text.strip():
        raise PathError("a volume path must be a non-empty absolute path")
    raw = text.strip()
    if raw.startswith(("\\\\", "//")):
        body = normalise_relative(raw[2:])
        if not body:
            raise PathError(f"a UNC volume path needs a server and share: {raw!r}")
        return f"//{body}"
    if match := _DRIVE_RE.match(raw):
        return f"{match.group(1).upper()}:/{normalise_relative(raw[3:])}"
    if raw.startswith("/"):
        return "/" + normalise_relative(raw)
    raise PathError(f"a volume path must be absolute, got {raw!r}", hint="e.g. /mnt/projects")


def volume_paths(
    session: Session, volume_ids: list[str] | None = None
) -> dict[str, dict[str, str]]:
    """volume id -> {site code: prefix}."""
    query = select(m.VolumePath.volume_id, m.Site.code, m.VolumePath.prefix).join(
        m.Site, m.Site.id == m.VolumePath.site_id
    )
    if volume_ids is not None:
        query = query.where(m.VolumePath.volume_id.in_(volume_ids))
    out: dict[str, dict[str, str]] = {}
    for volume_id, site_code, prefix in session.execute(query):
        out.setdefault(volume_id, {})[site_code] = prefix
    return out


def record(row: m.Volume, paths: Mapping[str, str]) -> Volume:
    return Volume(
        id=row.id,
        code=row.code,
        name=row.name,
        default=row.is_default,
        enabled=row.enabled,
        paths=dict(sorted(paths.items())),
        created=row.created,
        modified=row.modified,
    )


def default_volume_row(session: Session) -> m.Volume:
    row = session.scalar(select(m.Volume).where(m.Volume.is_default.is_(True)))
    if row is None:
        raise NotFoundError(
            "the workspace has no default volume", hint="create one: reelsync volume create CODE"
        )
    return row


def get_volume_row(session: Session, ref: str) -> m.Volume:
    """A volume by id or code; ``(default)`` names the default volume."""
    if isinstance(ref, str) and ref.strip().lower() == DEFAULT_VOLUME:
        return default_volume_row(session)
    row = session.get(m.Volume, ref) if is_entity_id(ref) else None
    if row is None and isinstance(ref, str):
        row = session.scalar(select(m.Volume).where(m.Volume.code == ref.strip().lower()))
    if row is None:
        raise NotFoundError(f"no volume {ref!r}", hint="list them with: reelsync volume list")
    return row


def _granted_ids(session: Session, actor: Actor) -> set[str]:
    return set(session.scalars(select(m.Acl.volume_id).where(m.Acl.user_id == actor.user_id)))


def _per_os(value: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """A site's ``{os: prefix}`` form: (the prefix for agents reporting no listed OS, the map)."""
    unknown = sorted(k for k in value if not isinstance(k, str) or not is_os_key(k))
    if unknown or not value:
        raise ValidationError(
            f"per-OS volume paths are keyed {', '.join(OS_NAMES)} (or *_vpn), not {unknown}"
        )
    per_os = {k.strip().lower(): normalise_prefix(v) for k, v in value.items() if v}
    if not per_os:
        raise ValidationError("per-OS volume paths need at least one path")
    return per_os.get("linux") or next(iter(per_os.values())), per_os


def _set_paths(session: Session, volume: m.Volume, paths: Mapping[str, Any]) -> None:
    """``{site: prefix}``; a site's value may be ``{os: prefix}``; top-level OS keys (accsyn's
    ``{"windows": ..., "linux": ..., "mac": ...}``) are the main site's per-OS prefixes."""
    if not isinstance(paths, Mapping):
        raise ValidationError("paths must be an object {site: prefix}")
    by_site: dict[str, Any] = {k: v for k, v in paths.items() if not is_os_key(str(k))}
    os_keys = {k: v for k, v in paths.items() if is_os_key(str(k))}
    if os_keys:
        by_site[main_site_row(session).code] = os_keys
    for site_ref, value in by_site.items():
        site = get_site_row(session, site_ref)
        session.execute(
            delete(m.VolumePath).where(
                m.VolumePath.volume_id == volume.id, m.VolumePath.site_id == site.id
            )
        )
        if isinstance(value, Mapping):
            prefix, per_os = _per_os(value)
            session.add(
                m.VolumePath(
                    volume_id=volume.id, site_id=site.id, prefix=prefix, os_prefixes=per_os
                )
            )
        elif value is not None and value != "":
            session.add(
                m.VolumePath(volume_id=volume.id, site_id=site.id, prefix=normalise_prefix(value))
            )
    session.flush()


def _make_default(session: Session, row: m.Volume) -> None:
    session.execute(
        update(m.Volume)
        .where(m.Volume.is_default.is_(True), m.Volume.id != row.id)
        .values(is_default=False)
    )
    session.flush()
    row.is_default = True


def create_volume(
    db: Database,
    actor: Actor,
    *,
    code: str,
    name: str | None = None,
    default: bool = False,
    paths: Mapping[str, Any] | None = None,
) -> Volume:
    require_admin(actor, "create volumes")
    with db.session() as session:
        volume_code = parse_code("volume", code)
        if volume_code == DEFAULT_VOLUME or session.scalar(
            select(m.Volume.id).where(m.Volume.code == volume_code)
        ):
            raise ConflictError(f"a volume {volume_code!r} already exists")
        first = session.scalar(select(m.Volume.id).limit(1)) is None
        now = utcnow()
        row = m.Volume(
            id=new_entity_id(),
            code=volume_code,
            name=(name or volume_code).strip(),
            is_default=False,
            enabled=True,
            created=now,
            modified=now,
        )
        session.add(row)
        session.flush()
        if default or first:
            _make_default(session, row)
        _set_paths(session, row, paths or {})
        return record(row, volume_paths(session, [row.id]).get(row.id, {}))


def get_volume(db: Database, actor: Actor, ref: str) -> Volume:
    with db.reader() as session:
        row = get_volume_row(session, ref)
        if not actor.is_admin and row.id not in _granted_ids(session, actor):
            raise NotFoundError(f"no volume {ref!r}")
        return record(row, volume_paths(session, [row.id]).get(row.id, {}))


def list_volumes(db: Database, actor: Actor) -> list[Volume]:
    with db.reader() as session:
        rows = list(session.scalars(select(m.Volume).order_by(m.Volume.code)))
        if not actor.is_admin:
            granted = _granted_ids(session, actor)
            rows = [r for r in rows if r.id in granted]
        paths = volume_paths(session)
        return [record(r, paths.get(r.id, {})) for r in rows]


def update_volume(
    db: Database,
    actor: Actor,
    ref: str,
    *,
    code: str | None = None,
    name: str | None = None,
    default: bool | None = None,
    enabled: bool | None = None,
    paths: Mapping[str, Any] | None = None,
) -> Volume:
    """Change a volume. ``paths`` merges: ``{site: prefix}`` sets, ``{site: None}`` removes.
    A new ``code`` renames it (jobs and ACLs refer to it by id, so they follow)."""
    require_admin(actor, "change volumes")
    with db.session() as session:
        row = get_volume_row(session, ref)
        if code is not None:
            new_code = parse_code("volume", code)
            taken = session.scalar(
                select(m.Volume.id).where(m.Volume.code == new_code, m.Volume.id != row.id)
            )
            if new_code == DEFAULT_VOLUME or taken:
                raise ConflictError(f"a volume {new_code!r} already exists")
            row.code = new_code
        if name is not None:
            row.name = name.strip()
        if default is False and row.is_default:
            raise ConflictError("a workspace needs a default volume", hint="make another default")
        if default:
            _make_default(session, row)
        if enabled is not None:
            row.enabled = bool(enabled)
        if paths is not None:
            _set_paths(session, row, paths)
        row.modified = utcnow()
        return record(row, volume_paths(session, [row.id]).get(row.id, {}))


def delete_volume(db: Database, actor: Actor, ref: str) -> None:
    require_admin(actor, "delete volumes")
    with db.session() as session:
        row = get_volume_row(session, ref)
        used = select(m.Task.id).where(
            (m.Task.source_volume_id == row.id) | (m.Task.destination_volume_id == row.id)
        )
        if session.scalar(used.limit(1)):
            raise ConflictError(f"volume {row.code} is used by jobs", hint="disable it instead")
        others = session.scalar(select(m.Volume).where(m.Volume.id != row.id).limit(1))
        if row.is_default and others is not None:
            raise ConflictError(
                f"{row.code} is the default volume", hint="make another volume default first"
            )
        session.delete(row)


def _server_row(session: Session, server_id: str) -> m.Server:
    row = session.get(m.Server, server_id.strip().lower()) if is_entity_id(server_id) else None
    if row is None:
        raise NotFoundError(f"no server {server_id!r}", hint="list them with: reelsync agent list")
    return row


def assign_server(db: Database, actor: Actor, ref: str, server_id: str) -> None:
    """Make ``server`` serve the volume. A server with assignments serves only those volumes;
    one without serves every volume that has a path at its site (the scheduler honours both)."""
    require_admin(actor, "assign servers to volumes")
    with db.session() as session:
        volume = get_volume_row(session, ref)
        server = _server_row(session, server_id)
        at_site = session.scalar(
            select(m.VolumePath.prefix).where(
                m.VolumePath.volume_id == volume.id, m.VolumePath.site_id == server.site_id
            )
        )
        if at_site is None:
            site = session.get(m.Site, server.site_id)
            code = site.code if site is not None else server.site_id
            raise ValidationError(
                f"volume {volume.code} has no path at site {code}, where {server.hostname} is",
                hint=f"give it one first: paths {{'{code}': '/path/at/{code}'}}",
            )
        if session.get(m.ServerVolume, (server.id, volume.id)) is None:
            session.add(m.ServerVolume(server_id=server.id, volume_id=volume.id))


def unassign_server(db: Database, actor: Actor, ref: str, server_id: str) -> None:
    """Stop ``server`` serving the volume (its other assignments stay; with none left it serves
    every volume with a path at its site again)."""
    require_admin(actor, "assign servers to volumes")
    with db.session() as session:
        volume = get_volume_row(session, ref)
        server = _server_row(session, server_id)
        row = session.get(m.ServerVolume, (server.id, volume.id))
        if row is None:
            raise NotFoundError(f"{server.hostname} is not assigned to volume {volume.code}")
        session.delete(row)


def serving_server_ids(db: Database, actor: Actor, ref: str) -> list[str]:
    """Ids of the servers that serve the volume (assigned, or unassigned at a site where it has
    a path), online or not."""
    with db.session() as session:
        volume = get_volume_row(session, ref)
        if not actor.is_admin and volume.id not in _granted_ids(session, actor):
            raise NotFoundError(f"no volume {ref!r}")
        sites = set(
            session.scalars(select(m.VolumePath.site_id).where(m.VolumePath.volume_id == volume.id))
        )
        listed: dict[str, set[str]] = {}
        for server_id, volume_id in session.execute(
            select(m.ServerVolume.server_id, m.ServerVolume.volume_id)
        ):
            listed.setdefault(server_id, set()).add(volume_id)
        rows = session.execute(
            select(m.Server.id, m.Server.site_id).order_by(m.Server.hostname, m.Server.id)
        )
        return [
            sid
            for sid, site_id in rows
            if site_id in sites and (sid not in listed or volume.id in listed[sid])
        ]
