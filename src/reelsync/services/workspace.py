"""The workspace: one per database, made by :mod:`reelsync.services.bootstrap`."""

from __future__ import annotations

from sqlalchemy import select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor, Workspace
from reelsync.errors import NotFoundError

__all__ = ["get_workspace"]


def get_workspace(db: Database, actor: Actor | None = None) -> Workspace:
    """The workspace (``actor`` may be None: its code is not a secret, accsyn sends it in clear)."""
    del actor
    with db.session() as session:
        row = session.scalar(select(m.Workspace).limit(1))
        if row is None:
            raise NotFoundError("no workspace in this database", hint="run reelsync server init")
        return Workspace(id=row.id, code=row.code, name=row.name, created=row.created)
