"""Reading an event's arguments: the target id, flags and fields, with one clear message each;
and writing the notes (description, metadata) an event carries, in the same transaction as the
create or edit they come with (:func:`with_notes`): a refused note leaves nothing changed."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from reelsync.domain.records import Notes
from reelsync.errors import ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.services import notes
from reelsync.services.notes import NoteKind

__all__ = [
    "flag",
    "include_inactive",
    "target",
    "target_or_query",
    "text_field",
    "with_notes",
    "write_notes",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def target(call: Call) -> str:
    """The envelope ``id`` the operation works on."""
    if call.envelope.id is None:
        raise ValidationError(
            f"{call.verb} {call.envelope.uri} needs the id of the {call.kind}"
            " (the entityid argument)"
        )
    return call.envelope.id.strip().lower()


def target_or_query(call: Call) -> str:
    """``id``, else a bare code or e-mail in ``query`` (activate_one, 3.0/3.1 parent ids)."""
    if call.envelope.id is not None:
        return call.envelope.id.strip().lower()
    query = (call.envelope.query or "").strip().strip("'\"")
    if not query:
        raise ValidationError(f"{call.envelope.uri} needs an id or a code")
    return query.lower()


def flag(data: Mapping[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise ValidationError(f"{key} must be true or false, got {value!r}")


def include_inactive(call: Call) -> bool:
    """Deactivated entities are found by id, or with ``inactive``/``offline`` true."""
    data = call.data
    return (
        call.envelope.id is not None
        or bool(flag(data, "inactive"))
        or bool(flag(data, "offline"))
        or bool(flag(data, "archived"))
    )


def text_field(data: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ValidationError(f"{key} is required")
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValidationError(f"{key} must be a string, got {value!r}")
    return str(value)


def write_notes(call: Call, kind: NoteKind, entity_id: str, *, created: bool) -> Notes:
    """The event's ``description``/``metadata`` (a volume's ``email``/``queue`` too) written as
    the entity's notes, stamping its creator (``created``) or modifier."""
    data = call.data
    extra = {"email": data.get("email"), "queue": data.get("queue")}
    return notes.write_notes(
        call.db,
        call.actor,
        kind,
        entity_id,
        created=created,
        description=data.get("description"),
        metadata=data.get("metadata"),
        **(extra if kind is NoteKind.VOLUME else {}),
    )


def with_notes(handler: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a create/edit handler that also writes notes (:func:`write_notes`) in one database
    transaction: the entity's change, its notes and anything else it does commit together."""

    @functools.wraps(handler)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        call = next(a for a in args if isinstance(a, Call))
        with call.db.transaction():
            return handler(*args, **kwargs)

    return run
