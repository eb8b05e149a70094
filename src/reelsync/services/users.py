"""Users: e-mail, name, role (admin, employee, standard), enabled.

Rules: only an admin creates, changes or deletes users (a user may change their own name). Admins
see every user, employees see themselves and standard users, standard users see themselves. The
last enabled admin can be neither demoted, disabled nor deleted. A user with jobs cannot be deleted
(disable them instead).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.codes import parse_email
from reelsync.domain.ids import is_entity_id, new_entity_id
from reelsync.domain.records import Actor, Role, User
from reelsync.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from reelsync.services.auth import require_admin

__all__ = [
    "add_user",
    "create_user",
    "delete_user",
    "get_user",
    "get_user_row",
    "list_users",
    "parse_role",
    "record",
    "update_user",
]


def parse_role(value: object) -> Role:
    try:
        return Role(str(value).strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise ValidationError(f"unknown role {value!r}; expected one of {names}") from None


def record(row: m.User) -> User:
    return User(
        id=row.id,
        email=row.email,
        name=row.name,
        role=Role(row.role),
        enabled=row.enabled,
        created=row.created,
        modified=row.modified,
    )


def get_user_row(session: Session, ref: str) -> m.User:
    """A user by id or e-mail (case-insensitive)."""
    row = session.get(m.User, ref) if is_entity_id(ref) else None
    if row is None and isinstance(ref, str):
        row = session.scalar(select(m.User).where(m.User.email == ref.strip().lower()))
    if row is None:
        raise NotFoundError(f"no user {ref!r}")
    return row


def _visible(actor: Actor, row: m.User) -> bool:
    if actor.is_admin or row.id == actor.user_id:
        return True
    return actor.role is Role.EMPLOYEE and row.role == Role.STANDARD


def _name(value: object) -> str:
    if not isinstance(value, str) or len(value) > 255:
        raise ValidationError("a name must be a string of at most 255 characters")
    return value.strip()


def add_user(
    session: Session,
    *,
    email: str,
    name: str = "",
    role: Role | str = Role.STANDARD,
    enabled: bool = True,
) -> m.User:
    """Insert a user in ``session`` (no permission check: bootstrap and admins only)."""
    address = parse_email(email)
    if session.scalar(select(m.User.id).where(m.User.email == address)):
        raise ConflictError(f"a user {address} already exists")
    now = utcnow()
    row = m.User(
        id=new_entity_id(),
        email=address,
        name=_name(name),
        role=parse_role(role).value,
        enabled=bool(enabled),
        created=now,
        modified=now,
    )
    session.add(row)
    session.flush()
    return row


def create_user(
    db: Database,
    actor: Actor,
    *,
    email: str,
    name: str = "",
    role: Role | str = Role.STANDARD,
    enabled: bool = True,
) -> User:
    require_admin(actor, "create users")
    with db.session() as session:
        return record(add_user(session, email=email, name=name, role=role, enabled=enabled))


def get_user(db: Database, actor: Actor, ref: str) -> User:
    with db.session() as session:
        row = get_user_row(session, ref)
        if not _visible(actor, row):
            raise NotFoundError(f"no user {ref!r}")
        return record(row)


def list_users(
    db: Database, actor: Actor, *, role: Role | str | None = None, enabled: bool | None = None
) -> list[User]:
    with db.session() as session:
        query = select(m.User).order_by(m.User.email)
        if role is not None:
            query = query.where(m.User.role == parse_role(role).value)
        if enabled is not None:
            query = query.where(m.User.enabled == enabled)
        return [record(r) for r in session.scalars(query) if _visible(actor, r)]


def _other_admins(session: Session, user_id: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(m.User)
            .where(m.User.role == Role.ADMIN.value, m.User.enabled.is_(True), m.User.id != user_id)
        )
        or 0
    )


def update_user(
    db: Database,
    actor: Actor,
    ref: str,
    *,
    name: str | None = None,
    role: Role | str | None = None,
    enabled: bool | None = None,
) -> User:
    with db.session() as session:
        row = get_user_row(session, ref)
        if not _visible(actor, row):
            raise NotFoundError(f"no user {ref!r}")
        if not actor.is_admin and (
            role is not None or enabled is not None or row.id != actor.user_id
        ):
            raise PermissionDeniedError("only an admin may change users (you may change your name)")
        new_role = parse_role(role) if role is not None else Role(row.role)
        new_enabled = row.enabled if enabled is None else bool(enabled)
        losing_admin = (
            row.role == Role.ADMIN
            and row.enabled
            and (new_role is not Role.ADMIN or not new_enabled)
        )
        if losing_admin and not _other_admins(session, row.id):
            raise ConflictError(f"{row.email} is the last enabled admin", hint="make another first")
        if name is not None:
            row.name = _name(name)
        row.role = new_role.value
        row.enabled = new_enabled
        row.modified = utcnow()
        return record(row)


def delete_user(db: Database, actor: Actor, ref: str) -> None:
    require_admin(actor, "delete users")
    with db.session() as session:
        row = get_user_row(session, ref)
        if row.role == Role.ADMIN and row.enabled and not _other_admins(session, row.id):
            raise ConflictError(f"{row.email} is the last enabled admin and cannot be deleted")
        if session.scalar(select(m.Job.id).where(m.Job.user_id == row.id).limit(1)):
            raise ConflictError(
                f"{row.email} has jobs and cannot be deleted", hint="disable the user instead"
            )
        session.delete(row)
