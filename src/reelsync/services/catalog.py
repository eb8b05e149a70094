"""The workspace's configuration as every request reads it, kept in memory while it is current.

Rules: what requests read again and again and an admin rarely changes -- the workspace code,
sites, volumes and their paths, queues, workspace and queue settings, grants, enabled webhooks,
and who owns which API key -- is read once per change of the catalog generation
(:mod:`reelsync.db.generation`: triggers change it in every transaction that changes any of it)
and kept per database URL in this process. Each use checks the generation with one indexed
read, except the read-only transactions of one request, which check it once
(:func:`request_scope`, opened by the server's intake: re-checked after ``TRUST_S`` for long
requests and after a write transaction, which reads it itself once, at its first use: a
transaction that changes the configuration and then reads the catalog reads what it read
before its change). Anything kept is frozen; nothing here writes.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelsync.db import models as m
from reelsync.db.database import READ_ONLY_OPTION
from reelsync.domain.ids import is_entity_id
from reelsync.domain.records import Actor, Queue, Role
from reelsync.errors import NotFoundError

__all__ = [
    "TRUST_S",
    "Catalog",
    "Grant",
    "KeyOwner",
    "QueueRef",
    "SiteRef",
    "VolumeRef",
    "WebhookRef",
    "current",
    "key_owner",
    "key_used",
    "queue_record",
    "request_scope",
]

TRUST_S = 1.0


@dataclass(frozen=True, slots=True)
class SiteRef:
    id: str
    code: str
    main: bool
    enabled: bool


@dataclass(frozen=True, slots=True)
class VolumeRef:
    id: str
    code: str
    default: bool
    enabled: bool


@dataclass(frozen=True, slots=True)
class QueueRef:
    id: str
    code: str
    name: str
    default: bool
    record: Queue  # the whole queue (kept with the rest: any change is seen)


@dataclass(frozen=True, slots=True)
class Grant:
    volume_id: str
    path: str
    read: bool
    write: bool


@dataclass(frozen=True, slots=True)
class WebhookRef:
    id: str
    events: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """An API key's row and its user's, as authentication needs them."""

    key_id: str
    key_hash: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    user_id: str
    email: str
    role: str
    enabled: bool

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, email=self.email, role=Role(self.role))


@dataclass(frozen=True, slots=True)
class Catalog:
    generation: int
    workspace_code: str | None
    sites: tuple[SiteRef, ...]
    volumes: tuple[VolumeRef, ...]
    prefixes: Mapping[tuple[str, str], str]  # (volume id, site id) -> prefix
    queues: tuple[QueueRef, ...]
    settings: Mapping[tuple[str, str, str], str]  # (scope, target id, key), workspace/queue
    grants: Mapping[str, tuple[Grant, ...]]  # user id -> grants
    webhooks: tuple[WebhookRef, ...]  # enabled ones
    emails: Mapping[str, str]  # user id -> e-mail

    def queue(self, ref: str) -> QueueRef:
        """By id, code or name (as ``services.queues.get_queue_row``)."""
        if is_entity_id(ref):
            for queue in self.queues:
                if queue.id == ref:
                    return queue
        key = ref.strip().lower()
        for queue in self.queues:
            if queue.code == key:
                return queue
        for queue in self.queues:
            if queue.name.lower() == key:
                return queue
        raise NotFoundError(f"no queue {ref!r}", hint="list them with: reelsync queue list")

    def default_queue(self) -> QueueRef:
        for queue in self.queues:
            if queue.default:
                return queue
        raise NotFoundError("the workspace has no default queue")

    def site_code(self, site_id: str) -> str | None:
        return next((s.code for s in self.sites if s.id == site_id), None)

    def queue_code(self, queue_id: str) -> str | None:
        return next((q.code for q in self.queues if q.id == queue_id), None)


@dataclass
class _Kept:
    catalog: Catalog | None = None
    owners: dict[str, KeyOwner | None] = field(default_factory=dict)  # key hash -> owner
    owners_generation: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Checked:
    """What one request has checked: the generation of ``place``, at ``at``."""

    place: str = ""
    generation: int | None = None
    at: float = 0.0


_SESSION_KEY = "reelsync_catalog_generation"
_KEPT: dict[str, _Kept] = {}
_KEPT_LOCK = threading.Lock()
_REQUEST: contextvars.ContextVar[_Checked | None] = contextvars.ContextVar(
    "reelsync_catalog_request", default=None
)


@contextmanager
def request_scope() -> Iterator[None]:
    """Everything called within (threads started through ``run_in_threadpool`` included) is
    one request: the generation is checked once, then trusted for ``TRUST_S``."""
    token = _REQUEST.set(_Checked())
    try:
        yield
    finally:
        _REQUEST.reset(token)


def _place(session: Session) -> str:
    return session.get_bind().engine.url.render_as_string(hide_password=True)


def _kept(place: str) -> _Kept:
    kept = _KEPT.get(place)
    if kept is None:
        with _KEPT_LOCK:
            kept = _KEPT.setdefault(place, _Kept())
    return kept


def _generation(session: Session, place: str) -> int:
    """The generation ``session`` sees. A read-only session inside a request trusts the
    request's last check (``TRUST_S``); a write transaction reads it once itself and makes the
    request check again afterwards."""
    checked = _REQUEST.get()
    now = time.monotonic()
    writer = not session.get_bind().get_execution_options().get(READ_ONLY_OPTION)
    if writer and _SESSION_KEY in session.info:
        return int(session.info[_SESSION_KEY])
    if (
        not writer
        and checked is not None
        and checked.generation is not None
        and checked.place == place
        and now - checked.at < TRUST_S
    ):
        return checked.generation
    value = session.scalar(select(m.CatalogGeneration.value).where(m.CatalogGeneration.id == 1))
    generation = int(value or 0)
    if writer:
        session.info[_SESSION_KEY] = generation
    if checked is not None:
        if writer:
            checked.generation = None
        else:
            checked.place, checked.generation, checked.at = place, generation, now
    return generation


def current(session: Session) -> Catalog:
    """The catalog as ``session`` sees it (read again only when it changed)."""
    place = _place(session)
    generation = _generation(session, place)
    kept = _kept(place)
    catalog = kept.catalog
    if catalog is None or catalog.generation != generation:
        catalog = _load(session, generation)
        with kept.lock:
            kept.catalog = catalog
    return catalog


def key_owner(session: Session, prefix: str, key_hash: str) -> KeyOwner | None:
    """The owner of the API key with ``key_hash`` (looked up by its ``prefix``), None when no
    such key exists; kept while the generation holds."""
    place = _place(session)
    generation = _generation(session, place)
    kept = _kept(place)
    with kept.lock:
        if kept.owners_generation != generation:
            kept.owners.clear()
            kept.owners_generation = generation
        if key_hash in kept.owners:
            return kept.owners[key_hash]
    owner = None
    for key, user in session.execute(
        select(m.ApiKey, m.User)
        .join(m.User, m.User.id == m.ApiKey.user_id)
        .where(m.ApiKey.prefix == prefix)
    ).all():
        if key.key_hash == key_hash:
            owner = KeyOwner(
                key_id=key.id,
                key_hash=key.key_hash,
                expires_at=key.expires_at,
                revoked_at=key.revoked_at,
                last_used_at=key.last_used_at,
                user_id=user.id,
                email=user.email,
                role=user.role,
                enabled=user.enabled,
            )
    with kept.lock:
        if kept.owners_generation == generation:
            if len(kept.owners) > 10_000:  # a flood of wrong keys never grows it without end
                kept.owners.clear()
            kept.owners[key_hash] = owner
    return owner


def key_used(session: Session, key_hash: str, when: datetime) -> None:
    """Remember that the kept owner of ``key_hash`` was just marked used at ``when``."""
    kept = _kept(_place(session))
    with kept.lock:
        owner = kept.owners.get(key_hash)
        if owner is not None:
            kept.owners[key_hash] = _replace_used(owner, when)


def _replace_used(owner: KeyOwner, when: datetime) -> KeyOwner:
    fields: dict[str, Any] = {name: getattr(owner, name) for name in KeyOwner.__slots__}
    fields["last_used_at"] = when
    return KeyOwner(**fields)


def queue_record(row: m.Queue) -> Queue:
    """A queue row as its record: the one conversion, for the catalog (which keeps every queue)
    and :mod:`reelsync.services.queues`."""
    return Queue(
        id=row.id,
        code=row.code,
        name=row.name,
        priority=row.priority,
        default=row.is_default,
        paused=row.paused,
        created=row.created,
        modified=row.modified,
    )


def _load(session: Session, generation: int) -> Catalog:
    grants: dict[str, list[Grant]] = {}
    for acl in session.scalars(select(m.Acl)):
        grants.setdefault(acl.user_id, []).append(
            Grant(acl.volume_id, acl.path, acl.read, acl.write)
        )
    return Catalog(
        generation=generation,
        workspace_code=session.scalar(select(m.Workspace.code).limit(1)),
        sites=tuple(
            SiteRef(r.id, r.code, r.main, r.enabled) for r in session.scalars(select(m.Site))
        ),
        volumes=tuple(
            VolumeRef(r.id, r.code, r.is_default, r.enabled)
            for r in session.scalars(select(m.Volume))
        ),
        prefixes={
            (p.volume_id, p.site_id): p.prefix for p in session.scalars(select(m.VolumePath))
        },
        queues=tuple(
            QueueRef(r.id, r.code, r.name, r.is_default, queue_record(r))
            for r in session.scalars(select(m.Queue).order_by(m.Queue.code))
        ),
        settings={
            (scope, target, key): value
            for scope, target, key, value in session.execute(
                select(m.Setting.scope, m.Setting.target_id, m.Setting.key, m.Setting.value).where(
                    m.Setting.scope.in_(["workspace", "queue"])
                )
            ).all()
        },
        grants={user: tuple(g) for user, g in grants.items()},
        webhooks=tuple(
            WebhookRef(w.id, tuple(w.events or ()))
            for w in session.scalars(select(m.Webhook).where(m.Webhook.enabled.is_(True)))
        ),
        emails=dict(session.execute(select(m.User.id, m.User.email)).all()),
    )
