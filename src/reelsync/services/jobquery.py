"""An accsyn query on transfer jobs, said in SQL as far as SQL can say it.

Rules: :func:`job_condition` gives a condition over ``job`` (and its ``user_account`` and
``queue``, joined by :func:`reelsync.services.jobs.scan_jobs`) that every job the query matches
satisfies: exact where SQL says the same thing as :func:`reelsync.domain.query.evaluate`, wider
(``true``) where it cannot (``matches``, ``settings``/``metadata``, text ordering, non-ASCII
values), so the caller evaluates the query again on the rows it gets and the answer never
depends on what was translated. Attribute names are the accsyn wire names of a job record
(``code`` = the name, ``user`` = the user's id or e-mail, ``source`` = ``site=hq`` or ``hq``...).
Text compares lower-cased (ASCII), ``*`` is a wildcard; numbers compare as numbers.
:func:`job_query` also says whether the condition is exact (every part said in SQL, none
widened): then the rows it selects are the answer and need no evaluation in Python.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, literal, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute

from reelsync.db import models as m
from reelsync.domain.query import And, Comparison, Lookup, Node, Op, Value, evaluate

__all__ = ["JobQuery", "Parties", "job_condition", "job_query"]

_Cond = ColumnElement[bool]
_Column = ColumnElement[Any] | InstrumentedAttribute[Any]
_Holds = Callable[[Op, Value], "_Cond | _Wide | None"]


@dataclass(frozen=True, slots=True)
class _Wide:
    """A condition wider than the query's (it lets through rows Python must still check)."""

    condition: _Cond


_NEGATED = {Op.NE: Op.EQ, Op.NOT_IN: Op.IN, Op.NOT_CONTAINS: Op.CONTAINS}
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}t\d{2}:\d{2}:\d{2}$")
_INT = re.compile(r"^[+-]?[0-9]+$")
_TWINS = ("code", "email", "name")


def _ascii(text: str) -> bool:
    return text.isascii()


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _text(column: _Column, *, stored_lower: bool = False) -> Callable[[Op, Value], _Cond | None]:
    """Exact ``=``/``contains`` on a NOT NULL text column (``None``: say it in Python). A
    column ``stored_lower`` (ids, statuses, codes, e-mails) is compared as it is, so its index
    serves the comparison."""

    def holds(op: Op, value: Value) -> _Cond | None:
        wanted = value.text.lower()
        if not _ascii(wanted):
            return None
        lowered = column if stored_lower else func.lower(column)
        if op is Op.EQ:
            if "*" in wanted:
                return lowered.like(_escape(wanted).replace("*", "%"), escape="\\")
            return lowered == wanted
        if op is Op.CONTAINS:
            return lowered.like(f"%{_escape(wanted)}%", escape="\\")
        return None

    return holds


def _reference(column: _Column, target_id: _Column, *codes: _Column) -> _Holds:
    """A reference (``job.user_id``) matched by the target's id or code/e-mail, said as
    ``column IN (SELECT id FROM target WHERE ...)`` so the job's index on ``column`` serves it."""
    matchers = [_text(target_id, stored_lower=True)] if not codes else []
    matchers += [_text(code, stored_lower=True) for code in codes]

    def holds(op: Op, value: Value) -> _Cond | None:
        parts = [match(op, value) for match in matchers]
        if any(p is None for p in parts):
            return None
        return column.in_(select(target_id).where(or_(*[p for p in parts if p is not None])))

    return holds


