"""Client events: ``client/*``, ``server/*``, ``app/*``, ``userserver/*``, ``browser/*``.

reelsync's clients are its agents (site servers, client type 1); desktop apps, user servers and
browsers do not exist, so their finds are empty (``app_is_running`` answers None).
"""

from __future__ import annotations

from typing import Any

from reelsync.errors import NotSupportedError, ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import (
    target,
    text_field,
    with_notes,
    write_notes,
)
from reelsync.server.accsyn.selection import select
from reelsync.server.accsyn.shapes import server_record
from reelsync.services import notes, servers
from reelsync.services.notes import NoteKind

__all__: list[str] = []

_SERVERS = ("client", "server")
_NONE = ("app", "userserver", "browser")


@route("GET", _SERVERS, "find")
def find(call: Call) -> list[dict[str, Any]]:
    rows = servers.list_servers(call.db, call.actor)
    known = notes.read_notes(call.db, NoteKind.SERVER, [s.id for s in rows])
    return select(call.envelope, (server_record(s, known.get(s.id)) for s in rows))


@route("GET", _NONE, "find")
def find_none(call: Call) -> list[dict[str, Any]]:
    return []


@route("PUT", _SERVERS, "edit")
@with_notes
def edit(call: Call) -> list[dict[str, Any]]:
    data = call.data
    unknown = sorted(set(data) - {"status", "description", "metadata"})
    if unknown:
        raise ValidationError(
            f"cannot change {', '.join(unknown)} of a server; only its status, description"
            " and metadata"
        )
    server = servers.update_server(
        call.db, call.actor, target(call), status=text_field(data, "status")
    )
    return [server_record(server, write_notes(call, NoteKind.SERVER, server.id, created=False))]


@route("DELETE", _SERVERS, "delete")
def delete(call: Call) -> bool:
    servers.delete_server(call.db, call.actor, target(call))
    return True


@route("POST", (*_SERVERS, *_NONE), "create")
def create(call: Call) -> bool:
    raise NotSupportedError(
        "clients cannot be created over the API",
        hint="enroll a site server with 'reelsync agent token' and 'reelsync agent enroll'",
    )
