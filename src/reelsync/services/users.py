"""Users: e-mail, name, role (admin, employee, standard), enabled.

Rules: only an admin creates, changes or deletes users (a user may change their own name). Admins
see every user, employees see themselves and standard users, standard users see themselves. The
last enabled admin can be neither demoted, disabled nor deleted. A user with jobs cannot be deleted
(disable them instead). ``me`` names the caller wherever a user is named.

Preferences (:func:`get_preferences`, :func:`update_preferences`): a user reads and changes their
own, an admin anyone's. ``email_opt_out`` is the USER-scoped setting the notifier reads (row
``scope='user'``, ``target_id`` = user id, value ``true``; opting in again deletes the row).
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.codes import parse_email
from reelsync.domain.ids import is_entity_id, new_entity_id
from reelsync.domain.records import Actor, Role, SettingScope, User, UserPreferences
from reelsync.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from reelsync.services.auth import require_admin

__all__ = [
    "EMAIL_OPT_OUT_KEY",
    "ME",
    "add_user",
    "create_user",
    "delete_user",
    "delete_user_row",
    "get_preferences",
    "get_user",
    "get_user_row",
    "list_users",
    "parse_role",
    "record",
    "update_preferences",
    "update_user",
]

#: The USER-scoped setting that keeps job mail from a user (read by reelsync.notify.recipients).
EMAIL_OPT_OUT_KEY = "email_opt_out"
#: Names the caller in place of an id or e-mail.
ME = "me"
_FALSE = ("false", "0", "no", "off", "")


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


def get_user_row(session: Session, ref: str, actor: Actor | None = None) -> m.User:
    """A user by id or e-mail (case-insensitive), or ``me`` (the ``actor``)."""
    if actor is not None and isinstance(ref, str) and ref.strip().lower() == ME:
        ref = actor.user_id
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
    with db.reader() as session:
        row = get_user_row(session, ref, actor)
        if not _visible(actor, row):
            raise NotFoundError(f"no user {ref!r}")
        return record(row)


def list_users(
    db: Database, actor: Actor, *, role: Role | str | None = None, enabled: bool | None = None
) -> list[User]:
    with db.reader() as session:
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
        row = get_user_row(session, ref, actor)
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
    """Delete a user without jobs (services.jobs.delete_user_and_jobs hands theirs over)."""
    require_admin(actor, "delete users")
    with db.session() as session:
        delete_user_row(session, get_user_row(session, ref))


def delete_user_row(session: Session, row: m.User) -> None:
    """Delete ``row`` in ``session`` (the caller checked the actor is an admin)."""
    if row.role == Role.ADMIN and row.enabled and not _other_admins(session, row.id):
        raise ConflictError(f"{row.email} is the last enabled admin and cannot be deleted")
    if session.scalar(select(m.Job.id).where(m.Job.user_id == row.id).limit(1)):
        raise ConflictError(
            f"{row.email} has jobs and cannot be deleted", hint="disable the user instead"
        )
    session.delete(row)


def _own_or_admin(session: Session, actor: Actor, ref: str, *, write: bool) -> m.User:
    row = get_user_row(session, ref, actor)
    if actor.is_admin or row.id == actor.user_id:
        return row
    if not _visible(actor, row):
        raise NotFoundError(f"no user {ref!r}")
    verb = "change" if write else "read"
    raise PermissionDeniedError(
        f"only an admin may {verb} another user's preferences (you may {verb} your own)"
    )


def _opt_out_row(session: Session, user_id: str) -> m.Setting | None:
    return session.scalar(
        select(m.Setting).where(
            m.Setting.scope == SettingScope.USER.value,
            m.Setting.target_id == user_id,
            m.Setting.key == EMAIL_OPT_OUT_KEY,
        )
    )


def _preferences(session: Session, row: m.User) -> UserPreferences:
    setting = _opt_out_row(session, row.id)
    opted_out = setting is not None and setting.value.strip().lower() not in _FALSE
    return UserPreferences(user_id=row.id, email=row.email, email_opt_out=opted_out)


def get_preferences(db: Database, actor: Actor, ref: str) -> UserPreferences:
    """``ref``'s preferences (``me`` for the caller): their own, or anyone's for an admin."""
    with db.reader() as session:
        return _preferences(session, _own_or_admin(session, actor, ref, write=False))


def update_preferences(
    db: Database, actor: Actor, ref: str, *, email_opt_out: bool | None = None
) -> UserPreferences:
    """Change ``ref``'s preferences (``me`` for the caller); only what is given changes."""
    with db.session() as session:
        row = _own_or_admin(session, actor, ref, write=True)
        if email_opt_out is not None:
            session.execute(
                delete(m.Setting).where(
                    m.Setting.scope == SettingScope.USER.value,
                    m.Setting.target_id == row.id,
                    m.Setting.key == EMAIL_OPT_OUT_KEY,
                )
            )
            if email_opt_out:
                session.add(
                    m.Setting(
                        scope=SettingScope.USER.value,
                        target_id=row.id,
                        key=EMAIL_OPT_OUT_KEY,
                        value="true",
                    )
                )
            session.flush()
        return _preferences(session, row)
