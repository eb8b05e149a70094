"""Entity ids: 24 lowercase hex characters for top-level entities (the accsyn client checks
``^[a-z0-9]{24}$``), UUID strings for tasks. Ids are random, so they leak no ordering or counts."""

from __future__ import annotations

import re
import secrets
import uuid

__all__ = ["is_entity_id", "new_entity_id", "new_task_id"]

_ID_RE = re.compile(r"^[a-f0-9]{24}$")


def new_entity_id() -> str:
    """A fresh 24-hex id for a user, site, volume, queue, job, server, ACL, ..."""
    return secrets.token_hex(12)


def new_task_id() -> str:
    return str(uuid.uuid4())


def is_entity_id(value: object) -> bool:
    """True when ``value`` is shaped like a top-level entity id (not that it exists)."""
    return isinstance(value, str) and bool(_ID_RE.match(value))
