"""``queue/*`` events, which ``job/*`` events of ``type: 2`` (or on a queue's id) also reach.

A queue is a job of type 2 in accsyn: ``create("job", {"type": 2, "code": "proj001"})`` makes one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reelsync.domain.query import parse_query, referenced_attrs
from reelsync.domain.records import Queue
from reelsync.errors import ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import (
    flag,
    target,
    text_field,
    with_notes,
    write_notes,
)
from reelsync.server.accsyn.selection import matching, select
from reelsync.server.accsyn.shapes import queue_record
from reelsync.services import notes, queues
from reelsync.services.notes import NoteKind

__all__ = [
    "create_queue",
    "delete_queue",
    "edit_queue",
    "is_queue_type",
    "matching_queue_records",
    "queue_records",
]

_KINDS = ("queue",)
_EDITABLE = {
    "name",
    "code",
    "priority",
    "default",
    "status",
    "paused",
    "type",
    "description",
    "metadata",
}


def is_queue_type(value: object) -> bool:
    return value in (2, "2") or (isinstance(value, str) and value.strip().lower() == "queue")


def _priority(data: Mapping[str, Any]) -> int | None:
    value = data.get("priority")
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"priority must be a whole number 0..1000, got {value!r}") from None
    if isinstance(value, bool) or not 0 <= number <= 1000:
        raise ValidationError(f"priority must be a whole number 0..1000, got {value!r}")
    return number


def _paused(data: Mapping[str, Any]) -> bool | None:
    paused = flag(data, "paused")
    status = text_field(data, "status")
    if status is not None:
        word = status.strip().lower()
        if word not in ("waiting", "paused"):
            raise ValidationError(f"a queue's status is waiting or paused, not {status!r}")
        paused = word == "paused"
    return paused


def queue_records(call: Call) -> list[dict[str, Any]]:
    rows = queues.list_queues(call.db, call.actor)
    known = notes.read_notes(call.db, NoteKind.QUEUE, [q.id for q in rows])
    return [queue_record(q, known.get(q.id)) for q in rows]


#: The attributes a queue record takes from its notes (``shapes._noted``).
_NOTED = ("description", "metadata", "creator", "modifier")


def matching_queue_records(call: Call) -> list[dict[str, Any]]:
    """``matching(call.envelope, queue_records(call))``, the queues from the catalog (no query)
    and the notes read only for the queues selected (none for a find of running jobs), unless
    the query compares what notes hold."""
    envelope = call.envelope
    if envelope.id is None and envelope.query:
        asked = referenced_attrs(parse_query(envelope.query))
        if any(attr.startswith(_NOTED) for attr in asked):
            return list(matching(envelope, queue_records(call)))
    rows = {q.id: q for q in queues.kept_queues(call.db, call.actor)}
    chosen = [r["id"] for r in matching(envelope, [queue_record(q) for q in rows.values()])]
    if not chosen:
        return []
    known = notes.read_notes(call.db, NoteKind.QUEUE, chosen)
    return [queue_record(rows[i], known.get(i)) for i in chosen]


def _noted(call: Call, entity: Queue, *, created: bool) -> list[dict[str, Any]]:
    return [queue_record(entity, write_notes(call, NoteKind.QUEUE, entity.id, created=created))]


@with_notes
def create_queue(call: Call) -> list[dict[str, Any]]:
    data = call.data
    unknown = sorted(set(data) - _EDITABLE - {"allow_duplicates"})
    if unknown:
        raise ValidationError(f"a queue takes no {', '.join(unknown)}")
    code = text_field(data, "code") or text_field(data, "name")
    if not code:
        raise ValidationError(
            "a queue needs a code", hint="create('job', {'type': 2, 'code': 'proj001'})"
        )
    priority = _priority(data)
    queue = queues.create_queue(
        call.db,
        call.actor,
        code=code,
        name=text_field(data, "name"),
        priority=500 if priority is None else priority,
        default=bool(flag(data, "default")),
        paused=bool(_paused(data)),
    )
    return _noted(call, queue, created=True)


@with_notes
def edit_queue(call: Call, ref: str) -> list[dict[str, Any]]:
    data = call.data
    unknown = sorted(set(data) - _EDITABLE)
    if unknown:
        raise ValidationError(f"cannot change {', '.join(unknown)} of a queue")
    queue = queues.update_queue(
        call.db,
        call.actor,
        ref,
        name=text_field(data, "name"),
        priority=_priority(data),
        default=flag(data, "default"),
        paused=_paused(data),
    )
    return _noted(call, queue, created=False)


def delete_queue(call: Call, ref: str) -> bool:
    queues.delete_queue(call.db, call.actor, ref)
    return True


@route("GET", _KINDS, "find")
def find(call: Call) -> list[dict[str, Any]]:
    return select(call.envelope, queue_records(call))


@route("POST", _KINDS, "create")
def create(call: Call) -> list[dict[str, Any]]:
    return create_queue(call)


@route("PUT", _KINDS, "edit")
def edit(call: Call) -> list[dict[str, Any]]:
    return edit_queue(call, target(call))


@route("DELETE", _KINDS, "delete")
def delete(call: Call) -> bool:
    return delete_queue(call, target(call))
