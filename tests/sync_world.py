"""A small studio for the sync tests, built through the client Session like an admin would:
site london, volume projects (default, a path at hq and at london), queue proj001, an employee
operator with read+write on projects. Also an in-process control plane (the real app over httpx's
ASGI transport) for the tests that stop before any agent moves bytes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from reelsync.client import Session
from reelsync.config import ClientConfig, ServerConfig
from reelsync.db import Database
from reelsync.server.app import create_app

OPERATOR = "coordinator@acmepost.com"
INPROC_URL = "http://reelsync.test"


@dataclass
class World:
    root: Path
    operator_key: str

    def volume_root(self, site: str) -> Path:
        return self.root / site / "projects"


def build_world(admin: Session, root: Path, *, queue: bool = True) -> World:
    for site in ("hq", "london"):
        (root / site / "projects").mkdir(parents=True, exist_ok=True)
    admin.create("site", {"code": "london", "name": "London"})
    admin.create(
        "volume",
        {
            "code": "projects",
            "default": True,
            "paths": {s: str(root / s / "projects") for s in ("hq", "london")},
        },
    )
    if queue:
        admin.create("queue", {"code": "proj001", "priority": 700})
    admin.create("user", {"email": OPERATOR, "role": "employee"})
    admin.grant(OPERATOR, "projects", read=True, write=True)
    key = admin.create_apikey(OPERATOR, description="sync tests")["api_key"]
    return World(root=root, operator_key=str(key))


def make_tree(volume_root: Path, shot: str, frames: int = 5, size: int = 1000) -> list[Path]:
    """``<shot>/scans`` with EXR-like frames and a sidecar; returns the files made."""
    scans = volume_root / shot / "scans"
    scans.mkdir(parents=True, exist_ok=True)
    made = []
    name = shot.rsplit("/", 1)[-1]
    for i in range(frames):
        f = scans / f"{name}.{1001 + i:04d}.exr"
        f.write_bytes(bytes([i % 251]) * size)
        made.append(f)
    side = scans / f"{name}.json"
    side.write_text('{"colorspace": "ACES"}')
    made.append(side)
    return made


@contextmanager
def inproc_server(database: Database, tmp: Path) -> Iterator[tuple[httpx.ASGITransport, str]]:
    """The real control-plane app on ``database``, reachable through the returned transport."""
    config = ServerConfig(data_dir=tmp, database_url=str(database.url), tls=False)
    app = create_app(config, database)
    yield httpx.ASGITransport(app=app), INPROC_URL


def inproc_session(
    transport: httpx.ASGITransport, api_key: str, user: str = "", *, retry_s: float | None = None
) -> Session:
    """A client session over ``transport``; ``retry_s`` shortens the client's retries (20 s by
    default) where a test expects a retryable refusal to surface."""
    config = ClientConfig(url=INPROC_URL, api_user=user or None, api_key=api_key)
    if retry_s is not None:
        config = replace(config, retry_s=retry_s)
    return Session(config, transport=transport)
