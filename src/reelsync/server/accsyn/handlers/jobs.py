"""``job/*`` and ``transfer/*`` events. ``job`` covers every job type: type 2 is a queue, so
``job/create`` with ``type: 2`` makes a queue and ``job/find`` lists queues too (``type=2``).

Finished jobs (done, aborted) are left out of a plain find; ``finished: true``, ``find_one``
(``single_entity_query``) and ``get_entity`` (``id``) see them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sqlalchemy import ColumnElement, and_

from reelsync.db.models import Job as Job_
from reelsync.domain.ids import is_entity_id
from reelsync.domain.query import parse_query
from reelsync.domain.records import Job
from reelsync.errors import NotFoundError, NotSupportedError, ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import flag, target, text_field
from reelsync.server.accsyn.handlers.queues import (
    create_queue,
    delete_queue,
    edit_queue,
    is_queue_type,
    matching_queue_records,
    queue_records,
)
from reelsync.server.accsyn.handlers.sequences import with_frames
from reelsync.server.accsyn.handlers.sizing import MAX_TASKS, sized
from reelsync.server.accsyn.handlers.tasks import all_tasks
from reelsync.server.accsyn.jobrows import wire_jobs
from reelsync.server.accsyn.selection import select
from reelsync.server.accsyn.shapes import (
    JOB_TYPE_QUEUE,
    JOB_TYPE_TRANSFER,
    Parties,
    job_record,
)
from reelsync.services import catalog, jobquery, jobs, queues

__all__ = ["all_jobs", "job_records", "parties"]

_JOBS = ("job", "transfer")
_OTHER_TYPES = {3: "compute jobs", 7: "deliveries", 8: "upload requests", 10: "streams"}
_EDITABLE = {"status", "name", "code", "queue", "parent", "metadata"}


def _type(value: object) -> int | None:
    if value is None:
        return None
    if is_queue_type(value):
        return JOB_TYPE_QUEUE
    if value in (1, "1") or (isinstance(value, str) and value.strip().lower() == "transfer"):
        return JOB_TYPE_TRANSFER
    try:
        number = int(str(value))
    except ValueError:
        raise ValidationError(f"unknown job type {value!r}") from None
    what = _OTHER_TYPES.get(number)
    if what:
        raise NotSupportedError(f"{what} are not supported by reelsync")
    raise ValidationError(f"unknown job type {value!r}; reelsync has 1 (transfer) and 2 (queue)")


def all_jobs(
    call: Call, *, finished: bool, where: ColumnElement[bool] | None = None
) -> Iterator[Job]:
    """The jobs the caller may see (finished ones too when ``finished``), newest first, read
    lazily by key; ``where`` narrows them in SQL."""
    wanted = jobs.JobFilter(finished=None if finished else False, where=where)
    return jobs.scan_jobs(call.db, call.actor, wanted)


def parties(call: Call) -> Parties:
    """The main site and workspace code, to write and match jobs' parties as accsyn does (the
    sites as the catalog keeps them: no query)."""
    with call.db.reader() as session:
        main = next((s.id for s in catalog.current(session).sites if s.main), None)
    return Parties(main_site_id=main, workspace_code=call.workspace_code)


def job_records(
    call: Call, *, finished: bool, query: str | None = None, queue: str | None = None
) -> Iterator[dict[str, Any]]:
    """Job records for a find: the ``query`` said in SQL as far as SQL can say it (the caller
    evaluates it again on these, see :mod:`reelsync.services.jobquery`)."""
    return _job_records(call, finished=finished, query=query, queue=queue)[0]


def _job_records(
    call: Call,
    *,
    finished: bool,
    query: str | None = None,
    queue: str | None = None,
    answered: bool = False,
) -> tuple[Iterator[dict[str, Any]], bool]:
    """:func:`job_records`, and whether SQL said the ``query`` exactly (then every record
    matches it and Python need not evaluate it again). ``answered``: the caller answers the
    records as they are unless the query is not exact: those come in the wire shape already
    (:mod:`reelsync.server.accsyn.jobrows`: no helper keys, datetimes as text)."""
    known = parties(call)
    said: list[ColumnElement[bool]] = []
    exact = False
    if query:
        also = jobquery.Parties(known.workspace_code, known.main_site_id)
        translated = jobquery.job_query(parse_query(query).where, also)
        said.append(translated.where)
        exact = translated.exact
    if queue is not None:
        said.append(Job_.queue_id == queue)
    where = and_(*said) if said else None
    if answered and (exact or not query):  # straight into the wire shape
        batch = _rows_wanted(call.envelope.data_dict)
        return wire_jobs(call.db, call.actor, finished=finished, where=where, batch=batch), exact
    records = (job_record(j, known) for j in all_jobs(call, finished=finished, where=where))
    return records, exact


def _rows_wanted(data: dict[str, Any]) -> int:
    """How many job rows to read first: the page asked for (``skip`` + ``limit``), else 1,000
    (a find of the running jobs in one round trip). Bad values are refused later, by select."""
    skip, limit = data.get("skip"), data.get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        if isinstance(skip, int) and not isinstance(skip, bool) and skip > 0:
            limit += skip
        return min(limit, 1000)
    return 1000


def _is_queue(call: Call, ref: str) -> bool:
    if not is_entity_id(ref):
        return False
    try:
        queues.get_queue(call.db, call.actor, ref)
    except NotFoundError:
        return False
    return True


@route("GET", _JOBS, "find")
def find(call: Call) -> list[dict[str, Any]]:
    # one read transaction for the whole find (sites, jobs, queues, notes): one consistent
    # answer, and no transaction of its own for each read
    with call.db.snapshot():
        return _find(call)


def _find(call: Call) -> list[dict[str, Any]]:
    data = call.data
    ref = call.envelope.id
    if ref is not None and is_entity_id(ref.lower()) and not is_queue_type(data.get("type")):
        try:  # get_entity: one lookup, not a scan
            return select(
                call.envelope, [job_record(jobs.get_job(call.db, call.actor, ref), parties(call))]
            )
        except NotFoundError:
            pass  # maybe a queue, or not visible
    wanted = _type(data.get("type"))
    if wanted is None and call.kind == "transfer":
        wanted = JOB_TYPE_TRANSFER
    finished = (
        bool(flag(data, "finished"))
        or bool(flag(data, "single_entity_query"))
        or call.envelope.id is not None
    )
    parent = text_field(data, "parent")
    parent = parent.lower() if parent else None
    records: Iterable[dict[str, Any]] = ()
    exact = False
    public = True  # no record carries helper keys (queue records never do)
    if wanted in (None, JOB_TYPE_TRANSFER):
        query = call.envelope.query if call.envelope.id is None else None
        records, exact = _job_records(
            call, finished=finished, query=query, queue=parent, answered=True
        )
        public = exact or not query  # else the jobs were read to be matched in Python
    if exact:  # the jobs are the query's already: only the queues are matched here
        if wanted is None:
            records = itertools.chain(records, _lazy(lambda: matching_queue_records(call)))
    elif wanted in (None, JOB_TYPE_QUEUE):
        records = itertools.chain(records, _lazy(lambda: queue_records(call)))
    if parent:
        records = (r for r in records if r.get("parent") == parent)
    return select(call.envelope, records, matched=exact, public=public)


def _lazy(read: Callable[[], list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """``read()``'s records, read only if the stream gets that far."""
    yield from read()


