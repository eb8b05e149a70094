"""``site_sync`` and ``reelsync sync`` up to and including submission, against the real control
plane app (in process, SQLite and PostgreSQL). Agents are stood in for: enrolled server rows set
online, and the app's file operator answered from the volume roots on disk (the twin of an agent's
file operations). Moving bytes is tested end to end with real agents elsewhere."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from reelsync.agent.fileops import run_fileop
from reelsync.cli import cli
from reelsync.cli.connection import Connection
from reelsync.client import Session
from reelsync.config import ClientConfig
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.fileops import FileOp, FileRequest
from reelsync.domain.records import Actor
from reelsync.errors import (
    NotFoundError,
    PathError,
    PermissionDeniedError,
    ReelsyncError,
    UnavailableError,
    ValidationError,
)
from reelsync.fs import Volume
from reelsync.server.agentapi.relay import request_to_json
from reelsync.services import servers
from reelsync.services.bootstrap import InitResult
from reelsync.sync import job_name, site_sync
from sync_world import (
    INPROC_URL,
    OPERATOR,
    World,
    build_world,
    inproc_server,
    inproc_session,
    make_tree,
)

DAY = date(2026, 11, 27)
SHOT1 = "proj001/sc0010/sh0010/scans"
SHOT2 = "proj001/sc0010/sh0020/scans"


class DiskFileOperator:
    """An agent's file operations, answered from the per-site volume roots."""

    def __init__(self, roots: dict[str, Path], main: str = "hq", *, sizes: bool = True) -> None:
        self.roots = roots
        self.main = main
        self.sizes = sizes  # False: an agent older than the ``sizes`` operation
        self.calls: list[FileRequest] = []

    async def run(self, request: FileRequest) -> Any:
        self.calls.append(request)
        if request.op not in (FileOp.EXISTS, FileOp.GETSIZE, FileOp.LS, FileOp.SIZES):
            raise NotImplementedError(request.op)
        if request.op is FileOp.SIZES and not self.sizes:
            raise ValidationError("unknown file operation 'sizes'")  # what an older agent says
        volume = Volume(request.volume_code, self.roots[request.site_code or self.main])
        op = request_to_json("op1", request)  # what the agent gets
        return run_fileop({request.volume_code: volume}, op)  # what the agent runs


@pytest.fixture
def env(
    database: Database, workspace: InitResult, admin: Actor, tmp_path: Path
) -> Iterator[tuple[httpx.ASGITransport, Session, World, DiskFileOperator, Database]]:
    with (
        inproc_server(database, tmp_path) as (transport, _url),
        inproc_session(transport, workspace.api_key) as admin_session,
    ):
        world = build_world(admin_session, tmp_path / "studio")
        operator = DiskFileOperator({s: world.volume_root(s) for s in ("hq", "london")})
        transport.app.state.file_operator = operator  # type: ignore[attr-defined]
        for site in ("hq", "london"):
            _, token = servers.create_enrollment_token(database, admin, site)
            servers.enroll_server(database, token, hostname=f"agent-{site}")
        set_agents(database, "online")
        make_tree(world.volume_root("hq"), "proj001/sc0010/sh0010")
        make_tree(world.volume_root("hq"), "proj001/sc0010/sh0020")
        make_tree(world.volume_root("london"), "proj001/sc0010/sh0030")
        yield transport, admin_session, world, operator, database


def set_agents(database: Database, status: str, site: str | None = None) -> None:
    with database.session() as s:
        query = update(m.Server).values(status=status)
        if site:
            site_id = s.query(m.Site.id).filter(m.Site.code == site).scalar()
            query = query.where(m.Server.site_id == site_id)
        s.execute(query)


def jobs_of(session: Session) -> list[dict[str, Any]]:
    return session.find("job")


