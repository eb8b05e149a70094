"""Entity ids: 24 lowercase hex characters for top-level entities (the accsyn client checks
``^[a-z0-9]{24}$``), UUID strings for tasks. Ids are random, so they leak no ordering or counts."""

from __future__ import annotations

import re
import secrets
import uuid

__all__ = ["is_entity_id", "new_entity_id", "new_task_id", "new_task_ids"]

_ID_RE = re.compile(r"^[a-f0-9]{24}$")


def new_entity_id() -> str:
    """A fresh 24-hex id for a user, site, volume, queue, job, server, ACL, ..."""
    return secrets.token_hex(12)


def new_task_id() -> str:
    return str(uuid.uuid4())


def new_task_ids(count: int) -> list[str]:
    """``count`` fresh task ids at once (random UUIDs, one system call for all)."""
    pool = secrets.token_bytes(16 * count)
    return [str(uuid.UUID(bytes=pool[i : i + 16], version=4)) for i in range(0, 16 * count, 16)]


def is_entity_id(value: object) -> bool:
    """True when ``value`` is shaped like a top-level entity id (not that it exists)."""
    return isinstance(value, str) and bool(_ID_RE.match(value))
