"""What the accsyn adapter knows about entity types: which exist, which reelsync serves, and the
attributes each exposes (answers to ``entitytypes`` and ``attributes WHERE entitytype=X``).

Rules: a type in :data:`UNSUPPORTED` is one reelsync deliberately does not offer (deliveries,
compute, publish, collections, ...); every event on it answers a clear "not supported" message.
Attribute lists are what the adapter actually returns, reads first; creatable and updatable
lists are narrower and admin-only types hide them from other roles.
"""

from __future__ import annotations

from collections.abc import Mapping

from reelsync.errors import NotSupportedError, ValidationError

__all__ = [
    "ATTRIBUTES",
    "CLIENT_KINDS",
    "ENTITY_TYPES",
    "JOB_KINDS",
    "SHARE_KINDS",
    "UNSUPPORTED",
    "attributes_for",
    "check_supported",
    "known_attributes",
]

#: Uri types that name a share (a volume; folders and homes are sub-paths of a volume).
SHARE_KINDS = frozenset({"share", "volume", "folder", "home"})
#: Uri types that name a client; ``client`` matches every kind, the others one type each.
CLIENT_KINDS: Mapping[str, int | None] = {
    "client": None,
    "app": 0,
    "server": 1,
    "userserver": 2,
    "browser": 3,
}
#: Uri types that name a job: ``transfer`` is type 1, ``job`` any kind (type 2 = queue).
JOB_KINDS = frozenset({"job", "transfer"})

UNSUPPORTED: Mapping[str, str] = {
    "compute": "compute (render) jobs",
    "delivery": "deliveries",
    "request": "upload requests",
    "stream": "streaming deliveries",
    "collection": "collections",
    "file": "collection files",
    "lane": "compute lanes",
    "engine": "compute engines",
    "publish": "publishing",
    "integration": "integrations",
}

#: Every type the ``entitytypes`` event lists (served or not, so scripts see the full model).
ENTITY_TYPES: tuple[str, ...] = (
    "user",
    "workspace",
    "site",
    "volume",
    "folder",
    "home",
    "share",
    "client",
    "app",
    "server",
    "userserver",
    "browser",
    "queue",
    "job",
    "transfer",
    "task",
    "acl",
    "setting",
    "log",
    "compute",
    "delivery",
    "request",
    "stream",
    "collection",
    "engine",
    "lane",
)

