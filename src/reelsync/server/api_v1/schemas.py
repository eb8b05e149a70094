"""Request and list bodies of the native REST API (pydantic, at the HTTP edge only). Entities are
answered as the services' records. Unknown fields are refused (a typo is an error, not a no-op)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from reelsync.domain.records import ApiKey, EnrollmentToken, Page

__all__ = [
    "AclCreate",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "EnrollmentTokenCreate",
    "EnrollmentTokenCreated",
    "Health",
    "ItemList",
    "JobUpdate",
    "QueueCreate",
    "QueueUpdate",
    "ServerUpdate",
    "SettingPut",
    "SiteCreate",
    "SiteUpdate",
    "SyncCreate",
    "TaskAppend",
    "TaskEdit",
    "UserCreate",
    "UserUpdate",
    "VolumeCreate",
    "VolumeUpdate",
    "all_of",
    "page_of",
]

T = TypeVar("T")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemList(BaseModel, Generic[T]):
    items: list[T]
    total: int | None = Field(
        description="how many match; null when counting would cost a scan (job lists: more "
        "than 10,000 matches)"
    )
    limit: int
    offset: int
    next: str | None = Field(
        default=None,
        description="pass as `after` to get the next page (null on the last page)",
    )


def page_of(page: Page[T]) -> ItemList[T]:
    return ItemList[T](
        items=list(page.items),
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        next=page.next,
    )


def all_of(items: list[T]) -> ItemList[T]:
    return ItemList[T](items=items, total=len(items), limit=len(items), offset=0)


class Health(BaseModel):
    status: str
    version: str


class UserCreate(_Body):
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=255)
    role: str = "standard"
    enabled: bool = True


class UserUpdate(_Body):
    name: str | None = Field(default=None, max_length=255)
    role: str | None = None
    enabled: bool | None = None


class PreferencesUpdate(_Body):
    email_opt_out: bool | None = Field(
        default=None, description="true: no job e-mail to this user; false: mail again"
    )


class ApiKeyCreate(_Body):
    description: str = Field(default="", max_length=255)
    expires_at: datetime | None = None


class ApiKeyCreated(BaseModel):
    """The new key's record and, once, the plain key."""

    id: str
    user_id: str
    prefix: str
    description: str
    created: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    api_key: str = Field(description="the plain key: shown once, stored only hashed")

    @classmethod
    def of(cls, key: ApiKey, plain: str) -> ApiKeyCreated:
        return cls(
            id=key.id,
            user_id=key.user_id,
            prefix=key.prefix,
            description=key.description,
            created=key.created,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            api_key=plain,
        )


class SiteCreate(_Body):
    code: str = Field(max_length=64)
    name: str | None = Field(default=None, max_length=255)


class SiteUpdate(_Body):
    name: str | None = Field(default=None, max_length=255)
    enabled: bool | None = None
    main: bool | None = None


class VolumeCreate(_Body):
    code: str = Field(max_length=64)
    name: str | None = Field(default=None, max_length=255)
    default: bool = False
    paths: dict[str, str] = Field(default_factory=dict, description="site code -> path prefix")


class VolumeUpdate(_Body):
    name: str | None = Field(default=None, max_length=255)
    default: bool | None = None
    enabled: bool | None = None
    paths: dict[str, str | None] | None = Field(
        default=None, description="merged: site -> prefix sets it, site -> null removes it"
    )


class QueueCreate(_Body):
    code: str = Field(max_length=64)
    name: str | None = Field(default=None, max_length=255)
    priority: int = 500
    default: bool = False
    paused: bool = False


class QueueUpdate(_Body):
    name: str | None = Field(default=None, max_length=255)
    priority: int | None = None
    default: bool | None = None
    paused: bool | None = None


class ServerUpdate(_Body):
    status: str | None = Field(default=None, description="disabled or enabled")
    hostname: str | None = Field(default=None, max_length=255)
    bandwidth_limit: float | None = Field(
        default=None,
        ge=0,
        description="bytes/s the agent may send and receive (each); 0: back to its own config",
    )


class EnrollmentTokenCreate(_Body):
    site: str
    ttl_s: int = 3600


class EnrollmentTokenCreated(BaseModel):
    token: str = Field(description="one-time enrollment token, shown once")
    enrollment: EnrollmentToken


class AclCreate(_Body):
    user: str
    volume: str
    path: str | None = None
    read: bool = True
    write: bool = False


class SettingPut(_Body):
    scope: str
    target: str | None = None
    key: str
    value: str | int | float | bool


class JobUpdate(_Body):
    status: str | None = None
    name: str | None = Field(default=None, max_length=255)
    queue: str | None = None
    settings: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None


class SyncCreate(_Body):
    """A site sync (``reelsync sync``): paths relative to the volume (or absolute under one of its
    site paths), the site to sync with (default: the only one besides the main site)."""

    paths: list[str] = Field(max_length=10_000)
    site: str | None = None
    direction: str = "download"
    queue: str | None = None
    volume: str = "projects"


class TaskAppend(_Body):
    tasks: list[Any] | dict[str, Any] | str
    allow_duplicates: bool | None = None


class TaskEdit(_Body):
    id: str | None = None
    uri: str | None = None
    status: str | None = None
    priority: int | None = None
    metadata: dict[str, Any] | None = None
