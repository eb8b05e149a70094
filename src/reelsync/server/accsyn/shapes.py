"""Service records in accsyn's wire shape: field names, ``_hr`` twins, status words, types.

Rules: every record carries ``id`` (24 hex; task ids are UUIDs) and the accsyn field names;
references are ids with a human ``<ref>_hr`` twin; datetimes stay datetimes here (the wire codec
makes them naive UTC). ``<ref>_code`` keys let queries match a reference by code or e-mail and are
stripped before the answer leaves (see :mod:`reelsync.server.accsyn.selection`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reelsync.domain.records import Acl, Job, Notes, Queue, Server, Site, Task, User, Volume

__all__ = [
    "JOB_TYPE_QUEUE",
    "JOB_TYPE_TRANSFER",
    "Parties",
    "acl_record",
    "job_record",
    "queue_record",
    "server_record",
    "site_record",
    "task_record",
    "user_hr",
    "user_record",
    "volume_record",
]

JOB_TYPE_TRANSFER = 1
JOB_TYPE_QUEUE = 2
CLIENT_TYPE_SERVER = 1


def user_hr(email: str, role: str, user_id: str) -> str:
    return f"user:{email}[{role}]({user_id})"


def _status(enabled: bool) -> str:
    return "enabled" if enabled else "disabled"


def _noted(notes: Notes | None) -> dict[str, Any]:
    notes = notes or Notes()
    return {
        "description": notes.description,
        "metadata": dict(notes.metadata),
        "creator": notes.creator_id,
        "modifier": notes.modifier_id or notes.creator_id,
    }


def user_record(user: User, notes: Notes | None = None) -> dict[str, Any]:
    return {
        **_noted(notes),
        "id": user.id,
        "code": user.email,
        "email": user.email,
        "name": user.name,
        "role": user.role.value,
        "role_hr": user.role.value,
        "status": _status(user.enabled),
        "inactive": not user.enabled,
        "created": user.created,
        "modified": user.modified,
    }


def site_record(site: Site, notes: Notes | None = None) -> dict[str, Any]:
    return {
        **_noted(notes),
        "id": site.id,
        "code": site.code,
        "name": site.name or site.code,
        "main": site.main,
        "accsyn": False,
        "status": _status(site.enabled),
        "inactive": not site.enabled,
        "created": site.created,
        "modified": site.modified,
    }


def volume_record(
    volume: Volume, notes: Notes | None = None, main_site: str | None = None
) -> dict[str, Any]:
    email = notes.email if notes else ""
    return {
        **_noted(notes),
        "email": [a for a in email.split(",") if a],
        "queue": notes.queue_id if notes else None,
        "path": volume.paths.get(main_site) if main_site else None,
        "id": volume.id,
        "code": volume.code,
        "name": volume.name or volume.code,
        "type": "volume",
        "default": volume.default,
        "paths": dict(volume.paths),
        "site_paths": dict(volume.paths),
        "status": _status(volume.enabled),
        "status_hr": _status(volume.enabled),
        "inactive": not volume.enabled,
        "created": volume.created,
        "modified": volume.modified,
    }


def server_record(server: Server, notes: Notes | None = None) -> dict[str, Any]:
    return {
        **_noted(notes),
        "name": server.hostname,
        "os": server.os,
        "username": server.username,
        "wan_ip": server.wan_ip,
        "id": server.id,
        "code": server.hostname,
        "type": CLIENT_TYPE_SERVER,
        "type_hr": "server",
        "status": server.status.value,
        "site": server.site_id,
        "site_hr": server.site,
        "site_code": server.site,
        "roles": ["storage", "site"],
        "user": None,
        "version": server.version,
        "last_checkin": server.last_checkin,
        "created": server.created,
        "modified": server.modified,
    }


def queue_record(queue: Queue, notes: Notes | None = None) -> dict[str, Any]:
    return {
        **_noted(notes),
        "id": queue.id,
        "code": queue.code,
        "name": queue.name,
        "type": JOB_TYPE_QUEUE,
        "type_hr": "queue",
        "priority": queue.priority,
        "default": queue.default,
        "paused": queue.paused,
        "status": "paused" if queue.paused else "waiting",
        "uri": queue.code,
        "created": queue.created,
        "modified": queue.modified,
    }


@dataclass(frozen=True, slots=True)
class Parties:
    """What turns a job's parties into accsyn's ``<entitytype>:<id>`` form and back: the main
    site (whose party is also the workspace, as in accsyn's ``source=acmepost``)."""

    main_site_id: str | None = None
    workspace_code: str | None = None


def job_record(job: Job, parties: Parties | None = None) -> dict[str, Any]:
    parties = parties or Parties()
    return {
        "id": job.id,
        "code": job.name,
        "name": job.name,
        "type": JOB_TYPE_TRANSFER,
        "type_hr": "transfer",
        "user": job.user_id,
        "user_hr": job.user,
        "user_code": job.user,
        "creator": job.user_id,
        "creator_hr": job.user,
        "modifier": job.modifier_id or job.user_id,
        "queue": job.queue_id,
        "queue_hr": job.queue,
        "queue_code": job.queue,
        "parent": job.queue_id,
        "parent_hr": job.queue,
        "parent_code": job.queue,
        "status": job.status,
        "progress": job.progress,
        "size": job.size,
        "bytes_done": job.bytes_done,
        "speed": job.speed,
        "etr": job.etr,
        **_party("source", job.source, job.source_site_id, parties),
        **_party("destination", job.destination, job.destination_site_id, parties),
        "tasks": job.tasks,
        "settings": dict(job.settings),
        "metadata": dict(job.metadata),
        "created": job.created,
        "modified": job.modified,
        "finished": job.finished,
    }


def _party(attr: str, party: str, site_id: str, parties: Parties) -> dict[str, Any]:
    """``source: "site:<id>"`` (accsyn's form), ``source_hr: "site=hq"`` (reelsync's party text);
    a query matches either form, the site code, and the workspace code for the main site."""
    code = party.partition(":")[0].partition("=")[2] or party
    matches = [party, code, f"site:{code}"]
    if parties.workspace_code and site_id == parties.main_site_id:
        matches.append(parties.workspace_code)
    return {attr: f"site:{site_id}", f"{attr}_hr": party, f"{attr}_code": matches}


def _party_code(party: str) -> str:
    """``site=london`` -> ``london``."""
    return party.partition(":")[0].partition("=")[2] or party


def task_record(task: Task, job: Job | None = None) -> dict[str, Any]:
    source_site = _party_code(job.source) if job else None
    destination_site = _party_code(job.destination) if job else None
    return {
        "id": task.id,
        "uri": task.uri,
        "job": task.job_id,
        "job_hr": job.name if job else None,
        # when the task last changed state (queued, leased, reported, finished)
        "time": task.finished or task.modified,
        "source": {
            "v": task.source_volume_id,
            "s": task.source_volume_id,
            "volume": task.source_volume,
            "path": task.source_path,
            "site": source_site,
        },
        "destination": {
            "v": task.destination_volume_id,
            "s": task.destination_volume_id,
            "volume": task.destination_volume,
            "path": task.destination_path,
            "site": destination_site,
        },
        "size": task.size,
        "priority": task.priority,
        "status": task.status,
        "tries": task.tries,
        "error": task.last_error,
        "progress": _task_progress(task),
        "metadata": dict(task.metadata),
        "created": task.created,
        "modified": task.modified,
        "finished": task.finished,
    }


def _task_progress(task: Task) -> int:
    if task.status == "done":
        return 100
    if not task.size:
        return 0
    return min(100, int(100 * task.bytes_done / task.size))


def acl_record(acl: Acl, role: str | None = None) -> dict[str, Any]:
    return {
        "id": acl.id,
        "entity": f"user:{acl.user_id}",
        "entity_hr": acl.user,
        "entity_code": f"user:{acl.user}",
        "target": f"share:{acl.volume_id}",
        "target_hr": acl.volume,
        "target_code": f"share:{acl.volume}",
        "path": "/" + acl.path if acl.path else "/",
        "read": acl.read,
        "write": acl.write,
        "acknowledged": True,
        "role": role,
        "status": "enabled",
        "created": acl.created,
        "modified": acl.modified,
    }
