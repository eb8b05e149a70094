"""A real reelsync control plane (``reelsync server init`` + ``reelsync server run``, via ops's
tests/support fixtures) for driving with the official accsyn client.

Anything that binds the client's fixed dev port 127.0.0.1:8181 holds ``DEV_PORT_LOCK`` (an
flock) while it does, so tests of different helpers never fight over the port.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reelsync.db import Database
from reelsync.domain.records import Actor
from reelsync.services import apikeys, users
from reelsync.services.auth import authenticate
from support.postgres import fresh_database
from support.servers import running_server

DEV_PORT = 8181
DEV_PORT_LOCK = Path("/tmp/reelsync-port-8181.lock")


@contextlib.contextmanager
def dev_port_lock() -> Iterator[None]:
    with DEV_PORT_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Account:
    email: str
    api_key: str
    id: str


@dataclass
class Workspace:
    """A running server, its database (opened by the test too) and its admin."""

    code: str
    port: int
    db: Database
    admin: Account
    tmp: Path

    def actor(self) -> Actor:
        return authenticate(self.db, self.admin.api_key, email=self.admin.email)

    def add_user(self, email: str, role: str) -> Account:
        """A user and an API key, made through the services (as an admin would)."""
        actor = self.actor()
        user = users.create_user(self.db, actor, email=email, role=role)
        _, plain = apikeys.create_api_key(self.db, actor, user.id)
        return Account(email, plain, user.id)


@contextlib.contextmanager
def live_workspace(
    database: str, base: Path, *, tls: bool = True, accsyn_dev_port: int | None = None
) -> Iterator[Workspace]:
    """``reelsync server run`` on a fresh SQLite file or PostgreSQL database, and its admin."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if database == "postgres" else None
        server = stack.enter_context(
            running_server(base, database_url=url, tls=tls, accsyn_dev_port=accsyn_dev_port)
        )
        db = Database(server.database_url)
        stack.callback(db.dispose)
        admin = authenticate(db, server.api_key, email=server.admin)
        account = Account(server.admin, server.api_key, admin.user_id)
        yield Workspace(server.workspace, server.port, db, account, base)
