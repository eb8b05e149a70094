"""``site/*`` events: find, create, edit, delete, deactivate and activate."""

from __future__ import annotations

import re
from typing import Any

from reelsync.domain.records import Site
from reelsync.errors import ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import (
    flag,
    include_inactive,
    target,
    target_or_query,
    text_field,
    with_notes,
    write_notes,
)
from reelsync.server.accsyn.selection import select
from reelsync.server.accsyn.shapes import site_record
from reelsync.services import notes, sites
from reelsync.services.notes import NoteKind

__all__ = ["code_from_name", "status_enabled"]

_KINDS = ("site",)


def status_enabled(status: str | None, kind: str) -> bool | None:
    if status is None:
        return None
    value = status.strip().lower()
    if value not in ("enabled", "disabled"):
        raise ValidationError(f"a {kind}'s status is enabled or disabled, not {status!r}")
    return value == "enabled"


def code_from_name(name: str) -> str:
    """A site code from its name, as accsyn derives it: lower-cased, runs of other characters
    than letters, digits, ``_ . -`` as one ``_``, at most 32 characters (``"New York"`` ->
    ``new_york``)."""
    code = re.sub(r"[^a-z0-9_.-]+", "_", name.strip().lower()).strip("_")
    if not code:
        raise ValidationError(f"cannot make a site code from the name {name!r}; give a code")
    return code[: sites.SITE_CODE_MAX]


def _noted(call: Call, entity: Site, *, created: bool) -> list[dict[str, Any]]:
    return [site_record(entity, write_notes(call, NoteKind.SITE, entity.id, created=created))]


@route("GET", _KINDS, "find")
def find(call: Call) -> list[dict[str, Any]]:
    rows = sites.list_sites(call.db, call.actor)
    if not include_inactive(call):
        rows = [s for s in rows if s.enabled]
    known = notes.read_notes(call.db, NoteKind.SITE, [s.id for s in rows])
    return select(call.envelope, (site_record(s, known.get(s.id)) for s in rows))


@route("POST", _KINDS, "create")
@with_notes
def create(call: Call) -> list[dict[str, Any]]:
    data = call.data
    name = text_field(data, "name")
    code = text_field(data, "code") or (code_from_name(name) if name else None)
    if not code:
        raise ValidationError(
            "a site needs a code or a name", hint="create('site', {'name': 'Stockholm'})"
        )
    site = sites.create_site(call.db, call.actor, code=code, name=name)
    return _noted(call, site, created=True)


@route("PUT", _KINDS, "edit")
@with_notes
def edit(call: Call) -> list[dict[str, Any]]:
    data = call.data
    unknown = sorted(set(data) - {"name", "status", "main", "description", "metadata"})
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
    return _noted(call, site, created=False)


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