@route("POST", _JOBS, "create")
def create(call: Call) -> list[dict[str, Any]]:
    data = call.data
    kind = _type(data.get("type"))
    if kind == JOB_TYPE_QUEUE:
        if call.kind == "transfer":
            raise ValidationError(
                "a transfer cannot be of type 2 (queue); use create('queue', ...)"
            )
        return create_queue(call)
    payload = {k: v for k, v in data.items() if k != "type"}
    if "parent" in payload and "queue" not in payload:
        payload["queue"] = payload.pop("parent")
    payload = with_frames(call, payload)  # range-less image sequences: the frames present
    # the same pre-submit hook the native API runs; a create repeated with its Idempotency-Key
    # answers the job the first one made (or appended to) without running the hook again
    job = jobs.submit_job(
        call.db,
        call.actor,
        payload,
        hook=call.submit_hook,
        idempotency_key=call.idempotency_key,
    )
    warnings = job.warnings  # e.g. a destination "london" taken as a path at the main site
    job = sized(call, job, all_tasks(call, job.id) if job.tasks <= MAX_TASKS else ())
    record = job_record(job, parties(call))
    if warnings:
        record["warnings"] = list(warnings)
    return [record]


@route("PUT", _JOBS, "edit")
def edit(call: Call) -> list[dict[str, Any]]:
    ref = target(call)
    if _is_queue(call, ref):
        return edit_queue(call, ref)
    data = call.data
    unknown = sorted(set(data) - _EDITABLE)
    if unknown:
        raise ValidationError(
            f"cannot change {', '.join(unknown)} of a job",
            hint="a job's status, name, queue and metadata can be changed",
        )
    queue = text_field(data, "queue") or text_field(data, "parent")
    job = jobs.update_job(
        call.db,
        call.actor,
        ref,
        status=text_field(data, "status"),
        name=text_field(data, "name") or text_field(data, "code"),
        queue=queue,
        metadata=data.get("metadata"),
        fence_s=call.fence_s,
    )
    return [job_record(job, parties(call))]


@route("DELETE", _JOBS, "delete")
def delete(call: Call) -> bool:
    ref = target(call)
    if _is_queue(call, ref):
        return delete_queue(call, ref)
    jobs.delete_job(call.db, call.actor, ref, force=bool(flag(call.data, "force")))
    return True