_COMMON = (
    "id",
    "code",
    "name",
    "description",
    "status",
    "metadata",
    "created",
    "creator",
    "modified",
    "modifier",
)
_READ: Mapping[str, tuple[str, ...]] = {
    "user": (*_COMMON, "email", "role", "role_hr", "inactive", "queue"),
    "workspace": ("id", "code", "name", "description", "created", "metadata"),
    "site": (*_COMMON, "main", "accsyn", "inactive"),
    "share": (
        *_COMMON,
        "type",
        "default",
        "paths",
        "site_paths",
        "path",
        "parent",
        "email",
        "queue",
        "inactive",
        "status_hr",
        "servers",
    ),
    "client": (
        "id",
        "code",
        "name",
        "description",
        "type",
        "type_hr",
        "status",
        "site",
        "site_hr",
        "roles",
        "user",
        "user_hr",
        "os",
        "username",
        "host_id",
        "wan_ip",
        "last_checkin",
        "version",
        "volumes",
        "created",
        "modified",
    ),
    "queue": (*_COMMON, "type", "priority", "default", "paused", "uri", "parent"),
    "job": (
        *_COMMON,
        "type",
        "user",
        "user_hr",
        "parent",
        "parent_hr",
        "queue",
        "queue_hr",
        "progress",
        "size",
        "bytes_done",
        "speed",
        "etr",
        "finished",
        "source",
        "source_hr",
        "destination",
        "destination_hr",
        "uri",
        "tasks",
        "settings",
    ),
    "task": (
        "id",
        "uri",
        "job",
        "job_hr",
        "source",
        "destination",
        "size",
        "priority",
        "status",
        "tries",
        "progress",
        "error",
        "time",
        "created",
        "modified",
        "finished",
        "metadata",
    ),
    "acl": (
        "id",
        "entity",
        "entity_hr",
        "target",
        "target_hr",
        "path",
        "read",
        "write",
        "acknowledged",
        "role",
        "status",
        "description",
        "token",
        "created",
        "creator",
        "modified",
        "modifier",
    ),
}
#: Types reelsync does not serve but still describes (``attributes WHERE entitytype=delivery``),
#: so scripts that inspect the model before choosing a path keep working.
_DESCRIBED: Mapping[str, tuple[str, ...]] = {
    "delivery": (
        *_COMMON,
        "type",
        "user",
        "user_hr",
        "public",
        "recipients",
        "size",
        "expires",
        "modified",
        "modifier",
    ),
}
_CREATE: Mapping[str, tuple[str, ...]] = {
    "user": ("code", "name", "role", "queue", "give_all_volumes_access", "volumes", "metadata"),
    "site": ("code", "name", "description", "metadata"),
    "share": ("code", "name", "default", "paths", "site_paths", "description", "metadata"),
    "queue": ("code", "name", "priority", "default", "status", "description", "metadata"),
    "job": (
        "code",
        "name",
        "queue",
        "status",
        "type",
        "tasks",
        "source",
        "destination",
        "mirror_paths",
        "mirror",
        "append",
        "allow_duplicates",
        "settings",
        "metadata",
    ),
    "task": ("tasks", "allow_duplicates"),
    "acl": ("entity", "target", "path", "read", "write", "notify", "message", "invite"),
}
_UPDATE: Mapping[str, tuple[str, ...]] = {
    "user": ("name", "role", "status", "metadata"),
    "site": ("name", "description", "status", "metadata"),
    "share": ("name", "default", "paths", "site_paths", "status", "description", "metadata"),
    "queue": ("name", "priority", "default", "status", "description", "metadata"),
    "job": ("name", "code", "status", "queue", "metadata"),
    "task": ("status", "priority", "metadata"),
}
ATTRIBUTES = _READ

_ADMIN_ONLY_WRITES = frozenset({"user", "site", "share", "queue"})


def _family(entitytype: str) -> str:
    if entitytype in SHARE_KINDS:
        return "share"
    if entitytype in CLIENT_KINDS:
        return "client"
    if entitytype in JOB_KINDS:
        return "job"
    return entitytype


def check_supported(entitytype: str) -> None:
    """Raise NotSupportedError for a type reelsync deliberately does not serve."""
    what = UNSUPPORTED.get(entitytype)
    if what is not None:
        raise NotSupportedError(
            f"{what} are not supported by reelsync",
            hint="reelsync serves users, sites, volumes, servers, queues, transfers, tasks, ACLs"
            " and settings",
        )


def known_attributes(entitytype: str) -> frozenset[str] | None:
    """Every attribute a query may name on ``entitytype`` (with ``_hr`` twins), or None for a
    type without a fixed list."""
    family = _family(entitytype.strip().lower())
    names = _READ.get(family)
    if names is None:
        return None
    if family == "job":  # queues are jobs of type 2: their attributes too
        names = (*names, *_READ["queue"])
    return frozenset(names) | {f"{n}_hr" for n in names} | {"type", "inactive"}


def attributes_for(entitytype: str, *, role: str, create: bool, update: bool) -> list[str]:
    """The attribute names a role may read (or create / update) on ``entitytype``."""
    entitytype = entitytype.strip().strip("'\"").lower()
    if entitytype in _DESCRIBED:
        return [] if create or update else list(_DESCRIBED[entitytype])
    check_supported(entitytype)
    family = _family(entitytype)
    if family not in _READ:
        raise ValidationError(
            f"unknown entity type {entitytype!r}",
            hint="list them with find('entitytypes')",
        )
    if create or update:
        table = _CREATE if create else _UPDATE
        names = list(table.get(family, ()))
        if update and create:
            names = sorted(set(names) | set(_UPDATE.get(family, ())))
        if family in _ADMIN_ONLY_WRITES and role not in ("admin", "support"):
            return []
        return names
    return list(_READ[family])
