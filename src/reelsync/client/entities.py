"""Entity types of the accsyn-like verbs and where each lives in the native REST API v1.
Rules: an entity type is named in the singular as accsyn names it (``job``, ``user``, ...);
``agent`` is another name for ``server``; tasks live under their job."""

from __future__ import annotations

from reelsync.errors import ValidationError

__all__ = ["ENTITY_PATHS", "collection_path", "item_path"]

ENTITY_PATHS: dict[str, str] = {
    "user": "users",
    "site": "sites",
    "volume": "volumes",
    "queue": "queues",
    "server": "servers",
    "agent": "servers",
    "acl": "acls",
    "job": "jobs",
    "setting": "settings",
    "task": "tasks",
}


def _plural(entitytype: str) -> str:
    try:
        return ENTITY_PATHS[entitytype.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(ENTITY_PATHS))
        raise ValidationError(f"unknown entity type {entitytype!r} (one of {known})") from None


def collection_path(entitytype: str, parent: str | None = None) -> str:
    """``/users``, ``/jobs``; tasks: ``/jobs/{job}/tasks`` (``parent`` is the job id)."""
    plural = _plural(entitytype)
    if plural == "tasks":
        if not parent:
            raise ValidationError("tasks belong to a job: pass the job id")
        return f"/jobs/{parent}/tasks"
    return f"/{plural}"


def item_path(entitytype: str, ref: str) -> str:
    if not str(ref).strip():
        raise ValidationError(f"an empty {entitytype} id or code")
    if _plural(entitytype) == "tasks":
        raise ValidationError("tasks are read and changed through their job")
    return f"{collection_path(entitytype)}/{ref}"