def _number(text: str) -> int | float | None:
    if _INT.match(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return None
    return None if number != number or number in (float("inf"), float("-inf")) else number


def _numeric(column: _Column) -> _Holds:
    """Exact ``=`` and ordering on a number column that may be NULL."""

    def holds(op: Op, value: Value) -> _Cond | None:
        if op is Op.EQ:
            if not value.quoted and value.text.lower() == "null":
                return column.is_(None)
            number = _number(value.text)
            if number is None:
                return false()
            return and_(column.is_not(None), column == number)
        if op in (Op.LT, Op.GT, Op.LE, Op.GE):
            number = _number(value.text)
            if number is None:
                return None  # compared as text in Python
            compare = {
                Op.LT: column < number,
                Op.GT: column > number,
                Op.LE: column <= number,
                Op.GE: column >= number,
            }[op]
            return and_(column.is_not(None), compare)
        return None

    return holds


def _stamp(column: _Column) -> _Holds:
    """``=`` exact on the ISO text of a datetime; ordering widened to whole days."""

    def holds(op: Op, value: Value) -> _Cond | _Wide | None:
        wanted = value.text.casefold()
        if op is Op.EQ:
            if not value.quoted and wanted == "null":
                return column.is_(None)
            if "*" in wanted:
                return None
            if not _STAMP.match(wanted):
                return false()
            try:
                at = dt.datetime.fromisoformat(wanted.upper()).replace(tzinfo=dt.UTC)
            except ValueError:
                return false()
            return and_(column.is_not(None), column >= at, column < at + dt.timedelta(seconds=1))
        if op in (Op.LT, Op.GT, Op.LE, Op.GE):
            day = _DATE.match(wanted)
            if day is None:
                return None
            try:
                start = dt.datetime.fromisoformat(day.group(1)).replace(tzinfo=dt.UTC)
            except ValueError:
                return None
            if op in (Op.GT, Op.GE):  # the record's date is this day or later
                return _Wide(column >= start)
            return _Wide(column < start + dt.timedelta(days=1))  # this day or earlier
        return None

    return holds


def _constant(name: str, constant: object) -> _Holds:
    def holds(op: Op, value: Value) -> _Cond | None:
        node = Comparison(name, op, (value,))
        return true() if evaluate(node, {name: constant}) else false()

    return holds


@dataclass(frozen=True, slots=True)
class Parties:
    """What a job's ``source``/``destination`` also match: the workspace code names the main
    site (accsyn's ``source=acmepost``)."""

    workspace_code: str | None = None
    main_site_id: str | None = None


def _party(text: _Column, site_id: _Column, parties: Parties) -> _Holds:
    """A party: ``site:<site id>`` (accsyn's form), the party text ``site=hq``, the site code
    ``hq`` or ``site:hq`` (parties are written ``site=<code>``), the workspace code for the main
    site."""
    code = func.substr(text, 6)

    def holds(op: Op, value: Value) -> _Cond | None:
        wanted = value.text.lower()
        if op is not Op.EQ or "*" in wanted or not _ascii(wanted):
            return None
        parts: list[_Cond] = [text == wanted, code == wanted]
        if wanted.startswith("site:"):
            parts += [code == wanted[5:], site_id == wanted[5:]]
        workspace = (parties.workspace_code or "").lower()
        if workspace and wanted == workspace and parties.main_site_id:
            parts.append(site_id == parties.main_site_id)
        return or_(*parts)

    return holds


def _candidates(attr: str, parties: Parties) -> Sequence[_Holds] | None:
    """How each value an attribute resolves to is compared (None: not said in SQL)."""
    job, user, queue = m.Job, m.User, m.Queue
    by_user = _reference(job.user_id, user.id, user.id, user.email)
    by_email = _reference(job.user_id, user.id, user.email)
    by_queue = _reference(job.queue_id, queue.id, queue.id, queue.code)
    by_queue_code = _reference(job.queue_id, queue.id, queue.code)
    table: dict[str, Sequence[_Holds]] = {
        "id": [_text(job.id, stored_lower=True)],
        "code": [_text(job.name)],
        "name": [_text(job.name)],
        "email": [_text(job.name)],  # a job has no e-mail: the code stands in
        "user": [by_user],
        "creator": [_text(job.user_id, stored_lower=True)],
        "user_hr": [by_email],
        "user_code": [by_email],
        "queue": [by_queue],
        "parent": [by_queue],
        "queue_hr": [by_queue_code],
        "queue_code": [by_queue_code],
        "parent_hr": [by_queue_code],
        "parent_code": [by_queue_code],
        "status": [_text(job.status, stored_lower=True)],
        "creator_hr": [by_email],
        "user.id": [_text(job.user_id, stored_lower=True)],
        "queue.id": [_text(job.queue_id, stored_lower=True)],
        "parent.id": [_text(job.queue_id, stored_lower=True)],
        **{f"user.{name}": [by_email] for name in ("code", "email", "name")},
        **{f"{ref}.{name}": [by_queue_code] for ref in ("queue", "parent") for name in _TWINS},
        "source": [_party(job.source, job.source_site_id, parties)],
        "source_hr": [_text(job.source, stored_lower=True)],
        "destination": [_party(job.destination, job.destination_site_id, parties)],
        "destination_hr": [_text(job.destination, stored_lower=True)],
        "etr": [_numeric(job.etr)],
        "progress": [_numeric(job.progress)],
        "size": [_numeric(job.size)],
        "speed": [_numeric(job.speed)],
        "tasks": [_numeric(job.task_count)],
        "type": [_constant("type", 1)],
        "type_hr": [_constant("type_hr", "transfer")],
        "created": [_stamp(job.created)],
        "modified": [_stamp(job.modified)],
        "finished": [_stamp(job.finished)],
    }
    return table.get(attr)


def _or(parts: Sequence[_Cond | _Wide]) -> _Cond | _Wide:
    """Any of ``parts`` (wide if one of them is)."""
    said = or_(*[p.condition if isinstance(p, _Wide) else p for p in parts]) if parts else false()
    return _Wide(said) if any(isinstance(p, _Wide) for p in parts) else said


def _any(candidates: Sequence[_Holds], op: Op, values: Sequence[Value]) -> _Cond | _Wide | None:
    """Some candidate holds for some value (None when any part is not said in SQL)."""
    parts: list[_Cond | _Wide] = []
    for holds in candidates:
        for value in values:
            part = holds(op, value)
            if part is None:
                return None
            parts.append(part)
    return _or(parts)


def _comparison(node: Comparison, parties: Parties) -> _Cond | _Wide | None:
    candidates = _candidates(node.attr, parties)
    if candidates is None:
        return None
    positive = _NEGATED.get(node.op)
    if positive is not None:  # none of the candidates holds: needs the exact positive form
        found = _any(candidates, Op.EQ if positive is Op.IN else positive, node.values)
        return None if found is None or isinstance(found, _Wide) else ~found
    if node.op is Op.IN:
        return _any(candidates, Op.EQ, node.values)
    return _any(candidates, node.op, node.values)


def _translate(node: Node, parties: Parties) -> _Cond | _Wide | None:
    if isinstance(node, Comparison):
        return _comparison(node, parties)
    if isinstance(node, Lookup):
        value = Value(node.value, quoted=True)
        return _any([_text(m.Job.id, stored_lower=True), _text(m.Job.name)], Op.EQ, [value])
    parts = [_translate(item, parties) for item in node.items]
    if isinstance(node, And):
        said = [p for p in parts if p is not None]
        if not said:
            return None
        condition = and_(*[p.condition if isinstance(p, _Wide) else p for p in said])
        exact = len(said) == len(parts) and not any(isinstance(p, _Wide) for p in said)
        return condition if exact else _Wide(condition)
    if any(p is None for p in parts):
        return None
    return _or([p for p in parts if p is not None])


@dataclass(frozen=True, slots=True)
class JobQuery:
    """A query said in SQL: ``where`` holds for every job the query matches; when ``exact``, it
    holds for those jobs only."""

    where: ColumnElement[bool]
    exact: bool


def job_query(node: Node, parties: Parties | None = None) -> JobQuery:
    """``node`` in SQL, and whether exactly (``true`` and not exact if nothing is said)."""
    said = _translate(node, parties or Parties())
    if said is None:
        return JobQuery(literal(True), exact=False)
    if isinstance(said, _Wide):
        return JobQuery(said.condition, exact=False)
    return JobQuery(said, exact=True)


def job_condition(node: Node, parties: Parties | None = None) -> ColumnElement[bool]:
    """A SQL condition every job matching ``node`` satisfies (``true`` if nothing is said)."""
    return job_query(node, parties).where