def test_download_creates_then_appends_then_revives(env: Any) -> None:
    transport, admin_session, world, operator, _db = env
    with inproc_session(transport, world.operator_key) as op:
        first = site_sync(op, [SHOT1], "london", today=DAY)
        (job,) = first.jobs
        assert job.action == "created"
        assert (
            job.name
            == "proj001 download london 2026-11-27"
            == job_name("proj001", "download", "london", DAY)
        )
        assert job.queue == "proj001"
        assert (job.source_site, job.destination_site) == ("hq", "london")
        tasks = op.tasks(job.id)
        # one task for the folder, sized by the agent at the source: no file listed through here
        assert [(t["source_path"], t["destination_path"]) for t in tasks] == [(SHOT1, SHOT1)]
        shot1_size = 5 * 1000 + len('{"colorspace": "ACES"}')
        assert tasks[0]["size"] == job.size == shot1_size
        assert job.job["size"] == shot1_size  # known at submit
        assert first.notes == ()
        # the path was measured at the source site, in one call (it exists: no exists call)
        assert [(c.op, c.site_code, c.path) for c in operator.calls] == [
            (FileOp.GETSIZE, "hq", SHOT1),
        ]

        second = site_sync(op, [SHOT2, SHOT1], "london", today=DAY)
        assert second.jobs[0].action == "appended"
        assert second.jobs[0].id == job.id
        assert second.jobs[0].size == 2 * shot1_size
        assert len(op.tasks(job.id)) == 2  # SHOT1's task was already in the job

        # The job ends (as when agents finish); the same sync the same day revives it.
        op.update("job", job.id, {"status": "done"})
        third = site_sync(op, [SHOT1], "london", today=DAY)
        assert third.jobs[0].action == "revived"
        assert third.jobs[0].id == job.id
        assert third.jobs[0].job["status"] == "waiting"

        # Another day, another job.
        other = site_sync(op, [SHOT1], "london", today=date(2026, 11, 28))
        assert other.jobs[0].action == "created"
        assert other.jobs[0].id != job.id
    assert len(jobs_of(admin_session)) == 2


def test_upload_pulls_from_the_site(env: Any) -> None:
    transport, _admin, world, operator, _db = env
    with inproc_session(transport, world.operator_key) as op:
        result = site_sync(op, ["proj001/sc0010/sh0030/scans"], "london", "upload", today=DAY)
    (job,) = result.jobs
    assert job.name == "proj001 upload london 2026-11-27"
    assert (job.source_site, job.destination_site) == ("london", "hq")
    assert job.job["source"] == "site=london"
    assert job.job["destination"] == "site=hq"
    assert operator.calls[-1].site_code == "london"


def test_project_without_queue_falls_back_to_default(env: Any) -> None:
    transport, admin_session, world, _op, _db = env
    make_tree(world.volume_root("hq"), "proj002/sc0100/sh0100")
    with inproc_session(transport, world.operator_key) as op:
        result = site_sync(op, ["proj002/sc0100/sh0100/scans", SHOT1], None, today=DAY)
    by_project = {j.project: j for j in result.jobs}
    assert set(by_project) == {"proj001", "proj002"}
    default = next(q["code"] for q in admin_session.find("queue") if q["default"])
    assert by_project["proj002"].queue == default
    assert by_project["proj001"].queue == "proj001"
    assert result.notes == (f"project proj002 has no queue; using the default queue {default}",)


def test_absolute_paths_under_the_volume_are_made_relative(env: Any) -> None:
    transport, _admin, world, _op, _db = env
    absolute = str(world.volume_root("hq") / SHOT1)
    with inproc_session(transport, world.operator_key) as op:
        result = site_sync(op, [absolute + "/"], "london", today=DAY)
    assert result.jobs[0].paths == (SHOT1,)


def test_a_single_file_is_one_task(env: Any) -> None:
    transport, _admin, world, _op, _db = env
    frame = f"{SHOT1}/sh0010.1003.exr"
    with inproc_session(transport, world.operator_key) as op:
        result = site_sync(op, [frame], "london", today=DAY)
        (task,) = op.tasks(result.jobs[0].id)
        assert (task["source_path"], task["size"]) == (frame, 1000)


