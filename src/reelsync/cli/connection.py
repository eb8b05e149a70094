"""The CLI's link to the control plane: the global options (``--url``, ``--ca-file``,
``--insecure``) plus the environment and the credentials file, resolved once into a ClientConfig
when the first command needs it, and one Session per invocation."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from reelsync.config import ClientConfig, load_client_config

if TYPE_CHECKING:  # the client (httpx) loads when a command first needs a session
    import httpx

    from reelsync.client import Session

__all__ = ["Connection", "pass_session", "session_of"]


@dataclass(slots=True)
class Connection:
    """What the root group learned from its options; builds the Session lazily."""

    url: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    transport: httpx.AsyncBaseTransport | None = None  # tests put a fake server here
    _config: ClientConfig | None = None
    _session: Session | None = field(default=None, repr=False)

    def config(self) -> ClientConfig:
        if self._config is None:
            self._config = load_client_config(
                os.environ, url=self.url, ca_file=self.ca_file, insecure=self.insecure
            )
        return self._config

    def session(self) -> Session:
        if self._session is None:
            from reelsync.client import Session

            self._session = Session(self.config(), transport=self.transport)
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def session_of(ctx: click.Context) -> Session:
    conn = ctx.find_object(Connection)
    if conn is None:  # a sub-command invoked without the root group (tests)
        conn = ctx.ensure_object(Connection)
    ctx.call_on_close(conn.close)
    return conn.session()


def pass_session(fn: Any) -> Any:
    """Decorator: call ``fn(session, ...)`` with the invocation's Session."""

    @click.pass_context
    def wrapper(ctx: click.Context, /, *args: Any, **kwargs: Any) -> Any:
        return fn(session_of(ctx), *args, **kwargs)

    return functools.update_wrapper(wrapper, fn)
