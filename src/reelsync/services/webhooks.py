"""Webhooks: admins register URLs that receive signed JSON for job events.

Rules: only an admin lists, creates, changes or deletes webhooks. A URL is absolute ``http`` or
``https`` with a host. Events are ``job.submitted``, ``job.done``, ``job.failed`` (``done`` is
accepted for ``job.done``). The signing secret is generated when not given (32 random bytes, hex),
returned by create and by a rotation, and never listed. Delivery is :mod:`reelsync.notify`'s job.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.ids import new_entity_id
from reelsync.domain.records import Actor
from reelsync.errors import NotFoundError, ValidationError
from reelsync.services.auth import require_admin

__all__ = [
    "WEBHOOK_EVENTS",
    "WebhookRecord",
    "create_webhook",
    "delete_webhook",
    "get_webhook",
    "list_webhooks",
    "parse_events",
    "update_webhook",
]

WEBHOOK_EVENTS = ("job.submitted", "job.done", "job.failed")


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    id: str
    url: str
    events: tuple[str, ...]
    enabled: bool
    created: datetime
    modified: datetime
    secret: str | None = None  # only in the answer of create and of a secret rotation


def parse_events(events: object) -> tuple[str, ...]:
    """Normalise event names (``done`` or ``job.done``, list or comma text); refuse unknown."""
    if isinstance(events, str):
        events = [e for e in events.replace(",", " ").split() if e]
    hint = f"choose from {', '.join(WEBHOOK_EVENTS)}"
    if not isinstance(events, list | tuple) or not events:
        raise ValidationError("a webhook needs a list of events", hint=hint)
    out: list[str] = []
    for raw in events:
        name = str(raw).strip().lower()
        if not name.startswith("job."):
            name = f"job.{name}"
        if name not in WEBHOOK_EVENTS:
            raise ValidationError(f"unknown webhook event {raw!r}", hint=hint)
        if name not in out:
            out.append(name)
    return tuple(out)


def _url(value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(text) > 2048:
        raise ValidationError(f"a webhook URL must be an absolute http(s) URL, got {value!r}")
    return text


def _secret(value: object | None) -> str:
    if value is None:
        return secrets.token_hex(32)
    if not isinstance(value, str) or not 16 <= len(value) <= 255:
        raise ValidationError("a webhook secret must be a string of 16 to 255 characters")
    return value


def _record(row: m.Webhook, *, secret: str | None = None) -> WebhookRecord:
    return WebhookRecord(
        id=row.id,
        url=row.url,
        events=tuple(row.events or ()),
        enabled=row.enabled,
        created=row.created,
        modified=row.modified,
        secret=secret,
    )


def _row(session: Session, webhook_id: str) -> m.Webhook:
    row = session.get(m.Webhook, webhook_id) if isinstance(webhook_id, str) else None
    if row is None:
        raise NotFoundError(f"no webhook {webhook_id!r}")
    return row


def list_webhooks(db: Database, actor: Actor) -> list[WebhookRecord]:
    require_admin(actor, "list webhooks")
    with db.reader() as session:
        rows = session.scalars(select(m.Webhook).order_by(m.Webhook.created, m.Webhook.id))
        return [_record(r) for r in rows]


def get_webhook(db: Database, actor: Actor, webhook_id: str) -> WebhookRecord:
    require_admin(actor, "read webhooks")
    with db.reader() as session:
        return _record(_row(session, webhook_id))


def create_webhook(
    db: Database,
    actor: Actor,
    *,
    url: str,
    events: Sequence[str] | str,
    secret: str | None = None,
    enabled: bool = True,
) -> WebhookRecord:
    require_admin(actor, "create webhooks")
    clean_url, names, key = _url(url), parse_events(events), _secret(secret)
    now = utcnow()
    with db.session() as session:
        row = m.Webhook(
            id=new_entity_id(),
            url=clean_url,
            secret=key,
            events=list(names),
            enabled=bool(enabled),
            created=now,
            modified=now,
        )
        session.add(row)
        session.flush()
        return _record(row, secret=key)


def update_webhook(
    db: Database,
    actor: Actor,
    webhook_id: str,
    *,
    url: str | None = None,
    events: Sequence[str] | str | None = None,
    enabled: bool | None = None,
    rotate_secret: bool = False,
    secret: str | None = None,
) -> WebhookRecord:
    require_admin(actor, "change webhooks")
    clean_url = _url(url) if url is not None else None
    names = parse_events(events) if events is not None else None
    new_secret = _secret(secret) if (rotate_secret or secret is not None) else None
    with db.session() as session:
        row = _row(session, webhook_id)
        if clean_url is not None:
            row.url = clean_url
        if names is not None:
            row.events = list(names)
        if enabled is not None:
            row.enabled = bool(enabled)
        if new_secret is not None:
            row.secret = new_secret
        row.modified = utcnow()
        return _record(row, secret=new_secret)


def delete_webhook(db: Database, actor: Actor, webhook_id: str) -> None:
    require_admin(actor, "delete webhooks")
    with db.session() as session:
        session.delete(_row(session, webhook_id))