def test_an_empty_folder_is_an_error(env: Any) -> None:
    transport, admin_session, world, _op, _db = env
    (world.volume_root("hq") / "proj001" / "empty").mkdir()
    with inproc_session(transport, world.operator_key) as op, pytest.raises(ValidationError) as e:
        site_sync(op, ["proj001/empty"], "london", today=DAY)
    assert str(e.value) == "proj001/empty at hq is an empty folder: nothing to sync"
    assert jobs_of(admin_session) == []


#: A user's mistakes and the one error each gives (the old flow's and the one-request submit's)
MISTAKE_FIELDS = ("paths", "site", "kwargs", "error", "message")
MISTAKES = [
    ([SHOT1], "paris", {}, NotFoundError, "unknown site 'paris' (sites: hq, london)"),
    ([SHOT1], "hq", {}, ValidationError, "hq is the main site; sync moves files between"),
    (["proj001/sc0010/sh9999/scans"], "london", {}, NotFoundError,
     "proj001/sc0010/sh9999/scans does not exist at hq (volume projects)"),
    ([SHOT1], "london", {"volume": "archive"}, NotFoundError,
     "unknown volume 'archive' (volumes: projects)"),
    ([SHOT1], "london", {"queue": "nope"}, NotFoundError, "unknown queue 'nope'"),
    (["proj001/../etc"], "london", {}, PathError, "'..' is not allowed in a path"),
    (["/etc/passwd"], "london", {}, PathError, "/etc/passwd is not inside volume projects"),
    ([], "london", {}, ValidationError, "give at least one path"),
    ([SHOT1], "london", {"direction": "sideways"}, ValidationError,
     "direction must be download or upload"),
]  # fmt: skip


@pytest.mark.parametrize(MISTAKE_FIELDS, MISTAKES)
def test_mistakes_are_one_clear_error_and_submit_nothing(
    env: Any,
    paths: list[str],
    site: str,
    kwargs: dict[str, Any],
    error: type[ReelsyncError],
    message: str,
) -> None:
    transport, admin_session, world, _op, _db = env
    with inproc_session(transport, world.operator_key) as op, pytest.raises(error) as caught:
        site_sync(op, paths, site, today=DAY, **kwargs)
    assert message in str(caught.value)
    assert jobs_of(admin_session) == []


def test_no_access_submits_nothing(env: Any) -> None:
    transport, admin_session, world, _op, _db = env
    acl = admin_session.acls(user=OPERATOR)[0]
    admin_session.revoke_acl(acl["id"])
    admin_session.grant(OPERATOR, "projects", path="proj001/sc0010/sh0010", read=True, write=False)
    with inproc_session(transport, world.operator_key) as op:
        with pytest.raises(PermissionDeniedError) as caught:
            site_sync(op, [SHOT1], "london", today=DAY)
        assert str(caught.value) == (
            f"{OPERATOR} has no write access to projects/{SHOT1} (ask an admin for a grant)"
        )
        with pytest.raises(PermissionDeniedError) as other:
            site_sync(op, [SHOT2], "london", today=DAY)
        assert "no read access" in str(other.value)
    assert jobs_of(admin_session) == []


def test_agent_offline_submits_nothing(env: Any) -> None:
    transport, admin_session, world, _op, database = env
    set_agents(database, "offline", site="london")
    with inproc_session(transport, world.operator_key) as op, pytest.raises(UnavailableError) as e:
        site_sync(op, [SHOT1], "london", today=DAY)
    assert str(e.value) == (
        "no agent is online at site london (agent-london offline) "
        "(start one there: reelsync agent run)"
    )
    assert jobs_of(admin_session) == []


def test_without_file_operations_the_server_says_so(env: Any) -> None:
    transport, admin_session, world, _op, _db = env
    transport.app.state.file_operator = None
    # a 503 is retried (20 s by default) before it surfaces: a second here
    with (
        inproc_session(transport, world.operator_key, retry_s=1.0) as op,
        pytest.raises(UnavailableError) as e,
    ):
        site_sync(op, [SHOT1], "london", today=DAY)
    assert "no agent serves volume 'projects'" in str(e.value)
    assert jobs_of(admin_session) == []


