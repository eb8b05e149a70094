"""reelsync.client: the Python client of the native REST API. One async core
(:class:`AsyncSession`, httpx) and a thin synchronous wrapper (:class:`Session`), both with the
accsyn verbs ``create``, ``find``, ``find_one``, ``get_entity``, ``update``, ``delete``. Each name
loads its module when first used, so :mod:`reelsync.client.early` loads without asyncio."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reelsync.client.asyncsession import AsyncSession, Entity, parse_find
    from reelsync.client.session import Session
    from reelsync.client.transport import API_PREFIX, error_from_response

__all__ = ["API_PREFIX", "AsyncSession", "Entity", "Session", "error_from_response", "parse_find"]

_HOME = {
    "AsyncSession": "asyncsession",
    "Entity": "asyncsession",
    "parse_find": "asyncsession",
    "Session": "session",
    "API_PREFIX": "transport",
    "error_from_response": "transport",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
