"""The native REST API v1 (mounted at ``/api/v1`` by :func:`reelsync.server.app.create_app`): one
router per entity, each a thin translation from HTTP to :mod:`reelsync.services`."""

from __future__ import annotations

from fastapi import APIRouter

from reelsync.server.api_v1 import (
    acls,
    files,
    jobs,
    queues,
    root,
    servers,
    settings,
    sites,
    syncs,
    users,
    volumes,
    webhooks,
)

__all__ = ["router"]

router = APIRouter()
for _module in (
    root,
    users,
    sites,
    volumes,
    queues,
    servers,
    acls,
    settings,
    jobs,
    files,
    syncs,
    webhooks,
):
    router.include_router(_module.router)
