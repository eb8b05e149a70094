"""The accsyn v3 wire adapter: the official ``accsyn-python-api`` client runs unchanged against
reelsync. It only translates: every rule lives in :mod:`reelsync.services`."""

from __future__ import annotations

from reelsync.server.accsyn.call import Backend
from reelsync.server.accsyn.router import LOOKUP_PATH, build_router

__all__ = ["LOOKUP_PATH", "Backend", "build_router"]
