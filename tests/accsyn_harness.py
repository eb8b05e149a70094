"""A real reelsync control plane in a subprocess, for driving with the official accsyn client.

The server runs uvicorn on the app of ``reelsync.server.app.create_app`` over HTTPS (a
certificate from a throw-away workspace CA) on a free port, or plain HTTP on 127.0.0.1:8181 for
the client's dev mode. Anything that binds port 8181 holds ``DEV_PORT_LOCK`` (an flock) while it
does, so tests of different helpers never fight over the port.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from reelsync.db import Database
from reelsync.pki import CertificateAuthority
from reelsync.services import apikeys, bootstrap, users

WORKSPACE = "acmepost"
ADMIN = "admin@acmepost.com"
DEV_PORT = 8181
DEV_PORT_LOCK = Path("/tmp/reelsync-port-8181.lock")
PG_ADMIN_URL = os.environ.get("REELSYNC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

_SERVE = r"""
import json, sys, uvicorn
from pathlib import Path
from reelsync.config import ServerConfig
args = json.loads(sys.argv[1])
config = ServerConfig(data_dir=Path(args["data_dir"]), database_url=args["url"],
                      host="127.0.0.1", port=args["port"], tls=args["tls"])
try:
    from reelsync.server.app import create_app
    app = create_app(config)
except ImportError:
    from fastapi import FastAPI
    from reelsync.db import Database
    from reelsync.server.accsyn import build_router
    db = Database(args["url"])
    app = FastAPI()
    app.include_router(build_router(lambda request: db))
uvicorn.run(app, host="127.0.0.1", port=args["port"], log_level="warning",
            ssl_certfile=args.get("cert"), ssl_keyfile=args.get("key"),
            h11_max_incomplete_event_size=1024 * 1024)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def dev_port_lock() -> Iterator[None]:
    with DEV_PORT_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def database_url(kind: str, tmp: Path) -> Iterator[str]:
    """A fresh SQLite file or a fresh PostgreSQL database, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'reelsync.db'}"
        return
    name = f"accsyn_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Account:
    email: str
    api_key: str
    id: str


@dataclass
class Workspace:
    url: str
    db: Database
    admin: Account
    tmp: Path

    def add_user(self, email: str, role: str) -> Account:
        """A user and an API key, made through the services (as an admin would)."""
        actor = self.actor()
        user = users.create_user(self.db, actor, email=email, role=role)
        _, plain = apikeys.create_api_key(self.db, actor, user.id)
        return Account(email, plain, user.id)

    def actor(self):  # type: ignore[no-untyped-def]
        from reelsync.services.auth import authenticate

        return authenticate(self.db, self.admin.api_key, email=self.admin.email)


def init_workspace(url: str, tmp: Path) -> Workspace:
    db = Database(url)
    result = bootstrap.init_workspace(db, WORKSPACE, ADMIN)
    return Workspace(url, db, Account(ADMIN, result.api_key, result.admin.id), tmp)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not start: {log.read_text()}")


@contextlib.contextmanager
def run_server(ws: Workspace, *, port: int, tls: bool) -> Iterator[int]:
    """Serve ``ws`` on ``port`` (HTTPS with a self-signed workspace cert when ``tls``)."""
    args: dict[str, object] = {"data_dir": str(ws.tmp), "url": ws.url, "port": port, "tls": tls}
    if tls:
        tls_dir = ws.tmp / "tls"
        tls_dir.mkdir(exist_ok=True)
        pair = CertificateAuthority.create(WORKSPACE).issue_server_cert()
        (tls_dir / "server.crt").write_bytes(pair.cert_pem)
        (tls_dir / "server.key").write_bytes(pair.key_pem)
        args["cert"], args["key"] = str(tls_dir / "server.crt"), str(tls_dir / "server.key")
    log = ws.tmp / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, json.dumps(args)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_ready(proc, port, log)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
