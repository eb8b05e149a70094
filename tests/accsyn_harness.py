"""A real reelsync control plane (``reelsync server init`` + ``reelsync server run``, via ops's
tests/support fixtures) for driving with the official accsyn client. Until ``reelsync server run``
serves the accsyn routes, the server is this module's own uvicorn child process over the same
``create_app``.

Anything that binds the client's fixed dev port 127.0.0.1:8181 holds ``DEV_PORT_LOCK`` (an
flock) while it does, so tests of different helpers never fight over the port.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reelsync.db import Database
from reelsync.domain.records import Actor
from reelsync.pki import CertificateAuthority
from reelsync.services import apikeys, bootstrap, users
from reelsync.services.auth import authenticate
from support.postgres import fresh_database
from support.servers import free_port, running_server

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


_SERVE = r"""
import json, sys, uvicorn
from pathlib import Path
from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.server.accsyn import build_router
from reelsync.server.app import create_app
args = json.loads(sys.argv[1])
config = ServerConfig(data_dir=Path(args["data_dir"]), database_url=args["url"],
                      host="127.0.0.1", port=args["port"], tls=args["tls"])
app = create_app(config, Database(args["url"]), routers=[build_router()])
uvicorn.run(app, host="127.0.0.1", port=args["port"], log_level="warning",
            ssl_certfile=args.get("cert"), ssl_keyfile=args.get("key"),
            h11_max_incomplete_event_size=1024 * 1024)
"""


def _serves_accsyn() -> bool:
    """True once ``reelsync server run`` mounts the accsyn router (ops's control plane)."""
    if importlib.util.find_spec("reelsync.server.controlplane") is None:
        return False
    from reelsync.server import controlplane

    return "accsyn_router" in vars(controlplane) or "build_router" in vars(controlplane)


@contextlib.contextmanager
def _own_server(url: str, base: Path, port: int, *, tls: bool) -> Iterator[None]:
    args: dict[str, object] = {"data_dir": str(base), "url": url, "port": port, "tls": tls}
    if tls:
        pair = CertificateAuthority.create("acmepost").issue_server_cert()
        (base / "server.crt").write_bytes(pair.cert_pem)
        (base / "server.key").write_bytes(pair.key_pem)
        args["cert"], args["key"] = str(base / "server.crt"), str(base / "server.key")
    log = base / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, json.dumps(args)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Traceback" not in log.read_text(), log.read_text()


@contextlib.contextmanager
def live_workspace(
    database: str, base: Path, *, tls: bool = True, accsyn_dev_port: int | None = None
) -> Iterator[Workspace]:
    """A running server on a fresh SQLite file or PostgreSQL database, and its admin."""
    base.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if database == "postgres" else None
        if _serves_accsyn():
            server = stack.enter_context(
                running_server(base, database_url=url, tls=tls, accsyn_dev_port=accsyn_dev_port)
            )
            db = Database(server.database_url)
            stack.callback(db.dispose)
            admin = authenticate(db, server.api_key, email=server.admin)
            account = Account(server.admin, server.api_key, admin.user_id)
            yield Workspace(server.workspace, server.port, db, account, base)
            return
        url = url or f"sqlite:///{base / 'reelsync.db'}"
        db = Database(url)
        stack.callback(db.dispose)
        init = bootstrap.init_workspace(db, "acmepost", "admin@acmepost.com")
        port = accsyn_dev_port or free_port()
        stack.enter_context(_own_server(url, base, port, tls=tls and accsyn_dev_port is None))
        account = Account(init.admin.email, init.api_key, init.admin.id)
        yield Workspace("acmepost", port, db, account, base)
