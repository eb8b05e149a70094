"""ACLs: a user's read and write rights on a volume or a sub-path of it.

Rules: only an admin grants or revokes. A grant covers its path and everything below it (``""`` is
the whole volume); read = list/download (the source of a transfer), write = upload, mkdir, rename,
move, delete (the destination). Read and write may not both be false. A second grant to the same
user, volume and path updates the one ACL. Admins pass every check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.ids import new_entity_id
from reelsync.domain.party import normalise_relative
from reelsync.domain.records import Acl, Actor
from reelsync.errors import NotFoundError, PermissionDeniedError, ValidationError
from reelsync.services.auth import require_admin
from reelsync.services.users import get_user_row
from reelsync.services.volumes import get_volume_row

__all__ = ["AccessRules", "check_access", "grant", "list_acls", "revoke_acl"]


@dataclass(frozen=True, slots=True)
class _Grant:
    volume_id: str
    path: str
    read: bool
    write: bool


def _covers(grant_path: str, path: str) -> bool:
    return not grant_path or path == grant_path or path.startswith(grant_path + "/")


class AccessRules:
    """One actor's grants, loaded once, to check many paths (a 100,000-task submit)."""

    def __init__(self, session: Session, actor: Actor) -> None:
        self.actor = actor
        self._grants: tuple[_Grant, ...] = ()
        if not actor.is_admin:
            rows = session.scalars(select(m.Acl).where(m.Acl.user_id == actor.user_id))
            self._grants = tuple(_Grant(r.volume_id, r.path, r.read, r.write) for r in rows)

    def allows(self, volume_id: str, path: str, *, read: bool = False, write: bool = False) -> bool:
        if self.actor.is_admin:
            return True
        can_read = can_write = False
        for g in self._grants:
            if g.volume_id == volume_id and _covers(g.path, path):
                can_read = can_read or g.read
                can_write = can_write or g.write
        return (can_read or not read) and (can_write or not write)

    def check(
        self,
        volume_id: str,
        volume_code: str,
        path: str,
        *,
        read: bool = False,
        write: bool = False,
    ) -> None:
        if not self.allows(volume_id, path, read=read, write=write):
            need = "write" if write else "read"
            raise PermissionDeniedError(
                f"{self.actor.email} has no {need} access to volume={volume_code}/{path}",
                hint="ask an admin for a grant",
            )

    def visible_volumes(self) -> Iterable[str]:
        return {g.volume_id for g in self._grants}


def _record(row: m.Acl, email: str, volume_code: str) -> Acl:
    return Acl(
        id=row.id,
        user_id=row.user_id,
        user=email,
        volume_id=row.volume_id,
        volume=volume_code,
        path=row.path,
        read=row.read,
        write=row.write,
        created=row.created,
        modified=row.modified,
    )


def _acl_path(path: str | None) -> str:
    if path is None:
        return ""
    if not isinstance(path, str):
        raise ValidationError("an ACL path must be a string like 'proj001/sc0010'")
    return normalise_relative(path)


def grant(
    db: Database,
    actor: Actor,
    *,
    user: str,
    volume: str,
    path: str | None = None,
    read: bool = True,
    write: bool = False,
) -> Acl:
    """Grant (or change) ``user``'s rights on ``volume``/``path``."""
    require_admin(actor, "grant access")
    if not read and not write:
        raise ValidationError("a grant needs read, write or both")
    with db.session() as session:
        user_row = get_user_row(session, user)
        volume_row = get_volume_row(session, volume)
        acl_path = _acl_path(path)
        row = session.scalar(
            select(m.Acl).where(
                m.Acl.user_id == user_row.id,
                m.Acl.volume_id == volume_row.id,
                m.Acl.path == acl_path,
            )
        )
        now = utcnow()
        if row is None:
            row = m.Acl(
                id=new_entity_id(),
                user_id=user_row.id,
                volume_id=volume_row.id,
                path=acl_path,
                created=now,
            )
            session.add(row)
        row.read, row.write, row.modified = bool(read), bool(write), now
        session.flush()
        return _record(row, user_row.email, volume_row.code)


def list_acls(
    db: Database, actor: Actor, *, user: str | None = None, volume: str | None = None
) -> list[Acl]:
    """ACLs, optionally of one user and/or volume. Non-admins see only their own."""
    with db.session() as session:
        query = (
            select(m.Acl, m.User.email, m.Volume.code)
            .join(m.User, m.User.id == m.Acl.user_id)
            .join(m.Volume, m.Volume.id == m.Acl.volume_id)
            .order_by(m.User.email, m.Volume.code, m.Acl.path)
        )
        if user is not None:
            query = query.where(m.Acl.user_id == get_user_row(session, user).id)
        if volume is not None:
            query = query.where(m.Acl.volume_id == get_volume_row(session, volume).id)
        if not actor.is_admin:
            query = query.where(m.Acl.user_id == actor.user_id)
        return [_record(row, email, code) for row, email, code in session.execute(query)]


def revoke_acl(db: Database, actor: Actor, acl_id: str) -> None:
    require_admin(actor, "revoke access")
    with db.session() as session:
        row = session.get(m.Acl, acl_id)
        if row is None:
            raise NotFoundError(f"no ACL {acl_id!r}")
        session.delete(row)


def check_access(
    db: Database, actor: Actor, volume: str, path: str, *, read: bool = False, write: bool = False
) -> None:
    """Raise PermissionDeniedError unless ``actor`` may read/write ``volume``/``path`` (a path
    relative to the volume root; ``volume`` an id or code). For file operations on a volume."""
    with db.session() as session:
        row = get_volume_row(session, volume)
        rules = AccessRules(session, actor)
        rules.check(row.id, row.code, normalise_relative(path), read=read, write=write)
