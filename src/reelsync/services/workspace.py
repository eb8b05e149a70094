"""The workspace: one per database, made by :mod:`reelsync.services.bootstrap`."""

from __future__ import annotations

from sqlalchemy import select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor, Workspace
from reelsync.errors import NotFoundError, ValidationError
from reelsync.services.auth import require_admin

__all__ = ["get_workspace", "update_workspace"]


def get_workspace(db: Database, actor: Actor | None = None) -> Workspace:
    """The workspace (``actor`` may be None: its code is not a secret, accsyn sends it in clear)."""
    del actor
    with db.reader() as session:
        row = session.scalar(select(m.Workspace).limit(1))
        if row is None:
            raise NotFoundError("no workspace in this database", hint="run reelsync server init")
        return _record(row)


def _record(row: m.Workspace) -> Workspace:
    return Workspace(
        id=row.id,
        code=row.code,
        name=row.name,
        created=row.created,
        description=row.description or "",
    )


def update_workspace(
    db: Database, actor: Actor, *, name: str | None = None, description: str | None = None
) -> Workspace:
    """Rename the workspace or change its description (admin). Its code never changes: it is
    what clients name it by."""
    require_admin(actor, "change the workspace")
    with db.session() as session:
        row = session.scalar(select(m.Workspace).limit(1))
        if row is None:
            raise NotFoundError("no workspace in this database", hint="run reelsync server init")
        if name is not None:
            if not isinstance(name, str) or not name.strip() or len(name) > 255:
                raise ValidationError("a workspace name is 1..255 characters")
            row.name = name.strip()
        if description is not None:
            if not isinstance(description, str) or len(description) > 4000:
                raise ValidationError("a description is at most 4000 characters")
            row.description = description
        return _record(row)
