"""The synchronous client: a thin wrapper that runs :class:`AsyncSession` on a private event loop
in a daemon thread. Rules: every method is one line that forwards to the async core, so the two
can never drift; it works from plain scripts and from code that already runs an event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

import httpx

from reelsync.client.asyncsession import AsyncSession, Entity
from reelsync.config import ClientConfig, client_config_from_environment

__all__ = ["Session"]

T = TypeVar("T")


class Session:
    """A blocking session with the accsyn verbs. Without ``config`` the settings come from the
    arguments, the ``REELSYNC_*``/``ACCSYN_*`` variables and the credentials file."""

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        url: str | None = None,
        api_user: str | None = None,
        api_key: str | None = None,
        ca_file: str | None = None,
        insecure: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if config is None:
            config = client_config_from_environment(
                url=url, api_user=api_user, api_key=api_key, ca_file=ca_file, insecure=insecure
            )
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="reelsync-session", daemon=True
        )
        self._thread.start()
        self._core = self._run(self._make_core(config, transport))

    @staticmethod
    async def _make_core(
        config: ClientConfig, transport: httpx.AsyncBaseTransport | None
    ) -> AsyncSession:
        return AsyncSession(config, transport=transport)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._start(coro).result()

    def _start(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        if not self._thread.is_alive():
            coro.close()
            raise RuntimeError("this Session is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def __repr__(self) -> str:
        return f"Session(url={self.config.url!r}, api_user={self.config.api_user!r})"

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._run(self._core.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def core(self) -> AsyncSession:
        """The async session behind this one."""
        return self._core

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._run(self._core.request(method, path, **kwargs))

    def start(self, method: str, path: str, **kwargs: Any) -> Future[Any]:
        """Send :meth:`request` without waiting for its answer (the future's result); meanwhile
        other calls go on their own connection. Cancelling the future drops the request."""
        return self._start(self._core.request(method, path, **kwargs))

    def create(self, entitytype: str, data: Any, entityid: str | None = None) -> Any:
        return self._run(self._core.create(entitytype, data, entityid))

    def find(self, query: str, **filters: Any) -> list[Entity]:
        return self._run(self._core.find(query, **filters))

    def find_one(self, query: str, **filters: Any) -> Entity | None:
        return self._run(self._core.find_one(query, **filters))

    def get_entity(self, entitytype: str, ref: str) -> Entity:
        return self._run(self._core.get_entity(entitytype, ref))

    def update(self, entitytype: str, ref: str, data: Any) -> Any:
        return self._run(self._core.update(entitytype, ref, data))

    def delete(self, entitytype: str, ref: str) -> None:
        self._run(self._core.delete(entitytype, ref))

    def health(self) -> Entity:
        return self._run(self._core.health())

    def me(self) -> Entity:
        return self._run(self._core.me())

    def workspace(self) -> Entity:
        return self._run(self._core.workspace())

    def create_apikey(self, user: str, **kwargs: Any) -> Entity:
        return self._run(self._core.create_apikey(user, **kwargs))

    def list_apikeys(self, user: str) -> list[Entity]:
        return self._run(self._core.list_apikeys(user))

    def revoke_apikey(self, user: str, key_id: str) -> None:
        self._run(self._core.revoke_apikey(user, key_id))

    def preferences(self, user: str = "me") -> Entity:
        return self._run(self._core.preferences(user))

    def set_email_opt_out(self, opt_out: bool = True, user: str = "me") -> Entity:
        return self._run(self._core.set_email_opt_out(opt_out, user))

    def grant(self, user: str, volume: str, **kwargs: Any) -> Entity:
        return self._run(self._core.grant(user, volume, **kwargs))

    def acls(self, **kwargs: Any) -> list[Entity]:
        return self._run(self._core.acls(**kwargs))

    def revoke_acl(self, acl_id: str) -> None:
        self._run(self._core.revoke_acl(acl_id))

    def add_tasks(self, job_id: str, tasks: Sequence[Any], **kwargs: Any) -> list[Entity]:
        """Append tasks to a job (see :meth:`AsyncSession.add_tasks`; retried appends are safe)."""
        return self._run(self._core.add_tasks(job_id, tasks, **kwargs))

    def submit_job(self, job: Mapping[str, Any], *, key: str | None = None) -> Entity:
        """Submit a job (see :meth:`AsyncSession.submit_job`; retried submits are safe)."""
        return self._run(self._core.submit_job(job, key=key))

    def tasks(self, job_id: str, **kwargs: Any) -> list[Entity]:
        return self._run(self._core.tasks(job_id, **kwargs))
