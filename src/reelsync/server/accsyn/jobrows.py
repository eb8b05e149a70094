"""Job records read from the database straight into accsyn's wire shape, for a find whose query
SQL says exactly (or that has none): the records are answered as they are, never evaluated in
Python, so they carry no helper keys and no datetime or parsed JSON.

Rules: the keys and values are those of :func:`reelsync.server.accsyn.shapes.job_record` after
the helper keys are dropped, in the same order; the datetimes are the wire's text (naive UTC to
the second) written by the database (:func:`reelsync.db.types.utc_text`); ``settings`` and
``metadata`` are the stored JSON text passed on as an ``orjson.Fragment`` (``{}`` for none).
A find of the ~500 running jobs shapes each row with one tuple unpacking and one dict display.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement

from reelsync.db import models as m
from reelsync.db.types import json_text, utc_text
from reelsync.domain.records import Actor
from reelsync.server.accsyn.shapes import JOB_TYPE_TRANSFER
from reelsync.services import jobs

__all__ = ["wire_jobs"]

#: What a job record is read from, in the order :func:`_record` unpacks it.
_COLUMNS: tuple[Any, ...] = (
    m.Job.id,
    m.Job.name,
    m.Job.user_id,
    m.User.email,
    m.Job.modifier_id,
    m.Job.queue_id,
    m.Queue.code,
    m.Job.status,
    m.Job.progress,
    m.Job.size,
    m.Job.bytes_done,
    m.Job.speed,
    m.Job.etr,
    m.Job.source,
    m.Job.source_site_id,
    m.Job.destination,
    m.Job.destination_site_id,
    m.Job.task_count,
    json_text(m.Job.settings),
    json_text(m.Job.meta),
    utc_text(m.Job.created),
    utc_text(m.Job.modified),
    utc_text(m.Job.finished),
)

_EMPTY = orjson.Fragment(b"{}")
_NONE = (None, "null", "{}")


def _json(text: str | None) -> orjson.Fragment:
    """A stored JSON object as it is; none (NULL or JSON null) is ``{}``, as the records say.
    A text with NaN or an infinity (SQLite keeps what Python's json wrote) is written again
    with those as ``null``, as the answer's encoder writes them."""
    if text in _NONE:
        return _EMPTY
    assert text is not None
    if "NaN" in text or "Infinity" in text:
        return orjson.Fragment(orjson.dumps(json.loads(text)))
    return orjson.Fragment(text)


def _record(row: Sequence[Any]) -> dict[str, Any]:
    (ident, name, user_id, email, modifier, queue_id, queue, status, progress, size, done,
     speed, etr, source, source_site, destination, destination_site, count, settings, meta,
     created, modified, finished, *_) = row  # fmt: skip
    email = email or ""
    queue = queue or ""
    return {
        "id": ident,
        "code": name,
        "name": name,
        "type": JOB_TYPE_TRANSFER,
        "type_hr": "transfer",
        "user": user_id,
        "user_hr": email,
        "creator": user_id,
        "creator_hr": email,
        "modifier": modifier or user_id,
        "queue": queue_id,
        "queue_hr": queue,
        "parent": queue_id,
        "parent_hr": queue,
        "status": status,
        "progress": progress,
        "size": size,
        "bytes_done": done,
        "speed": speed,
        "etr": etr,
        "source": f"site:{source_site}",
        "source_hr": source,
        "destination": f"site:{destination_site}",
        "destination_hr": destination,
        "tasks": count,
        "settings": _json(settings),
        "metadata": _json(meta),
        "created": created,
        "modified": modified,
        "finished": finished,
    }


def wire_jobs(
    db: Any,
    actor: Actor,
    *,
    finished: bool,
    where: ColumnElement[bool] | None = None,
    batch: int = 1000,
) -> Iterator[dict[str, Any]]:
    """The jobs the caller may see (finished ones too when ``finished``), newest first, in the
    wire shape, read lazily by key (``batch`` rows first); ``where`` narrows them in SQL."""
    wanted = jobs.JobFilter(finished=None if finished else False, where=where)
    for row in jobs.scan_job_rows(db, actor, wanted, _COLUMNS, batch=batch):
        yield _record(row)
