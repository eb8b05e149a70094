"""Keyset pages: the cursor that says where the next page of a list starts.

Rules: a list ordered by a unique key is paged by that key, not by OFFSET, so a deep page costs
what the first one does (one index range). Jobs go newest first by ``(created, id)``; their
cursor is ``<microseconds since the epoch>.<job id>`` (opaque to callers: they pass back the
``next`` they were given). Totals are counted only up to :data:`COUNT_CAP` rows (an index range);
past it the total is unknown (None) and the pages still go on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reelsync.domain.ids import is_entity_id
from reelsync.errors import ValidationError

__all__ = ["COUNT_CAP", "job_cursor", "parse_job_cursor"]

#: Totals above this many rows are not counted (None: "more than COUNT_CAP").
COUNT_CAP = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def job_cursor(created: datetime, job_id: str) -> str:
    """The cursor of the page after the job (created, id)."""
    micros = (created - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{job_id}"


def parse_job_cursor(text: str) -> tuple[datetime, str]:
    micros, _, job_id = text.strip().partition(".")
    try:
        created = _EPOCH + timedelta(microseconds=int(micros))
    except (ValueError, OverflowError):
        created = None
    if created is None or not is_entity_id(job_id):
        raise ValidationError(
            f"{text!r} is not a page cursor", hint="pass back the 'next' value of the last page"
        )
    return created, job_id
