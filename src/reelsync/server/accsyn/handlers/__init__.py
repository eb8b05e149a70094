"""The handlers of every accsyn event, one module per entity family; :func:`register` loads them
(each registers its routes in :mod:`reelsync.server.accsyn.dispatch` when imported)."""

from __future__ import annotations

import importlib

__all__ = ["register"]

_MODULES = (
    "acls",
    "clients",
    "files",
    "jobs",
    "meta",
    "queues",
    "reports",
    "settings",
    "shares",
    "sites",
    "tasks",
    "users",
)


def register() -> None:
    for name in _MODULES:
        importlib.import_module(f"{__name__}.{name}")
