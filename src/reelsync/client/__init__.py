"""reelsync.client: the Python client of the native REST API. One async core
(:class:`AsyncSession`, httpx) and a thin synchronous wrapper (:class:`Session`), both with the
accsyn verbs ``create``, ``find``, ``find_one``, ``get_entity``, ``update``, ``delete``."""

from __future__ import annotations

from reelsync.client.asyncsession import AsyncSession, Entity, parse_find
from reelsync.client.session import Session
from reelsync.client.transport import API_PREFIX, error_from_response

__all__ = ["API_PREFIX", "AsyncSession", "Entity", "Session", "error_from_response", "parse_find"]