def run(transport: httpx.ASGITransport, key: str, *args: str) -> Result:
    conn = Connection(url=INPROC_URL, transport=transport)
    return CliRunner().invoke(
        cli,
        list(args),
        obj=conn,
        env={"REELSYNC_API_KEY": key, "REELSYNC_URL": INPROC_URL, "COLUMNS": "200"},
    )


def test_cli_prints_the_job_and_errors_are_one_line(env: Any) -> None:
    transport, admin_session, world, _op, _db = env
    ok = run(transport, world.operator_key, "sync", "--site", "london", SHOT1, "--json")
    assert ok.exit_code == 0, ok.output
    body = json.loads(ok.stdout)
    assert body["jobs"][0]["action"] == "created"
    assert body["jobs"][0]["name"].startswith("proj001 download london ")
    human = run(transport, world.operator_key, "sync", SHOT2)
    assert human.exit_code == 0, human.output
    assert "appended job 'proj001 download london " in human.stderr
    assert "1 path(s), 4.9 KiB hq -> london" in human.stderr

    for args, line in [
        (["--site", "paris", SHOT1], "error: unknown site 'paris' (sites: hq, london)"),
        (["proj001/nothing"], "error: proj001/nothing does not exist at hq (volume projects)"),
    ]:
        bad = run(transport, world.operator_key, "sync", *args)
        assert bad.exit_code == 2
        assert bad.stderr.strip().splitlines() == [line]
    assert len(jobs_of(admin_session)) == 1


class RecordingTransport(httpx.AsyncBaseTransport):
    """The app's transport, noting the API path of each request as it is sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.url.path.removeprefix("/api/v1"))
        return await self.inner.handle_async_request(request)


def test_the_first_path_is_sized_while_the_checks_are_made(env: Any) -> None:
    """The source agent walks the first path while the caller, the queue, the agents and the
    access are checked; ``meanwhile`` runs once they passed, before any other path is sized."""
    transport, _admin, world, operator, _db = env
    recording = RecordingTransport(transport)
    at_meanwhile: list[list[str]] = []
    config = ClientConfig(url=INPROC_URL, api_key=world.operator_key)
    with Session(config, transport=recording) as op:
        result = site_sync(
            op,
            [SHOT1, SHOT2],
            "london",
            today=DAY,
            meanwhile=lambda: at_meanwhile.append(list(recording.sent)),
        )
    assert result.jobs[0].size == 2 * (5 * 1000 + len('{"colorspace": "ACES"}'))
    [before] = at_meanwhile
    assert before[:3] == ["/volumes/projects", "/sites", "/files/getsize"]
    assert {"/me", "/queues", "/servers", "/acls"} <= set(before[3:])
    assert "/files/getsize" not in before[3:]  # the second path: after the checks
    assert [c.path for c in operator.calls] == [SHOT1, SHOT2]


class HangingFileOperator:
    """An agent that never answers a file operation."""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, request: FileRequest) -> Any:
        self.calls += 1
        await asyncio.Event().wait()


def test_a_failed_check_drops_the_sizing_already_sent(env: Any) -> None:
    """The check's error is said at once, not after the walk (an agent that never answers)."""
    transport, admin_session, world, _op, database = env
    hanging = HangingFileOperator()
    transport.app.state.file_operator = hanging
    set_agents(database, "offline", site="london")
    with inproc_session(transport, world.operator_key) as op, pytest.raises(UnavailableError) as e:
        site_sync(op, [SHOT1], "london", today=DAY)
    assert str(e.value).startswith("no agent is online at site london")
    # sent (it may or may not have reached the agent yet) and dropped: nothing waited for it
    assert hanging.calls <= 1
    assert jobs_of(admin_session) == []
