"""Discovery and logs: ``entitytypes``, ``attributes`` and 3.4's ``log/find``.

reelsync keeps no separate audit log: ``log/find`` answers rows built from the job (and task)
history it stores - created, finished and task errors - newest last unless ``sort_reverse``.
"""

from __future__ import annotations

from typing import Any

from reelsync.domain.records import Workspace
from reelsync.errors import ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.catalog import ENTITY_TYPES, attributes_for
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import flag, text_field
from reelsync.server.accsyn.handlers.jobs import all_jobs
from reelsync.server.accsyn.handlers.tasks import all_tasks
from reelsync.server.accsyn.selection import select
from reelsync.services import jobs, workspace

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


def _job_rows(call: Call, job_id: str | None) -> list[dict[str, Any]]:
    if job_id:
        chosen = [jobs.get_job(call.db, call.actor, job_id)]
    else:
        chosen = all_jobs(call, finished=True)
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


@route("GET", ("log",), "find")
def logs(call: Call) -> list[dict[str, Any]]:
    data = call.data
    kind = (text_field(data, "entitytype") or "workspace").lower()
    if kind not in ("workspace", "job", "transfer"):
        raise ValidationError(f"reelsync keeps logs of the workspace and of jobs, not of {kind}s")
    rows = _job_rows(call, call.envelope.id if kind != "workspace" else None)
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
