"""``user/*`` events: find, create, edit, delete, deactivate (``offline``) and activate."""

from __future__ import annotations

from typing import Any

from reelsync.domain.records import User
from reelsync.errors import NotSupportedError, ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import (
    include_inactive,
    target,
    target_or_query,
    text_field,
    with_notes,
    write_notes,
)
from reelsync.server.accsyn.selection import select
from reelsync.server.accsyn.shapes import user_record
from reelsync.services import jobs, notes, users
from reelsync.services.notes import NoteKind

__all__: list[str] = []

_KINDS = ("user",)
_STATUS = {"enabled": True, "disabled": False}


@route("GET", _KINDS, "find")
def find(call: Call) -> list[dict[str, Any]]:
    rows = users.list_users(call.db, call.actor)
    if not include_inactive(call):
        rows = [u for u in rows if u.enabled]
    known = notes.read_notes(call.db, NoteKind.USER, [u.id for u in rows])
    return select(call.envelope, (user_record(u, known.get(u.id)) for u in rows))


def _noted(call: Call, user: User, *, created: bool) -> list[dict[str, Any]]:
    if call.actor.is_admin:
        return [user_record(user, write_notes(call, NoteKind.USER, user.id, created=created))]
    return [user_record(user, notes.read_notes(call.db, NoteKind.USER, [user.id]).get(user.id))]


@route("POST", _KINDS, "create")
@with_notes
def create(call: Call) -> list[dict[str, Any]]:
    data = call.data
    email = text_field(data, "email") or text_field(data, "code")
    if not email:
        raise ValidationError(
            "a user needs an e-mail (code)", hint="create('user', {'code': 'a@b.com'})"
        )
    for extra in ("give_all_volumes_access", "give_default_volume_access", "volumes"):
        if data.get(extra):
            raise NotSupportedError(
                f"{extra} is not supported when creating a user",
                hint="create the user, then grant('user', email, 'volume', code, {...})",
            )
    if data.get("create_home_share"):
        raise NotSupportedError("home shares are not supported by reelsync")
    status = text_field(data, "status")
    user = users.create_user(
        call.db,
        call.actor,
        email=email,
        name=text_field(data, "name") or "",
        role=text_field(data, "role") or "standard",
        enabled=_enabled(status) if status is not None else True,
    )
    return _noted(call, user, created=True)


def _enabled(status: str) -> bool:
    try:
        return _STATUS[status.strip().lower()]
    except KeyError:
        raise ValidationError(f"a user's status is enabled or disabled, not {status!r}") from None


@route("PUT", _KINDS, "edit")
@with_notes
def edit(call: Call) -> list[dict[str, Any]]:
    data = call.data
    unknown = sorted(
        set(data) - {"name", "role", "status", "code", "email", "description", "metadata"}
    )
    if unknown:
        raise ValidationError(f"cannot change {', '.join(unknown)} of a user")
    status = text_field(data, "status")
    user = users.update_user(
        call.db,
        call.actor,
        target(call),
        name=text_field(data, "name"),
        role=text_field(data, "role"),
        enabled=_enabled(status) if status is not None else None,
    )
    return _noted(call, user, created=False)


@route("DELETE", _KINDS, "delete")
def delete(call: Call) -> bool:
    """As in accsyn, a user with jobs is deleted too: their jobs are aborted and handed over."""
    jobs.delete_user_and_jobs(call.db, call.actor, target(call), fence_s=call.fence_s)
    return True


@route("DELETE", _KINDS, "deactivate")
@route("DELETE", _KINDS, "offline")
def deactivate(call: Call) -> bool:
    users.update_user(call.db, call.actor, target(call), enabled=False)
    return True


@route("POST", _KINDS, "activate")
def activate(call: Call) -> bool:
    users.update_user(call.db, call.actor, target_or_query(call), enabled=True)
    return True
