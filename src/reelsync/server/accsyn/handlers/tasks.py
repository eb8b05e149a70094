"""Task events: ``task/find|create|edit`` and 3.0's ``job/task/find|create|edit``.

The job is the envelope ``id`` (3.2+), the ``query`` (3.0/3.1 creates send the parent id there),
``data.parent`` (find with entityid) or a ``job.id=<id>`` comparison in the query (scripts'
``find("Task WHERE job.id=<id> AND status!=excluded")``). A create sent with an
``Idempotency-Key`` header appends once: sent again, it answers the tasks the first one appended.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from reelsync.domain.ids import is_entity_id
from reelsync.domain.query import And, Comparison, Node, Op, parse_query
from reelsync.domain.records import Task
from reelsync.errors import ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import flag, text_field
from reelsync.server.accsyn.handlers.sequences import with_frames
from reelsync.server.accsyn.handlers.sizing import sized
from reelsync.server.accsyn.selection import select
from reelsync.server.accsyn.shapes import task_record
from reelsync.services import jobs, tasks

__all__ = ["all_tasks"]

_JOB_ATTRS = ("job.id", "job", "parent", "parent.id")


def _job_in(node: Node) -> str | None:
    if isinstance(node, Comparison) and node.attr in _JOB_ATTRS and node.op is Op.EQ:
        return node.values[0].text
    if isinstance(node, And):
        for item in node.items:
            found = _job_in(item)
            if found:
                return found
    return None


def _job_id(call: Call) -> str:
    env = call.envelope
    if env.id is not None:
        return env.id.strip().lower()
    parent = text_field(call.data, "parent") if isinstance(call.envelope.data, Mapping) else None
    if parent:
        return parent.strip().lower()
    if env.query:
        text = env.query.strip().strip("'\"")
        if is_entity_id(text.lower()):
            return text.lower()
        found = _job_in(parse_query(env.query).where)
        if found:
            return found.lower()
    raise ValidationError(
        "tasks belong to a job: give the job id",
        hint="find('Task WHERE job.id=<job id>') or create('task', {...}, entityid=<job id>)",
    )


def all_tasks(call: Call, job_id: str) -> list[Task]:
    """Every task of a job, in uri order."""
    found: list[Task] = []
    after: str | None = None
    while True:
        page = tasks.list_tasks(call.db, call.actor, job_id, limit=tasks.MAX_PAGE, after=after)
        found.extend(page.items)
        if page.next is None:
            return found
        after = page.next


def _task_records(call: Call, job_id: str) -> list[dict[str, Any]]:
    job = jobs.get_job(call.db, call.actor, job_id)
    return [task_record(t, job) for t in all_tasks(call, job_id)]


@route("GET", ("task",), "find")
@route("GET", ("job",), "task/find")
def find(call: Call) -> list[dict[str, Any]]:
    job_id = _job_id(call)
    records = _task_records(call, job_id)
    env = call.envelope
    if env.query and is_entity_id(env.query.strip().strip("'\"").lower()):
        env = dataclasses.replace(env, query=None)  # 3.0/3.1: the query is the job id
    return select(dataclasses.replace(env, id=None), records)


@route("POST", ("task",), "create")
@route("POST", ("job",), "task/create")
def create(call: Call) -> list[dict[str, Any]]:
    job_id = _job_id(call)
    data = call.data
    if "tasks" not in data:
        raise ValidationError("create('task', ...) needs the tasks to add")
    created = tasks.add_tasks(
        call.db,
        call.actor,
        job_id,
        with_frames(call, {"tasks": data["tasks"]})["tasks"],
        allow_duplicates=flag(data, "allow_duplicates"),
        idempotency_key=call.idempotency_key,  # a retry returns the first create's tasks
    )
    job = sized(call, jobs.get_job(call.db, call.actor, job_id), created)
    return [task_record(t, job) for t in created]


@route("PUT", ("task",), "edit")
@route("PUT", ("job",), "task/edit")
def edit(call: Call) -> list[dict[str, Any]]:
    job_id = _job_id(call)
    changes = call.envelope.data
    if isinstance(changes, Mapping):
        changes = changes.get("tasks", [changes])
    if not isinstance(changes, list) or not changes:
        raise ValidationError("update_many needs a list of {id or uri, status/priority/metadata}")
    updated = tasks.update_tasks(call.db, call.actor, job_id, changes)
    job = jobs.get_job(call.db, call.actor, job_id)
    return [task_record(t, job) for t in updated]
