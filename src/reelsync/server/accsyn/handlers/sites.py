"""``site/*`` events: find, create, edit, delete, deactivate and activate."""

from __future__ import annotations

from typing import Any

from reelsync.errors import ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import (
    flag,
    include_inactive,
    target,
    target_or_query,
    text_field,
)
from reelsync.server.accsyn.selection import select
from reelsync.server.accsyn.shapes import site_record
from reelsync.services import sites

__all__: list[str] = []

_KINDS = ("site",)


def status_enabled(status: str | None, kind: str) -> bool | None:
    if status is None:
        return None
    value = status.strip().lower()
    if value not in ("enabled", "disabled"):
        raise ValidationError(f"a {kind}'s status is enabled or disabled, not {status!r}")
    return value == "enabled"


@route("GET", _KINDS, "find")
def find(call: Call) -> list[dict[str, Any]]:
    rows = sites.list_sites(call.db, call.actor)
    if not include_inactive(call):
        rows = [s for s in rows if s.enabled]
    return select(call.envelope, (site_record(s) for s in rows))


@route("POST", _KINDS, "create")
def create(call: Call) -> list[dict[str, Any]]:
    data = call.data
    code = text_field(data, "code", required=True) or ""
    site = sites.create_site(call.db, call.actor, code=code, name=text_field(data, "name"))
    return [site_record(site)]


@route("PUT", _KINDS, "edit")
def edit(call: Call) -> list[dict[str, Any]]:
    data = call.data
    unknown = sorted(set(data) - {"name", "status", "main"})
    if unknown:
        raise ValidationError(f"cannot change {', '.join(unknown)} of a site")
    site = sites.update_site(
        call.db,
        call.actor,
        target(call),
        name=text_field(data, "name"),
        enabled=status_enabled(text_field(data, "status"), "site"),
        main=flag(data, "main"),
    )
    return [site_record(site)]


@route("DELETE", _KINDS, "delete")
def delete(call: Call) -> bool:
    sites.delete_site(call.db, call.actor, target(call))
    return True


@route("DELETE", _KINDS, "deactivate")
@route("DELETE", _KINDS, "offline")
def deactivate(call: Call) -> bool:
    sites.update_site(call.db, call.actor, target(call), enabled=False)
    return True


@route("POST", _KINDS, "activate")
def activate(call: Call) -> bool:
    sites.update_site(call.db, call.actor, target_or_query(call), enabled=True)
    return True
