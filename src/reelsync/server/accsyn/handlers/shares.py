"""Share events: ``volume/*`` and ``share/*`` (any share kind), ``folder/*`` and ``home/*``.

reelsync's shares are volumes; folders and homes do not exist as entities (grant ACLs on volume
sub-paths instead), so finding them gives nothing and creating them is not supported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reelsync.domain.records import Volume
from reelsync.errors import NotSupportedError, ValidationError
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
from reelsync.server.accsyn.handlers.sites import status_enabled
from reelsync.server.accsyn.selection import select
from reelsync.server.accsyn.shapes import server_record, volume_record
from reelsync.services import notes, servers, sites, volumes
from reelsync.services.notes import NoteKind

__all__ = ["records"]

_NOTES = ("description", "metadata", "email", "queue")

_VOLUMES = ("volume", "share")
_SUBSHARES = ("folder", "home")
_NO_FOLDERS = NotSupportedError(
    "folders and homes are not supported by reelsync",
    hint="grant access to a sub-path of a volume instead: grant('user', u, 'volume', v,"
    " {'path': 'proj001', 'read': True})",
)


def _paths(data: Mapping[str, Any]) -> dict[str, Any] | None:
    value = data.get("site_paths", data.get("paths"))
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str | Mapping)) for k, v in value.items()
    ):
        raise ValidationError(
            "paths map site codes to path prefixes, like {'hq': '/mnt/projects'}, or OS names"
            " to the main site's prefixes, like {'linux': '/mnt/projects', 'windows': 'P:/'}"
        )
    return dict(value)


def _main_site(call: Call) -> str | None:
    return next((s.code for s in sites.list_sites(call.db, call.actor) if s.main), None)


def records(call: Call, rows: list[Volume]) -> list[dict[str, Any]]:
    known = notes.read_notes(call.db, NoteKind.VOLUME, [v.id for v in rows])
    main = _main_site(call)
    return [volume_record(v, known.get(v.id), main) for v in rows]


def _noted(call: Call, entity: Volume, *, created: bool) -> list[dict[str, Any]]:
    return [
        volume_record(
            entity, write_notes(call, NoteKind.VOLUME, entity.id, created=created), _main_site(call)
        )
    ]


@route("GET", _VOLUMES, "find")
def find(call: Call) -> list[dict[str, Any]]:
    rows = volumes.list_volumes(call.db, call.actor)
    if not include_inactive(call):
        rows = [v for v in rows if v.enabled]
    return select(call.envelope, records(call, rows))


@route("GET", _SUBSHARES, "find")
def find_subshares(call: Call) -> list[dict[str, Any]]:
    return []


def _servers(data: Mapping[str, Any]) -> list[str]:
    """``server`` (the main site's) and ``siteservers`` given at create: servers to assign."""
    found: list[str] = []
    for key in ("server", "siteserver", "siteservers", "servers"):
        value = data.get(key)
        items = value if isinstance(value, list) else [value] if value else []
        for item in items:
            ref = item.get("id") if isinstance(item, Mapping) else item
            if not isinstance(ref, str):
                raise ValidationError(f"{key} must name servers by id, got {item!r}")
            found.append(ref)
    return found


@route("POST", _VOLUMES, "create")
@with_notes
def create(call: Call) -> list[dict[str, Any]]:
    data = call.data
    volume = volumes.create_volume(
        call.db,
        call.actor,
        code=text_field(data, "code", required=True) or "",
        name=text_field(data, "name"),
        default=bool(flag(data, "default")),
        paths=_paths(data) or {},
    )
    for server in _servers(data):
        volumes.assign_server(call.db, call.actor, volume.id, server)
    return _noted(call, volume, created=True)


_EDITABLE = {"code", "name", "status", "default", "paths", "site_paths", *_NOTES}


@route("PUT", _VOLUMES, "edit")
@with_notes
def edit(call: Call) -> list[dict[str, Any]]:
    data = call.data
    if {"server", "siteserver", "server_clear", "siteserver_clear"} & set(data):
        return _edit_servers(call)  # 3.0's share/edit {"server": id}
    unknown = sorted(set(data) - _EDITABLE)
    if unknown:
        raise ValidationError(f"cannot change {', '.join(unknown)} of a volume")
    volume = volumes.update_volume(
        call.db,
        call.actor,
        target(call),
        code=text_field(data, "code"),
        name=text_field(data, "name"),
        default=flag(data, "default"),
        enabled=status_enabled(text_field(data, "status"), "volume"),
        paths=_paths(data),
    )
    return _noted(call, volume, created=False)


def _edit_servers(call: Call) -> list[dict[str, Any]]:
    data = call.data
    ref = target(call)
    for key in ("server", "siteserver"):
        if data.get(key):
            volumes.assign_server(call.db, call.actor, ref, str(data[key]))
    for key in ("server_clear", "siteserver_clear"):
        value = data.get(key)
        if isinstance(value, str) and value:
            volumes.unassign_server(call.db, call.actor, ref, value)
    return records(call, [volumes.get_volume(call.db, call.actor, ref)])


@route("DELETE", _VOLUMES, "delete")
def delete(call: Call) -> bool:
    volumes.delete_volume(call.db, call.actor, target(call))
    return True


@route("DELETE", _VOLUMES, "deactivate")
@route("DELETE", _VOLUMES, "offline")
def deactivate(call: Call) -> bool:
    volumes.update_volume(call.db, call.actor, target(call), enabled=False)
    return True


@route("POST", _VOLUMES, "activate")
def activate(call: Call) -> bool:
    volumes.update_volume(call.db, call.actor, target_or_query(call), enabled=True)
    return True


@route("GET", _VOLUMES, "servers")
def assignments(call: Call) -> list[dict[str, Any]]:
    """The servers serving the volume: those assigned to it, and at each site where it has a
    path, the servers with no assignments of their own."""
    serving = set(volumes.serving_server_ids(call.db, call.actor, target(call)))
    rows = [s for s in servers.list_servers(call.db, call.actor) if s.id in serving]
    known = notes.read_notes(call.db, NoteKind.SERVER, [s.id for s in rows])
    return [server_record(s, known.get(s.id)) for s in rows]


def _client(call: Call) -> str:
    client = call.data.get("client")
    if not isinstance(client, str) or not client.strip():
        raise ValidationError("assign and deassign need the server's id (client)")
    return client


@route("PUT", _VOLUMES, "server")
def assign(call: Call) -> bool:
    volumes.assign_server(call.db, call.actor, target(call), _client(call))
    return True


@route("DELETE", _VOLUMES, "server")
def deassign(call: Call) -> bool:
    volumes.unassign_server(call.db, call.actor, target(call), _client(call))
    return True


@route("POST", _SUBSHARES, "create")
@route("PUT", _SUBSHARES, "edit")
@route("DELETE", _SUBSHARES, "delete")
@route("DELETE", _SUBSHARES, "deactivate")
@route("POST", _SUBSHARES, "activate")
def subshare(call: Call) -> bool:
    raise _NO_FOLDERS
