"""ACLs: a user's read and write rights on a volume or a sub-path of it.

Rules: only an admin grants or revokes. A grant covers its path and everything below it (``""`` is
the whole volume); read = list/download (the source of a transfer), write = upload, mkdir, rename,
move, delete (the destination). Read and write may not both be false. A second grant to the same
user, volume and path updates the one ACL. Admins pass every check.

A path is judged where it really leads: each check also gives the *scope*, the widest granted
sub-path covering it (``""`` for an admin or a whole-volume grant), and the agent that touches the
file refuses it unless its resolved path (symlinks followed) lies inside the scope's resolved
path (:meth:`reelsync.fs.Volume.check_within`). File operations carry the scope; transfers carry
it in their ticket (:func:`transfer_scopes`, judged again when the agent is handed the work).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.ids import new_entity_id
from reelsync.domain.party import normalise_relative
from reelsync.domain.paths import covers
from reelsync.domain.records import Acl, Actor, Role
from reelsync.errors import NotFoundError, PermissionDeniedError, ValidationError
from reelsync.services import catalog
from reelsync.services.auth import require_admin
from reelsync.services.users import get_user_row
from reelsync.services.volumes import get_volume_row

__all__ = [
    "AccessRules",
    "TransferScopes",
    "check_access",
    "grant",
    "list_acls",
    "revoke_acl",
    "transfer_scopes",
]


_Grant = catalog.Grant


def _scope(
    admin: bool,
    grants: Iterable[_Grant],
    volume_id: str,
    path: str,
    *,
    read: bool = False,
    write: bool = False,
) -> str | None:
    if admin:
        return ""
    best: str | None = None
    for g in grants:
        if g.volume_id != volume_id or not covers(g.path, path):
            continue
        if (read and not g.read) or (write and not g.write):
            continue
        if best is None or len(g.path) < len(best):
            best = g.path
    return best


class AccessRules:
    """One actor's grants, loaded once, to check many paths (a 100,000-task submit)."""

    def __init__(self, session: Session, actor: Actor) -> None:
        self.actor = actor
        self._grants: tuple[_Grant, ...] = ()
        if not actor.is_admin:
            self._grants = catalog.current(session).grants.get(actor.user_id, ())

    def allows(self, volume_id: str, path: str, *, read: bool = False, write: bool = False) -> bool:
        if self.actor.is_admin:
            return True
        can_read = can_write = False
        for g in self._grants:
            if g.volume_id == volume_id and covers(g.path, path):
                can_read = can_read or g.read
                can_write = can_write or g.write
        return (can_read or not read) and (can_write or not write)

    def scope(
        self, volume_id: str, path: str, *, read: bool = False, write: bool = False
    ) -> str | None:
        """The widest granted sub-path that covers ``path`` with the rights asked for (``""``:
        the whole volume), None when none does."""
        return _scope(self.actor.is_admin, self._grants, volume_id, path, read=read, write=write)

    def check(
        self,
        volume_id: str,
        volume_code: str,
        path: str,
        *,
        read: bool = False,
        write: bool = False,
    ) -> str:
        """The scope of ``path`` (see :meth:`scope`); PermissionDeniedError without access."""
        if not self.allows(volume_id, path, read=read, write=write):
            need = "write" if write else "read"
            raise PermissionDeniedError(
                f"{self.actor.email} has no {need} access to volume={volume_code}/{path}",
                hint="ask an admin for a grant",
            )
        found = self.scope(volume_id, path, read=read, write=write)
        if found is None:  # read and write granted by different sub-paths: the narrower one
            reads = self.scope(volume_id, path, read=True)
            writes = self.scope(volume_id, path, write=True)
            found = max(reads or "", writes or "", key=len)
        return found

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
    with db.reader() as session:
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
) -> str:
    """Raise PermissionDeniedError unless ``actor`` may read/write ``volume``/``path`` (a path
    relative to the volume root; ``volume`` an id or code); the path's scope (see the module's
    rules), which the agent doing the operation checks the resolved path against."""
    with db.reader() as session:
        row = get_volume_row(session, volume)
        rules = AccessRules(session, actor)
        return rules.check(row.id, row.code, normalise_relative(path), read=read, write=write)


#: task id -> (source scope, destination scope); None: the job's owner lost that access.
TransferScopes = dict[str, tuple[str | None, str | None]]


def transfer_scopes(db: Database, task_ids: Iterable[str]) -> TransferScopes:
    """The scopes of tasks being handed to agents, from their job owner's grants now (an ACL
    revoked since the submit gives None: the agent refuses that file)."""
    ids = list(task_ids)
    if not ids:
        return {}
    with db.session() as session:
        rows = session.execute(
            select(
                m.Task.id,
                m.Task.source_volume_id,
                m.Task.source_path,
                m.Task.destination_volume_id,
                m.Task.destination_path,
                m.User.id,
                m.User.role,
            )
            .join(m.Job, m.Job.id == m.Task.job_id)
            .join(m.User, m.User.id == m.Job.user_id)
            .where(m.Task.id.in_(ids))
        ).all()
        owners = {row[5] for row in rows if row[6] != Role.ADMIN.value}
        grants: dict[str, list[_Grant]] = {}
        if owners:
            for acl in session.scalars(select(m.Acl).where(m.Acl.user_id.in_(owners))):
                grants.setdefault(acl.user_id, []).append(
                    _Grant(acl.volume_id, acl.path, acl.read, acl.write)
                )
    scopes: TransferScopes = {}
    for task_id, src_vol, src_path, dst_vol, dst_path, user_id, role in rows:
        admin = role == Role.ADMIN.value
        mine = grants.get(user_id, [])
        scopes[task_id] = (
            _scope(admin, mine, src_vol, src_path, read=True),
            _scope(admin, mine, dst_vol, dst_path, write=True),
        )
    return scopes
