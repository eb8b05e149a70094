"""The control plane's entities as frozen records: what the services return and the adapters
serialise (the native API as JSON, the accsyn adapter in its own wire shape).

Rules: records are plain values (no ORM, no lazy loading); references carry both the id and the
human code (``queue_id`` and ``queue``) so adapters never query again; datetimes are aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

__all__ = [
    "Acl",
    "Actor",
    "ApiKey",
    "AuditEvent",
    "EnrollmentToken",
    "Job",
    "Notes",
    "Page",
    "Queue",
    "Role",
    "Server",
    "ServerStatus",
    "Setting",
    "SettingScope",
    "Site",
    "Task",
    "User",
    "UserPreferences",
    "Volume",
    "Workspace",
]

T = TypeVar("T")


class Role(StrEnum):
    ADMIN = "admin"
    EMPLOYEE = "employee"
    STANDARD = "standard"


class ServerStatus(StrEnum):
    INIT = "init"
    ONLINE = "online"
    OFFLINE = "offline"
    DISABLED = "disabled"
    REVOKED = "revoked"  # by an admin, for good: refused by the control plane and by peers


class SettingScope(StrEnum):
    WORKSPACE = "workspace"
    VOLUME = "volume"
    QUEUE = "queue"
    JOB = "job"
    USER = "user"  # a user's own preferences (e.g. email_opt_out)
    SITE = "site"  # a site's own settings (workspace > site)
    SERVER = "server"  # an agent's own settings (workspace > its site > server)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling: every service call that reads or changes data takes one."""

    user_id: str
    email: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list. ``total`` is None when counting would cost a scan (see the list);
    ``next`` is the cursor of the following page (None on the last one)."""

    items: Sequence[T]
    total: int | None
    limit: int
    offset: int
    next: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: str
    created: datetime
    actor_id: str | None
    actor: str  # e-mail
    action: str  # e.g. "user.deleted"
    entity_type: str
    entity_id: str
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Notes:
    """An entity's descriptive fields (accsyn's description, metadata, creator, modifier); a
    volume's also its extra mail addresses and queue."""

    description: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    creator_id: str | None = None
    modifier_id: str | None = None
    email: str = ""
    queue_id: str | None = None


@dataclass(frozen=True, slots=True)
class Workspace:
    id: str
    code: str
    name: str
    created: datetime
    description: str = ""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    role: Role
    enabled: bool
    created: datetime
    modified: datetime


@dataclass(frozen=True, slots=True)
class UserPreferences:
    """A user's own choices (kept as USER-scoped settings). ``email_opt_out``: no job mail to
    this user (the queue's and volumes' extra recipients still get theirs)."""

    user_id: str
    email: str
    email_opt_out: bool


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    user_id: str
    prefix: str
    description: str
    created: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    code: str
    name: str
    main: bool
    enabled: bool
    created: datetime
    modified: datetime


@dataclass(frozen=True, slots=True)
class Volume:
    id: str
    code: str
    name: str
    default: bool
    enabled: bool
    paths: Mapping[str, str]  # site code -> absolute path prefix at that site
    created: datetime
    modified: datetime


@dataclass(frozen=True, slots=True)
class Queue:
    id: str
    code: str
    name: str
    priority: int
    default: bool
    paused: bool
    created: datetime
    modified: datetime


@dataclass(frozen=True, slots=True)
class Server:
    id: str
    site_id: str
    site: str
    hostname: str
    status: ServerStatus
    version: str | None
    last_checkin: datetime | None
    cert_fingerprint: str | None
    peer_address: str | None
    peer_port: int | None
    dialable: bool
    created: datetime
    modified: datetime
    # bandwidth, bytes/s: the limit an admin set centrally (None: the agent's own config), the
    # limit the agent reported applying, and its rates over its last heartbeat interval
    bandwidth_limit: float | None = None
    applied_limit: float | None = None
    rate_sent: float | None = None
    rate_received: float | None = None
    # what the agent reports of itself (heartbeat) and the address it calls from
    os: str | None = None  # linux, windows or mac
    username: str | None = None  # the account the agent runs as
    wan_ip: str | None = None


@dataclass(frozen=True, slots=True)
class EnrollmentToken:
    id: str
    site_id: str
    site: str
    created: datetime
    expires_at: datetime
    used_at: datetime | None
    server_id: str | None


@dataclass(frozen=True, slots=True)
class Acl:
    id: str
    user_id: str
    user: str  # e-mail
    volume_id: str
    volume: str  # code
    path: str  # relative to the volume root, "" = the whole volume
    read: bool
    write: bool
    created: datetime
    modified: datetime


@dataclass(frozen=True, slots=True)
class Setting:
    scope: SettingScope
    target_id: str | None
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    name: str
    type: str
    user_id: str
    user: str  # e-mail
    queue_id: str
    queue: str  # code
    status: str
    source: str  # the source party, e.g. "site=hq"
    destination: str
    source_site_id: str
    destination_site_id: str
    progress: float
    size: int | None
    bytes_done: int
    speed: float
    tasks: int  # how many tasks the job has
    settings: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created: datetime | None = None
    modified: datetime | None = None
    finished: datetime | None = None
    etr: int | None = None  # estimated seconds remaining (scheduler), None when unknown
    modifier_id: str | None = None  # who last changed it (None: nobody since its creator)
    # what the submit that answered this record noticed: accepted, but maybe not what was meant
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    job_id: str
    uri: str
    source_volume_id: str
    source_volume: str
    source_path: str
    destination_volume_id: str
    destination_volume: str
    destination_path: str
    size: int | None
    priority: int
    status: str
    tries: int
    last_error: str | None
    digest: str | None
    bytes_done: int
    server_id: str | None
    lease_expires_at: datetime | None
    not_before: datetime | None
    metadata: Mapping[str, Any]
    created: datetime
    modified: datetime
    finished: datetime | None
    dispatches: int = 0  # leases granted so far (the scheduler's audit count)
    files: int | None = None  # a folder task: how many files it held (None: a file)
