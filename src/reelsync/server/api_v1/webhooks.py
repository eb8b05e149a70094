"""/webhooks (admins only): register URLs that receive signed job events (see
:mod:`reelsync.notify.webhook` for the signature a receiver checks). A URL whose host is
``localhost`` or a loopback, link-local or private address is refused at once unless the server
allows those (``webhook_allow_private``); names are checked again when each request is sent."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from reelsync.config import ServerConfig
from reelsync.errors import ValidationError
from reelsync.server.api_v1.schemas import ItemList, all_of
from reelsync.server.dependencies import CurrentActor, DatabaseDep, ServerConfigDep
from reelsync.services import webhooks
from reelsync.services.webhooks import WebhookRecord

__all__ = ["WebhookCreate", "WebhookUpdate", "router"]

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048)
    events: list[str] = Field(min_length=1, max_length=10)
    secret: str | None = Field(default=None, min_length=16, max_length=255)
    enabled: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, max_length=2048)
    events: list[str] | None = Field(default=None, min_length=1, max_length=10)
    enabled: bool | None = None
    rotate_secret: bool = False


@router.get("")
def list_webhooks(db: DatabaseDep, actor: CurrentActor) -> ItemList[WebhookRecord]:
    return all_of(webhooks.list_webhooks(db, actor))


def _check_target(url: str | None, config: ServerConfig) -> None:
    if url is None or config.webhook_allow_private:
        return
    host = (urlsplit(url).hostname or "").lower()
    try:
        private = not ipaddress.ip_address(host).is_global
    except ValueError:
        private = host == "localhost" or host.endswith(".localhost")
    if private:
        raise ValidationError(
            f"webhook {url} points at a loopback, link-local or private address",
            hint="an admin may allow those with the server setting webhook_allow_private",
        )


@router.post("", status_code=status.HTTP_201_CREATED)
def create_webhook(
    body: WebhookCreate, db: DatabaseDep, actor: CurrentActor, config: ServerConfigDep
) -> WebhookRecord:
    _check_target(body.url, config)
    return webhooks.create_webhook(
        db, actor, url=body.url, events=body.events, secret=body.secret, enabled=body.enabled
    )


@router.get("/{webhook_id}")
def get_webhook(webhook_id: str, db: DatabaseDep, actor: CurrentActor) -> WebhookRecord:
    return webhooks.get_webhook(db, actor, webhook_id)


@router.patch("/{webhook_id}")
def update_webhook(
    webhook_id: str,
    body: WebhookUpdate,
    db: DatabaseDep,
    actor: CurrentActor,
    config: ServerConfigDep,
) -> WebhookRecord:
    _check_target(body.url, config)
    return webhooks.update_webhook(
        db,
        actor,
        webhook_id,
        url=body.url,
        events=body.events,
        enabled=body.enabled,
        rotate_secret=body.rotate_secret,
    )


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: str, db: DatabaseDep, actor: CurrentActor) -> Response:
    webhooks.delete_webhook(db, actor, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
