"""Share events: ``volume/*`` and ``share/*`` (any share kind), ``folder/*`` and ``home/*``.

reelsync's shares are volumes; folders and homes do not exist as entities (grant ACLs on volume
sub-paths instead), so finding them gives nothing and creating them is not supported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reelsync.errors import NotSupportedError, ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import (
    flag,
    include_inactive,
    target,
    target_or_query,
    text_field,
)
from reelsync.server.accsyn.handlers.sites import status_enabled
from reelsync.server.accsyn.selection import select
from reelsync.server.accsyn.shapes import server_record, volume_record
from reelsync.services import servers, volumes

__all__: list[str] = []

_VOLUMES = ("volume", "share")
_SUBSHARES = ("folder", "home")
_NO_FOLDERS = NotSupportedError(
    "folders and homes are not supported by reelsync",
    hint="grant access to a sub-path of a volume instead: grant('user', u, 'volume', v,"
    " {'path': 'proj001', 'read': True})",
)


def _paths(data: Mapping[str, Any]) -> dict[str, str] | None:
    value = data.get("site_paths", data.get("paths"))
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError(
            "paths must map site codes to path prefixes, like {'hq': '/mnt/projects'}"
        )
    return dict(value)


@route("GET", _VOLUMES, "find")
def find(call: Call) -> list[dict[str, Any]]:
    rows = volumes.list_volumes(call.db, call.actor)
    if not include_inactive(call):
        rows = [v for v in rows if v.enabled]
    return select(call.envelope, (volume_record(v) for v in rows))


@route("GET", _SUBSHARES, "find")
def find_subshares(call: Call) -> list[dict[str, Any]]:
    return []


@route("POST", _VOLUMES, "create")
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
    return [volume_record(volume)]


@route("PUT", _VOLUMES, "edit")
def edit(call: Call) -> list[dict[str, Any]]:
    data = call.data
    if {"server", "siteserver", "server_clear", "siteserver_clear"} & set(data):
        assign(call)
    unknown = sorted(set(data) - {"name", "status", "default", "paths", "site_paths"})
    if unknown:
        raise ValidationError(f"cannot change {', '.join(unknown)} of a volume")
    volume = volumes.update_volume(
        call.db,
        call.actor,
        target(call),
        name=text_field(data, "name"),
        default=flag(data, "default"),
        enabled=status_enabled(text_field(data, "status"), "volume"),
        paths=_paths(data),
    )
    return [volume_record(volume)]


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
    volume = volumes.get_volume(call.db, call.actor, target(call))
    # A volume is served at each site it has a path for, by that site's servers.
    return [
        server_record(s)
        for s in servers.list_servers(call.db, call.actor)
        if s.site in volume.paths
    ]


@route("PUT", _VOLUMES, "server")
@route("DELETE", _VOLUMES, "server")
def assign(call: Call) -> bool:
    """3.2+ ``assign``/``deassign``; 3.0's ``share/edit {server}`` lands here too."""
    raise NotSupportedError(
        "servers are not assigned to volumes over the API in reelsync",
        hint="a reelsync agent serves the volumes listed in its own configuration",
    )


@route("POST", _SUBSHARES, "create")
@route("PUT", _SUBSHARES, "edit")
@route("DELETE", _SUBSHARES, "delete")
@route("DELETE", _SUBSHARES, "deactivate")
@route("POST", _SUBSHARES, "activate")
def subshare(call: Call) -> bool:
    raise _NO_FOLDERS
