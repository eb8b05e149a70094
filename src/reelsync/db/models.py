"""The relational schema of the control plane (SQLAlchemy 2 typed models).

Rules: one workspace per database; top-level ids are 24-hex strings, task ids UUID strings; codes
are unique and compared lower-cased (stored as typed, looked up through ``code_key``); "exactly one"
flags (main site, default volume, default queue) are guarded by partial unique indexes; every schema
change ships as an Alembic revision in ``reelsync/db/migrations/versions``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from reelsync.db.types import JSONType, UTCDateTime, utcnow

__all__ = [
    "LIVE_JOB",
    "Acl",
    "ApiKey",
    "AuditEvent",
    "Base",
    "CatalogGeneration",
    "EnrollmentToken",
    "FileOp",
    "Job",
    "Outbox",
    "Queue",
    "Server",
    "ServerVolume",
    "Setting",
    "Site",
    "Tally",
    "Task",
    "UiSession",
    "User",
    "Volume",
    "VolumePath",
    "Webhook",
    "Workspace",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(24)
TASK_ID = String(36)

#: The condition of a job not finished (done or aborted), as literal SQL: the partial index
#: ``ix_job_live`` has it as its WHERE, and a query serves from that index only when it says
#: the very same text (SQLite matches partial indexes by expression, never by bound value).
LIVE_JOB = "job.status NOT IN ('done', 'aborted')"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class _Stamped:
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    modified: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class _Noted:
    """An entity's notes (accsyn's descriptive fields): a description, free metadata, and who
    made it and last changed it (user ids; kept when the user is gone)."""

    description: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)
    creator_id: Mapped[str | None] = mapped_column(String(24))
    modifier_id: Mapped[str | None] = mapped_column(String(24))


class Workspace(Base):
    __tablename__ = "workspace"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    description: Mapped[str | None] = mapped_column(Text)


class User(_Noted, _Stamped, Base):
    __tablename__ = "user_account"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(255), default="")
    role: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class ApiKey(Base):
    __tablename__ = "api_key"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(255), default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Site(_Noted, _Stamped, Base):
    __tablename__ = "site"
    __table_args__ = (
        Index(
            "uq_site_one_main",
            "main",
            unique=True,
            sqlite_where=text("main"),
            postgresql_where=text("main"),
        ),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(255), default="")
    main: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Volume(_Noted, _Stamped, Base):
    __tablename__ = "volume"
    __table_args__ = (
        Index(
            "uq_volume_one_default",
            "is_default",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(255), default="")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    email: Mapped[str | None] = mapped_column(
        Text
    )  # more addresses for its job mail, comma-separated
    queue_id: Mapped[str | None] = mapped_column(String(24))  # accsyn's volume queue (informative)


class VolumePath(Base):
    """Where a volume lives at one site (the agents there serve it from this prefix)."""

    __tablename__ = "volume_path"
    volume_id: Mapped[str] = mapped_column(
        ForeignKey("volume.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[str] = mapped_column(
        ForeignKey("site.id", ondelete="CASCADE"), primary_key=True
    )
    prefix: Mapped[str] = mapped_column(String(1024))
    # accsyn's per-OS form ({"linux": ..., "windows": ..., "mac": ...}): an agent uses the prefix
    # for the OS it reports, ``prefix`` when it reports none listed
    os_prefixes: Mapped[dict[str, str] | None] = mapped_column(JSONType)


class Server(_Noted, _Stamped, Base):
    """An enrolled site agent."""

    __tablename__ = "server"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("site.id", ondelete="RESTRICT"), index=True)
    hostname: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="init")
    version: Mapped[str | None] = mapped_column(String(64))
    last_checkin: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cert_fingerprint: Mapped[str | None] = mapped_column(String(128), unique=True)
    cert_serial: Mapped[str | None] = mapped_column(String(64))
    secret_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    peer_address: Mapped[str | None] = mapped_column(String(255))
    peer_port: Mapped[int | None] = mapped_column(Integer)
    dialable: Mapped[bool] = mapped_column(Boolean, default=False)
    info: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ServerVolume(Base):
    """A volume an agent serves (explicit assignment; by default an agent serves every volume
    that has a path at its site)."""

    __tablename__ = "server_volume"
    server_id: Mapped[str] = mapped_column(
        ForeignKey("server.id", ondelete="CASCADE"), primary_key=True
    )
    volume_id: Mapped[str] = mapped_column(
        ForeignKey("volume.id", ondelete="CASCADE"), primary_key=True
    )


class EnrollmentToken(Base):
    __tablename__ = "enrollment_token"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    server_id: Mapped[str | None] = mapped_column(ForeignKey("server.id", ondelete="SET NULL"))
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )


class Queue(_Noted, _Stamped, Base):
    __tablename__ = "queue"
    __table_args__ = (
        Index(
            "uq_queue_one_default",
            "is_default",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(255))
    priority: Mapped[int] = mapped_column(Integer, default=500)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)


class Job(_Stamped, Base):
    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_status_queue", "status", "queue_id"),
        # lists, newest first, paged by key (created, id): all jobs, by status, by user, by
        # queue, and the live ones (a partial index: its size is the backlog, not the history)
        Index("ix_job_created", "created", "id"),
        Index("ix_job_status_created", "status", "created", "id"),
        Index("ix_job_user_created", "user_id", "created", "id"),
        Index("ix_job_queue_created", "queue_id", "created", "id"),
        Index(
            "ix_job_live",
            "created",
            "id",
            sqlite_where=text(LIVE_JOB.removeprefix("job.")),
            postgresql_where=text(LIVE_JOB.removeprefix("job.")),
        ),
        # find_one("Transfer WHERE name=...") is one lookup (names compare case-insensitively)
        Index("ix_job_name_lower", func.lower(text("name"))),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16), default="transfer")
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="RESTRICT"))
    queue_id: Mapped[str] = mapped_column(ForeignKey("queue.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(255))
    destination: Mapped[str] = mapped_column(String(255))
    source_site_id: Mapped[str] = mapped_column(ForeignKey("site.id", ondelete="RESTRICT"))
    destination_site_id: Mapped[str] = mapped_column(ForeignKey("site.id", ondelete="RESTRICT"))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    size: Mapped[int | None] = mapped_column(BigInteger)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    speed: Mapped[float] = mapped_column(Float, default=0.0)
    # scheduler: estimated seconds remaining, and the last speed sample (time, bytes_done then)
    etr: Mapped[int | None] = mapped_column(Integer)
    speed_sampled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    speed_sampled_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    task_count: Mapped[int] = mapped_column(Integer, default=0)
    next_uri: Mapped[int] = mapped_column(Integer, default=0)
    settings: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime())
    modifier_id: Mapped[str | None] = mapped_column(String(24))


class Submission(Base):
    """A client's idempotency key for a job submit or a task append: the same key from the same
    user gets the same job (an append: the same tasks, ``task_ids``) back instead of a second one
    (a retried POST after a dropped connection)."""

    __tablename__ = "submission"
    __table_args__ = (UniqueConstraint("user_id", "key"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    task_ids: Mapped[list[str] | None] = mapped_column(JSONType)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class UiSession(Base):
    """A web UI sign-in: the session cookie names it (signed). It lasts until ``expires_at`` or
    until sign-out sets ``revoked_at``, and only while the API key it signed in with is live."""

    __tablename__ = "ui_session"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    api_key_id: Mapped[str] = mapped_column(
        ForeignKey("api_key.id", ondelete="CASCADE"), index=True
    )
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Task(Base):
    """One file (or directory) to move. Inserted in bulk (COPY / executemany), never one ORM
    object per task."""

    __tablename__ = "task"
    __table_args__ = (
        UniqueConstraint("job_id", "uri"),
        Index("ix_task_status_job", "status", "job_id"),
        Index("ix_task_job_status", "job_id", "status"),
        Index(
            "ix_task_server_lease",
            "server_id",
            "lease_expires_at",
            sqlite_where=text("server_id IS NOT NULL"),
            postgresql_where=text("server_id IS NOT NULL"),
        ),
        # the scheduler's pick: a job's queued tasks by priority level, oldest first
        Index("ix_task_dispatch", "job_id", "status", "priority", "created"),
        Index(
            "ix_task_transfer",
            "transfer_id",
            sqlite_where=text("transfer_id IS NOT NULL"),
            postgresql_where=text("transfer_id IS NOT NULL"),
        ),
        # a job's tasks in uri order ("2" before "10"), paged by key: no sort of the whole job
        Index("ix_task_job_order", "job_id", func.length(text("uri")), "uri"),
        # the progress rule's "is any size still unknown?": a lookup, not a walk of the job
        Index(
            "ix_task_unsized",
            "job_id",
            sqlite_where=text("size IS NULL"),
            postgresql_where=text("size IS NULL"),
        ),
        # pruning finished tasks older than N days
        Index(
            "ix_task_finished",
            "finished",
            sqlite_where=text("finished IS NOT NULL"),
            postgresql_where=text("finished IS NOT NULL"),
        ),
    )
    id: Mapped[str] = mapped_column(TASK_ID, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    uri: Mapped[str] = mapped_column(String(255))
    source_volume_id: Mapped[str] = mapped_column(ForeignKey("volume.id", ondelete="RESTRICT"))
    source_path: Mapped[str] = mapped_column(Text)
    destination_volume_id: Mapped[str] = mapped_column(ForeignKey("volume.id", ondelete="RESTRICT"))
    destination_path: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    priority: Mapped[int] = mapped_column(Integer, default=500)
    status: Mapped[str] = mapped_column(String(16))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    # leases granted so far (scheduler): 1 for a file moved at the first go; a task leased twice
    # at once would show 2 (an audit figure, never reset)
    dispatches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    digest: Mapped[str | None] = mapped_column(String(128))
    # a folder task: how many files it held when it was last moved (None: one file)
    files: Mapped[int | None] = mapped_column(Integer)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    server_id: Mapped[str | None] = mapped_column(ForeignKey("server.id", ondelete="SET NULL"))
    # scheduler: the listening agent of the lease, and the transfer batch the task is part of
    peer_id: Mapped[str | None] = mapped_column(ForeignKey("server.id", ondelete="SET NULL"))
    transfer_id: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    settings: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    modified: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Tally(Base):
    """Signed changes to the running totals of jobs and tasks by queue, site pair and status,
    inserted by triggers (:mod:`reelsync.db.tally`) and folded now and then; ``/metrics`` sums
    them. No foreign keys: a total outlives what it counted."""

    __tablename__ = "tally"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(8))  # job | task
    queue_id: Mapped[str] = mapped_column(ID)
    source_site_id: Mapped[str] = mapped_column(ID)
    destination_site_id: Mapped[str] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)


class CatalogGeneration(Base):
    """One row (id 1) whose ``value`` triggers change with every change of the workspace's
    configuration (:mod:`reelsync.db.generation`)."""

    __tablename__ = "catalog_generation"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Acl(_Stamped, Base):
    __tablename__ = "acl"
    __table_args__ = (UniqueConstraint("user_id", "volume_id", "path"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    volume_id: Mapped[str] = mapped_column(ForeignKey("volume.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1024), default="")  # "" = the whole volume
    read: Mapped[bool] = mapped_column(Boolean, default=True)
    write: Mapped[bool] = mapped_column(Boolean, default=False)


class Setting(Base):
    """A string setting; ``target_id`` is "" for the workspace scope (so the key stays unique)."""

    __tablename__ = "setting"
    __table_args__ = (UniqueConstraint("scope", "target_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(36), default="")
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text)


class FileOp(Base):
    """A file operation for an agent that long-polls another control-plane process (replicas):
    the asking process writes it, the agent's process hands it out (``taken_at``) and writes the
    agent's ``answer``; the asking process reads the answer and deletes the row."""

    __tablename__ = "fileop"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    server_id: Mapped[str] = mapped_column(ForeignKey("server.id", ondelete="CASCADE"), index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class AuditEvent(Base):
    """Something done that the entities no longer show (a user deleted, their jobs aborted)."""

    __tablename__ = "audit_event"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[str | None] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(320))  # e-mail, kept when the user is gone
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(36))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Outbox(Base):
    """Mail and webhook deliveries, written in the transaction that caused them."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # mail | webhook
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Webhook(_Stamped, Base):
    __tablename__ = "webhook"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(255))
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
