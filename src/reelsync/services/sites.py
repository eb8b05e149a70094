"""Sites: the studio's premises. Exactly one is the main site (``hq`` after init).

Rules: every user may read sites; only an admin creates, changes or deletes them. Making a site main
takes the flag from the old one. The main site, and a site still used by servers or jobs, cannot be
deleted.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.codes import parse_code
from reelsync.domain.ids import is_entity_id, new_entity_id
from reelsync.domain.records import Actor, Site
from reelsync.errors import ConflictError, NotFoundError, ValidationError
from reelsync.services.auth import require_admin

__all__ = [
    "SITE_CODE_MAX",
    "add_site",
    "create_site",
    "delete_site",
    "get_site",
    "get_site_row",
    "list_sites",
    "main_site_row",
    "record",
    "update_site",
]

SITE_CODE_MAX = 32


def record(row: m.Site) -> Site:
    return Site(
        id=row.id,
        code=row.code,
        name=row.name,
        main=row.main,
        enabled=row.enabled,
        created=row.created,
        modified=row.modified,
    )


def get_site_row(session: Session, ref: str) -> m.Site:
    row = session.get(m.Site, ref) if is_entity_id(ref) else None
    if row is None and isinstance(ref, str):
        row = session.scalar(select(m.Site).where(m.Site.code == ref.strip().lower()))
    if row is None:
        raise NotFoundError(f"no site {ref!r}", hint="list them with: reelsync site list")
    return row


def main_site_row(session: Session) -> m.Site:
    row = session.scalar(select(m.Site).where(m.Site.main.is_(True)))
    if row is None:
        raise NotFoundError("the workspace has no main site", hint="run reelsync server init")
    return row


def add_site(session: Session, *, code: str, name: str | None = None, main: bool = False) -> m.Site:
    site_code = parse_code("site", code, max_len=SITE_CODE_MAX)
    if session.scalar(select(m.Site.id).where(m.Site.code == site_code)):
        raise ConflictError(f"a site {site_code!r} already exists")
    if main:
        session.execute(update(m.Site).where(m.Site.main.is_(True)).values(main=False))
    now = utcnow()
    row = m.Site(
        id=new_entity_id(),
        code=site_code,
        name=(name or site_code).strip(),
        main=main,
        enabled=True,
        created=now,
        modified=now,
    )
    session.add(row)
    session.flush()
    return row


def create_site(db: Database, actor: Actor, *, code: str, name: str | None = None) -> Site:
    require_admin(actor, "create sites")
    with db.session() as session:
        return record(add_site(session, code=code, name=name))


def get_site(db: Database, actor: Actor, ref: str) -> Site:
    del actor  # every user may read sites
    with db.reader() as session:
        return record(get_site_row(session, ref))


def list_sites(db: Database, actor: Actor) -> list[Site]:
    del actor
    with db.reader() as session:
        return [record(r) for r in session.scalars(select(m.Site).order_by(m.Site.code))]


def update_site(
    db: Database,
    actor: Actor,
    ref: str,
    *,
    name: str | None = None,
    enabled: bool | None = None,
    main: bool | None = None,
) -> Site:
    require_admin(actor, "change sites")
    with db.session() as session:
        row = get_site_row(session, ref)
        if name is not None:
            if len(name) > 255:
                raise ValidationError("a site name may be at most 255 characters")
            row.name = name.strip()
        if main is False and row.main:
            raise ConflictError("a workspace needs a main site", hint="make another site main")
        if enabled is False and (row.main or main):
            raise ConflictError("the main site cannot be disabled")
        if main and not row.main:
            session.execute(update(m.Site).where(m.Site.main.is_(True)).values(main=False))
            session.flush()
            row.main = True
        if enabled is not None:
            row.enabled = bool(enabled)
        row.modified = utcnow()
        return record(row)


def delete_site(db: Database, actor: Actor, ref: str) -> None:
    require_admin(actor, "delete sites")
    with db.session() as session:
        row = get_site_row(session, ref)
        if row.main:
            raise ConflictError(f"{row.code} is the main site and cannot be deleted")
        if session.scalar(select(m.Server.id).where(m.Server.site_id == row.id).limit(1)):
            raise ConflictError(f"site {row.code} has servers", hint="delete its servers first")
        used = select(m.Job.id).where(
            (m.Job.source_site_id == row.id) | (m.Job.destination_site_id == row.id)
        )
        if session.scalar(used.limit(1)):
            raise ConflictError(f"site {row.code} is used by jobs", hint="disable it instead")
        session.delete(row)
