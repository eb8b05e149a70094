"""Discovery and logs: ``entitytypes``, ``attributes`` and 3.4's ``log/find``.

``log/find`` answers rows built from the job (and task) history reelsync stores - created,
finished and task errors - for the workspace, a job, or a user's jobs; an admin's workspace log
also holds the audit trail (a user deleted, ...). Oldest first unless ``sort_reverse``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from reelsync.db.models import Job as JobRow
from reelsync.domain.records import Job, Workspace
from reelsync.errors import ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.catalog import ENTITY_TYPES, attributes_for
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import flag, text_field
from reelsync.server.accsyn.handlers.jobs import all_jobs
from reelsync.server.accsyn.handlers.tasks import all_tasks
from reelsync.server.accsyn.selection import select
from reelsync.services import audit, jobs, users, workspace

__all__: list[str] = []


def _workspace_record(ws: Workspace) -> dict[str, Any]:
    return {
        "id": ws.id,
        "code": ws.code,
        "name": ws.name,
        "description": ws.description,
        "created": ws.created,
    }


@route("GET", ("workspace",), "find")
def find_workspace(call: Call) -> list[dict[str, Any]]:
    ws = workspace.get_workspace(call.db, call.actor)
    return select(call.envelope, [_workspace_record(ws)])


@route("PUT", ("workspace",), "edit")
def edit_workspace(call: Call) -> list[dict[str, Any]]:
    data = call.data
    unknown = sorted(set(data) - {"name", "description"})
    if unknown:
        raise ValidationError(
            f"cannot change {', '.join(unknown)} of the workspace; its name and description",
            hint="the code is what clients name the workspace by; settings go via set_setting",
        )
    ws = workspace.update_workspace(
        call.db,
        call.actor,
        name=text_field(data, "name"),
        description=text_field(data, "description"),
    )
    return [_workspace_record(ws)]


@route("GET", ("entitytypes",), "")
def entitytypes(call: Call) -> list[str]:
    return list(ENTITY_TYPES)


@route("GET", ("attributes",), "")
def attributes(call: Call) -> list[str]:
    data = call.data
    kind = text_field(data, "entitytype", required=True) or ""
    return attributes_for(
        kind,
        role=call.actor.role.value,
        create=bool(flag(data, "create")),
        update=bool(flag(data, "update")),
    )


def _job_rows(
    call: Call, job_id: str | None, *, user_id: str | None = None
) -> list[dict[str, Any]]:
    chosen: Iterable[Job]
    if job_id:
        chosen = [jobs.get_job(call.db, call.actor, job_id)]
    elif user_id is not None:  # that user's jobs, through their index
        chosen = all_jobs(call, finished=True, where=JobRow.user_id == user_id)
    else:
        chosen = all_jobs(call, finished=True)
    if user_id is not None:
        chosen = [j for j in chosen if j.user_id == user_id]
    rows: list[dict[str, Any]] = []
    for job in chosen:
        base = {"entitytype": "job", "entityid": job.id}
        rows.append(
            {
                **base,
                "date": job.created,
                "level": "info",
                "message": f"job {job.name!r} submitted by {job.user} to queue {job.queue}",
            }
        )
        if job.finished is not None:
            rows.append(
                {
                    **base,
                    "date": job.finished,
                    "level": "info",
                    "message": f"job {job.name!r} {job.status}",
                }
            )
        if job_id:
            for task in all_tasks(call, job.id):
                if task.last_error:
                    rows.append(
                        {
                            **base,
                            "date": task.modified,
                            "level": "error",
                            "message": f"task {task.uri}: {task.last_error}",
                        }
                    )
    return rows


def _audit_rows(call: Call) -> list[dict[str, Any]]:
    return [
        {
            "entitytype": e.entity_type,
            "entityid": e.entity_id,
            "date": e.created,
            "level": "info",
            "message": f"{e.action} by {e.actor}: {json.dumps(dict(e.detail), sort_keys=True)}",
        }
        for e in audit.list_events(call.db, call.actor)
    ]


@route("GET", ("log",), "find")
def logs(call: Call) -> list[dict[str, Any]]:
    data = call.data
    kind = (text_field(data, "entitytype") or "workspace").lower()
    if kind not in ("workspace", "job", "transfer", "user"):
        raise ValidationError(
            f"reelsync keeps logs of the workspace, of jobs and of users' jobs, not of {kind}s"
        )
    if kind == "user":  # a user's log: their jobs' history (what the caller may see of it)
        user = users.get_user(call.db, call.actor, call.envelope.id or call.actor.user_id)
        rows = _job_rows(call, None, user_id=user.id)
    else:
        rows = _job_rows(call, call.envelope.id if kind != "workspace" else None)
    if kind == "workspace" and call.actor.is_admin:
        rows += _audit_rows(call)
    search = (text_field(data, "search") or "").lower()
    if search:
        rows = [r for r in rows if search in r["message"].lower()]
    sort = text_field(data, "sort") or "date"
    if sort not in ("date", "level", "message"):
        raise ValidationError(f"logs sort by date, level or message, not {sort!r}")
    rows.sort(key=lambda r: (r[sort] is None, r[sort]), reverse=bool(flag(data, "sort_reverse")))
    page = data.get("pagination") or {}
    if not isinstance(page, dict):
        raise ValidationError("pagination must be an object {page, limit, skip}")
    limit = page.get("limit")
    skip = page.get("skip") or 0
    if page.get("page") and limit:
        skip = (int(page["page"]) - 1) * int(limit)
    return rows[int(skip) : int(skip) + int(limit) if limit else None]
