"""``acl/*`` events: ``grant`` (create), ``access`` (find) and ``revoke`` (find, then delete).

A grant names ``entity: "user:<id or e-mail>"`` and ``target: "share:<volume id or code>"``;
an unknown e-mail is invited (made a standard user) unless ``invite`` is false. A first grant
answers the new ACL; a grant that changes the user's access to a volume they already had access to
answers ``true``; granting exactly what is already there changes nothing and answers the ACL.
"""

from __future__ import annotations

from typing import Any

from reelsync.domain.party import normalise_relative
from reelsync.errors import NotFoundError, ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import flag, target, text_field
from reelsync.server.accsyn.selection import select
from reelsync.server.accsyn.shapes import acl_record
from reelsync.services import acls, users, volumes
from reelsync.services.auth import require_admin

__all__: list[str] = []

_KINDS = ("acl",)


def _ref(value: str | None, prefix: str, what: str) -> str:
    if not value:
        raise ValidationError(f"an ACL needs {what} as '{prefix}:<id>'")
    kind, sep, ref = value.partition(":")
    if not sep or kind.strip().lower() != prefix or not ref.strip():
        raise ValidationError(f"{what} must look like '{prefix}:<id>', not {value!r}")
    return ref.strip()


def _path(value: str | None) -> str:
    """The ACL's path inside the volume, checked before anything is written."""
    return normalise_relative((value or "").strip())


@route("POST", _KINDS, "create")
def create(call: Call) -> list[Any]:
    data = call.data
    require_admin(call.actor, "grant access")
    who = _ref(text_field(data, "entity"), "user", "entity")
    target_ref = _ref(text_field(data, "target"), "share", "target")
    volume = volumes.get_volume(call.db, call.actor, target_ref)  # unknown volume: nothing changes
    path = _path(text_field(data, "path"))
    read, write = bool(flag(data, "read")), bool(flag(data, "write"))
    if not read and not write:
        raise ValidationError("a grant needs read, write or both")
    try:
        user = users.get_user(call.db, call.actor, who)
    except NotFoundError:
        if flag(data, "invite") is False or "@" not in who:
            raise NotFoundError(
                f"no user {who!r}", hint="grant with invite=True to invite a new e-mail"
            ) from None
        user = users.create_user(call.db, call.actor, email=who, role="standard")
    before = acls.list_acls(call.db, call.actor, user=user.id, volume=volume.id)
    same = [a for a in before if a.path == path and (a.read, a.write) == (read, write)]
    if same:  # nothing to change: accsyn answers the ACL as it stands
        return [acl_record(same[0], user.role.value)]
    acl = acls.grant(
        call.db, call.actor, user=user.id, volume=volume.id, path=path, read=read, write=write
    )
    if before:  # the user's access to this volume changed: accsyn answers true
        return [True]
    return [acl_record(acl, user.role.value)]


@route("GET", _KINDS, "find")
def find(call: Call) -> list[dict[str, Any]]:
    return select(call.envelope, (acl_record(a) for a in acls.list_acls(call.db, call.actor)))


@route("DELETE", _KINDS, "delete")
def delete(call: Call) -> bool:
    acls.revoke_acl(call.db, call.actor, target(call))
    return True
