"""The async client core: the accsyn-like verbs (create, find, find_one, get_entity, update,
delete) over the native REST API, and typed helpers the CLI needs. Rules: every call goes through
one :class:`~reelsync.client.transport.Transport`; ``find`` takes an entity type with optional
``key=value`` filters (``"job"``, ``"job where status=running and queue=proj001"`` or keyword
filters), which become the list endpoint's query parameters - the full accsyn query language is
the accsyn adapter's job, not this client's."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from reelsync.client.entities import collection_path, item_path
from reelsync.client.transport import Transport
from reelsync.config import ClientConfig
from reelsync.errors import QuerySyntaxError, ValidationError

__all__ = ["AsyncSession", "Entity", "parse_find"]

Entity = dict[str, Any]

_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*=\s*(.*?)\s*$")


def parse_find(query: str) -> tuple[str, dict[str, str]]:
    """``"job where status=running and queue=proj001"`` -> ("job", {"status": ..., ...})."""
    parts = re.split(r"(?i)\s+where\s+", query.strip(), maxsplit=1)
    head, tail = parts[0], parts[1] if len(parts) > 1 else ""
    filters: dict[str, str] = {}
    if tail:
        for cond in re.split(r"(?i)\s+and\s+", tail):
            m = _CONDITION.match(cond)
            if not m:
                raise QuerySyntaxError(
                    f"cannot read the condition {cond.strip()!r} (use key=value)"
                )
            filters[m.group(1)] = m.group(2).strip("'\"")
    if not head or " " in head:
        raise QuerySyntaxError(f"cannot read the query {query!r} (use: TYPE [where key=value ...])")
    return head.lower(), filters


def _items(body: Any) -> list[Entity]:
    if isinstance(body, list):
        return body
    if isinstance(body, Mapping):
        for key in ("items", "result", "data"):
            if isinstance(body.get(key), list):
                return list(body[key])
    raise ValidationError("the server answered a list request with something that is not a list")


def _matches(row: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """Client-side check of ``key=value`` filters on fields the rows carry, so a filter the
    server does not implement narrows the result instead of being silently ignored. A filter
    matches a field or its ``_id`` twin (``user`` is an e-mail, ``user_id`` an id)."""
    for key, value in filters.items():
        if key in ("limit", "offset") or (key not in row and f"{key}_id" not in row):
            continue
        want = str(value).lower()
        have = {str(row.get(key)).lower(), str(row.get(f"{key}_id")).lower()}
        if isinstance(row.get(key), bool):
            have.add("true" if row[key] else "false")
        if want not in have:
            return False
    return True


class AsyncSession:
    """One connection to a reelsync control plane (async). Use ``async with``."""

    def __init__(
        self, config: ClientConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self._t = Transport(config, transport=transport)

    def __repr__(self) -> str:
        return f"AsyncSession(url={self.config.url!r}, api_user={self.config.api_user!r})"

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._t.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        first: httpx.Response | None = None,
    ) -> Any:
        """A raw call to ``/api/v1{path}`` (a POST with an ``Idempotency-Key`` header is retried as
        a GET is). ``first``: the answer to this request sent already, as its first attempt
        (:class:`~reelsync.client.early.EarlyRequest`)."""
        return await self._t.request(
            method, path, json_body=json_body, params=params, auth=auth, headers=headers,
            first=first,
        )  # fmt: skip

    # -- the accsyn-like verbs ---------------------------------------------------------------------

    async def create(self, entitytype: str, data: Any, entityid: str | None = None) -> Any:
        """Create an entity; for ``task``, ``entityid`` is the job and ``data`` the task list
        (or ``{"tasks": [...], "allow_duplicates": ...}``), appended as :meth:`add_tasks` does."""
        if entitytype.strip().lower() == "task" and entityid is not None:
            body = data if isinstance(data, Mapping) else {"tasks": data}
            return await self._append(entityid, dict(body), None)
        return await self.request("POST", collection_path(entitytype, entityid), json_body=data)

    async def add_tasks(
        self,
        job_id: str,
        tasks: Sequence[Any],
        *,
        allow_duplicates: bool | None = None,
        key: str | None = None,
    ) -> list[Entity]:
        """Append ``tasks`` to a job; the tasks added or re-queued. ``key`` (default: a fresh one)
        makes a retried append return what the first attempt appended instead of appending
        again."""
        body: dict[str, Any] = {"tasks": list(tasks)}
        if allow_duplicates is not None:
            body["allow_duplicates"] = allow_duplicates
        return _items(await self._append(job_id, body, key))

    async def _append(self, job_id: str, body: dict[str, Any], key: str | None) -> Any:
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        path = collection_path("task", job_id)
        return await self._t.request("POST", path, json_body=body, headers=headers)

    async def find(
        self, query: str, *, limit: int | None = None, offset: int | None = None, **filters: Any
    ) -> list[Entity]:
        """Entities of a type matching ``key=value`` filters; tasks need ``job=<id>``."""
        entitytype, parsed = parse_find(query)
        params: dict[str, Any] = {**parsed, **{k: v for k, v in filters.items() if v is not None}}
        parent = params.pop("job", None) if entitytype == "task" else None
        if limit is not None:
            params["limit"] = limit
        if offset is not None:
            params["offset"] = offset
        for key, value in params.items():
            if isinstance(value, bool):
                params[key] = "true" if value else "false"
        body = await self.request("GET", collection_path(entitytype, parent), params=params or None)
        return [row for row in _items(body) if _matches(row, params)]

    async def find_one(self, query: str, **filters: Any) -> Entity | None:
        found = await self.find(query, **filters)
        return found[0] if found else None

    async def get_entity(self, entitytype: str, ref: str) -> Entity:
        """One entity by id or code (users: id or e-mail); NotFoundError when there is none."""
        body = await self.request("GET", item_path(entitytype, ref))
        return dict(body)

    async def update(self, entitytype: str, ref: str, data: Any) -> Any:
        """Change an entity; for ``task``, ``ref`` is the job and ``data`` a list of changes."""
        if entitytype.strip().lower() == "task":
            return await self.request("PATCH", collection_path("task", ref), json_body=data)
        return await self.request("PATCH", item_path(entitytype, ref), json_body=data)

    async def delete(self, entitytype: str, ref: str) -> None:
        await self.request("DELETE", item_path(entitytype, ref))

    # -- typed helpers -----------------------------------------------------------------------------

    async def health(self) -> Entity:
        return dict(await self.request("GET", "/health", auth=False))

    async def me(self) -> Entity:
        return dict(await self.request("GET", "/me"))

    async def workspace(self) -> Entity:
        return dict(await self.request("GET", "/workspace"))

    async def create_apikey(
        self, user: str, *, description: str | None = None, expires_at: str | None = None
    ) -> Entity:
        """A new API key for ``user``; the plaintext key is in ``["api_key"]``, shown once."""
        body: dict[str, Any] = {}
        if description:
            body["description"] = description
        if expires_at:
            body["expires_at"] = expires_at
        return dict(await self.request("POST", f"/users/{user}/apikeys", json_body=body))

    async def list_apikeys(self, user: str) -> list[Entity]:
        return _items(await self.request("GET", f"/users/{user}/apikeys"))

    async def revoke_apikey(self, user: str, key_id: str) -> None:
        await self.request("DELETE", f"/users/{user}/apikeys/{key_id}")

    async def preferences(self, user: str = "me") -> Entity:
        """``user``'s preferences (``me``: yours), e.g. ``{"email_opt_out": false, ...}``."""
        return dict(await self.request("GET", f"/users/{user}/preferences"))

    async def set_email_opt_out(self, opt_out: bool = True, user: str = "me") -> Entity:
        """Stop (``opt_out``) or restart job e-mail to ``user`` (``me``: yourself; another
        user's only as an admin); their preferences after the change."""
        body = {"email_opt_out": bool(opt_out)}
        return dict(await self.request("PATCH", f"/users/{user}/preferences", json_body=body))

    async def grant(
        self, user: str, volume: str, *, path: str = "", read: bool = True, write: bool = False
    ) -> Entity:
        body: dict[str, Any] = {"user": user, "volume": volume, "read": read, "write": write}
        if path:
            body["path"] = path
        return dict(await self.request("POST", "/acls", json_body=body))

    async def acls(self, *, user: str | None = None, volume: str | None = None) -> list[Entity]:
        return _items(await self.request("GET", "/acls", params={"user": user, "volume": volume}))

    async def revoke_acl(self, acl_id: str) -> None:
        await self.request("DELETE", f"/acls/{acl_id}")

    async def submit_job(self, job: Mapping[str, Any], *, key: str | None = None) -> Entity:
        """Submit a job; ``key`` (default: a fresh one) makes a retried submit return the job
        the first attempt made instead of making a second."""
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        return dict(await self._t.request("POST", "/jobs", json_body=dict(job), headers=headers))

    async def tasks(
        self, job_id: str, *, status: str | None = None, limit: int | None = None
    ) -> list[Entity]:
        return _items(
            await self.request(
                "GET", f"/jobs/{job_id}/tasks", params={"status": status, "limit": limit}
            )
        )
