"""Notes: the descriptive fields accsyn gives every entity - a description, free metadata, who
made it and who last changed it - kept on the entity's own row.

Rules: whoever may change an entity may change its notes (an admin for users, sites, volumes,
queues and servers); ``metadata`` is a JSON object (replaced whole), a description at most
4000 characters. The creator is stamped when the entity is made, the modifier at every change
(a job's modifier is kept by the jobs service). A volume's notes also hold the extra addresses
for its job mail (``email``) and accsyn's volume ``queue`` (informative).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor, Notes
from reelsync.errors import NotFoundError, ValidationError
from reelsync.services.auth import require_admin
from reelsync.services.queues import get_queue_row

__all__ = ["MAX_DESCRIPTION", "NoteKind", "read_notes", "write_notes"]

MAX_DESCRIPTION = 4000


class NoteKind(StrEnum):
    USER = "user"
    SITE = "site"
    VOLUME = "volume"
    QUEUE = "queue"
    SERVER = "server"


_MODELS: Mapping[NoteKind, type[m.User | m.Site | m.Volume | m.Queue | m.Server]] = {
    NoteKind.USER: m.User,
    NoteKind.SITE: m.Site,
    NoteKind.VOLUME: m.Volume,
    NoteKind.QUEUE: m.Queue,
    NoteKind.SERVER: m.Server,
}


def _notes(row: Any) -> Notes:
    return Notes(
        description=row.description or "",
        metadata=dict(row.meta or {}),
        creator_id=row.creator_id,
        modifier_id=row.modifier_id,
        email=getattr(row, "email", None) or "",
        queue_id=getattr(row, "queue_id", None),
    )


def _metadata(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValidationError(f"metadata must be a JSON object, got {value!r}")
    return dict(value)


def _description(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise ValidationError(f"a description is a string of at most {MAX_DESCRIPTION} characters")
    return value


def write_notes(
    db: Database,
    actor: Actor,
    kind: NoteKind,
    entity_id: str,
    *,
    created: bool = False,
    description: object = None,
    metadata: object = None,
    email: object = None,
    queue: object = None,
) -> Notes:
    """Set the given notes (None leaves one as it is) and stamp the creator (``created``) or the
    modifier. ``email``/``queue`` only on volumes."""
    require_admin(actor, f"change {kind.value}s")
    with db.session() as session:
        row: Any = session.get(_MODELS[kind], entity_id)
        if row is None:
            raise NotFoundError(f"no {kind.value} {entity_id!r}")
        if description is not None:
            row.description = _description(description)
        if metadata is not None:
            row.meta = _metadata(metadata)
        if (email is not None or queue is not None) and kind is not NoteKind.VOLUME:
            raise ValidationError(f"a {kind.value} has no email or queue")
        if email is not None:
            addresses = email if isinstance(email, list) else str(email).split(",")
            row.email = ",".join(str(a).strip() for a in addresses if str(a).strip())
        if queue is not None:
            row.queue_id = get_queue_row(session, str(queue)).id if queue else None
        if created:
            row.creator_id = actor.user_id
        else:
            row.modifier_id = actor.user_id
        return _notes(row)


def read_notes(db: Database, kind: NoteKind, ids: Iterable[str] | None = None) -> dict[str, Notes]:
    """The notes of the given entities (all of that kind when ``ids`` is None), by id."""
    model: Any = _MODELS[kind]
    query = select(model)
    if ids is not None:
        wanted = list(ids)
        if not wanted:
            return {}
        query = query.where(model.id.in_(wanted))
    with db.reader() as session:  # a read: on SQLite it must not queue on the write lock
        return {row.id: _notes(row) for row in session.scalars(query)}
