"""``workspace/file`` with a FileOperator plugged in: the adapter resolves accsyn paths, confines
them, checks the caller's ACL and hands the operation to the operator (the agent part implements
it for real). A real uvicorn server in a thread; the official client over ACCSYN_PROXY (plain
HTTP)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from accsyn_api.session import AccsynException, Session

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.domain.fileops import FileOp, FileRequest
from reelsync.errors import ValidationError
from reelsync.server.accsyn import build_router
from reelsync.server.app import create_app
from reelsync.services import acls, apikeys, bootstrap, sites, users, volumes
from reelsync.services.auth import authenticate
from support.servers import free_port


class RecordingOperator:
    """An in-memory FileOperator: answers in the accsyn shapes and remembers every request."""

    def __init__(self) -> None:
        self.requests: list[FileRequest] = []

    async def run(self, request: FileRequest) -> Any:
        self.requests.append(request)
        if request.op is FileOp.LS:
            return [
                {"type": 1, "filename": "a.0001.exr", "size": 3},
                {"type": 0, "filename": "sub"},
            ]
        if request.op is FileOp.GETSIZE:
            return 42
        return True


class RefusingHook:
    """A pre-submit hook (the admin's command) that refuses jobs named 'forbidden ...'."""

    def __call__(self, db: Database, actor: Any, payload: Any) -> None:
        if str(payload.get("name", "")).startswith("forbidden"):
            raise ValidationError("the pre-submit hook refused the job: no forbidden jobs")


@dataclass
class Files:
    operator: RecordingOperator
    admin: Session
    reader: Session


def _session(port: int, email: str, key: str, tmp: Path) -> Session:
    return Session(
        workspace="acmepost", username=email, api_key=key, path_envfile=str(tmp / "none.env")
    )


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Files]:
    db = Database(f"sqlite:///{tmp_path / 'reelsync.db'}")
    init = bootstrap.init_workspace(db, "acmepost", "admin@acmepost.com")
    admin = authenticate(db, init.api_key, email="admin@acmepost.com")
    sites.create_site(db, admin, code="london")
    volumes.create_volume(
        db, admin, code="projects", paths={"hq": "/mnt/projects", "london": "/data/p"}
    )
    volumes.create_volume(db, admin, code="archive", paths={"hq": "/mnt/archive"})
    reader = users.create_user(db, admin, email="reader@acmepost.com", role="employee")
    _, reader_key = apikeys.create_api_key(db, admin, reader.id)
    acls.grant(db, admin, user=reader.id, volume="projects", path="proj001", read=True)

    operator = RecordingOperator()
    port = free_port()
    config = ServerConfig(data_dir=tmp_path, database_url=db.url, port=port, tls=False)
    app = create_app(config, db, routers=[build_router(file_operator=operator)])
    app.state.submit_hook = RefusingHook()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    saved = {k: os.environ.pop(k) for k in ("AS_DEV", "ACCSYN_PROXY") if k in os.environ}
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        os.environ["ACCSYN_PROXY"] = f"127.0.0.1:{port}"  # plain HTTP, no code change
        yield Files(
            operator,
            _session(port, "admin@acmepost.com", init.api_key, tmp_path),
            _session(port, "reader@acmepost.com", reader_key, tmp_path),
        )
    finally:
        os.environ.pop("ACCSYN_PROXY", None)
        os.environ.update(saved)
        server.should_exit = True
        thread.join(10)
        db.dispose()


def test_paths_are_resolved_and_handed_to_the_operator(files: Files) -> None:
    listing = files.admin.ls("share=projects/proj001/sc0010", recursive=True, getsize=True)
    assert listing[0]["filename"] == "a.0001.exr"
    request = files.operator.requests[-1]
    assert (request.op, request.volume_code, request.path) == (
        FileOp.LS,
        "projects",
        "proj001/sc0010",
    )
    assert request.recursive
    assert request.getsize
    assert files.admin.getsize("volume=archive/old", include="*.exr") == 42
    assert files.operator.requests[-1].include == ("*.exr",)
    assert files.admin.exists("proj001/x.exr") is True  # relative: the default volume
    assert files.operator.requests[-1].volume_code == "projects"
    assert files.admin.mkdir("site=london:share=projects/proj002") is True
    assert files.operator.requests[-1].site_code == "london"
    assert files.admin.rename("share=projects/a", "share=projects/b") is True
    assert files.operator.requests[-1].path_to == "b"
    assert files.admin.mv("share=projects/a", "share=projects/x/a") is True
    assert files.operator.requests[-1].op is FileOp.MOVE
    assert files.admin.delete("share=projects/tmp", force=True) is True
    assert files.operator.requests[-1].force
    both = files.admin.exists(["share=projects/a", "share=archive/b"])
    assert both == [
        {"path": "share=projects/a", "result": True},
        {"path": "share=archive/b", "result": True},
    ]


def test_access_and_confinement_are_checked_before_the_operator(files: Files) -> None:
    assert files.reader.exists("share=projects/proj001/sc0010/a.exr") is True
    before = len(files.operator.requests)
    with pytest.raises(AccsynException, match="no write access to volume=projects/proj001/new"):
        files.reader.mkdir("share=projects/proj001/new")
    with pytest.raises(AccsynException, match="no read access"):
        files.reader.ls("share=projects/proj002")
    with pytest.raises(AccsynException, match="no volume 'archive'"):
        files.reader.ls("share=archive")
    with pytest.raises(AccsynException, match=r"'\.\.' is not allowed"):
        files.admin.ls("share=projects/proj001/../../etc")
    with pytest.raises(AccsynException, match="within its volume"):
        files.admin.mv("share=projects/a", "share=archive/a")
    with pytest.raises(AccsynException, match="not supported"):
        files.admin.ls("home=lisa@x.com/inbox")
    for op in ("sizes", "frobnicate"):  # reelsync's own operation is not accsyn's either
        with pytest.raises(AccsynException, match=f"unknown file operation '{op}'; use ls, "):
            files.admin._event("GET", "workspace/file", {"op": op, "path": "share=projects/a"})
    assert len(files.operator.requests) == before


def test_the_pre_submit_hook_runs_before_a_job_is_accepted(files: Files) -> None:
    with pytest.raises(AccsynException, match="pre-submit hook refused the job"):
        files.admin.create(
            "transfer",
            {"name": "forbidden x", "source": "share=projects/a", "destination": "site=london"},
        )
    assert files.admin.find("Transfer", finished=True) == []
    job = files.admin.create(
        "transfer", {"name": "fine", "source": "share=projects/a", "destination": "site=london"}
    )
    assert job["name"] == "fine"
