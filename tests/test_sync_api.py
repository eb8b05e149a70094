"""``POST /api/v1/syncs`` and ``submit_sync`` (what ``reelsync sync`` sends): one request makes
the same checks, sizing and day's job as ``site_sync``'s flow, says the same errors, is
idempotent, makes one job when two syncs of a project race, and an older server (no such route)
gets the old flow.
Against the real app in process (SQLite and PostgreSQL), agents stood in for as in
test_sync_checks.py."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import httpx
import pytest

import test_sync_checks
from reelsync.client import AsyncSession, Session
from reelsync.config import ClientConfig
from reelsync.domain.fileops import FileOp
from reelsync.errors import (
    NotFoundError,
    PermissionDeniedError,
    ReelsyncError,
    UnavailableError,
    ValidationError,
)
from reelsync.sync import site_sync, submit_sync
from sync_world import INPROC_URL, OPERATOR, inproc_session, make_tree
from test_sync_checks import SHOT1, SHOT2, RecordingTransport, jobs_of, set_agents

env = test_sync_checks.env  # the same studio: the app in process, agents stood in for
SHOT1_SIZE = 5 * 1000 + len('{"colorspace": "ACES"}')


def today_name(project: str = "proj001", way: str = "download") -> str:
    return f"{project} {way} london {date.today().isoformat()}"


def test_one_request_creates_then_appends_then_revives(env: Any) -> None:
    transport, admin_session, world, operator, _db = env
    recording = RecordingTransport(transport)
    config = ClientConfig(url=INPROC_URL, api_key=world.operator_key)
    loaded: list[int] = []
    with Session(config, transport=recording) as op:
        first = submit_sync(op, [SHOT1], "london", meanwhile=lambda: loaded.append(1))
        assert recording.sent == ["/syncs"]  # one request
        assert loaded == [1]
        (job,) = first.jobs
        assert (job.action, job.name, job.queue) == ("created", today_name(), "proj001")
        assert (job.source_site, job.destination_site, job.paths) == ("hq", "london", (SHOT1,))
        assert job.size == job.job["size"] == SHOT1_SIZE
        assert job.job["status"] == "waiting"
        assert first.notes == ()
        assert first.warnings == ()
        tasks = op.tasks(job.id)
        assert [(t["source_path"], t["size"]) for t in tasks] == [(SHOT1, SHOT1_SIZE)]
        assert [(c.op, c.site_code, c.paths) for c in operator.calls] == [
            (FileOp.SIZES, "hq", (SHOT1,))
        ]

        second = submit_sync(op, [SHOT2, SHOT1], "london")
        assert (second.jobs[0].action, second.jobs[0].id) == ("appended", job.id)
        assert second.jobs[0].size == 2 * SHOT1_SIZE
        assert len(op.tasks(job.id)) == 2

        op.update("job", job.id, {"status": "done"})
        third = submit_sync(op, [SHOT1], "london")
        assert (third.jobs[0].action, third.jobs[0].id) == ("revived", job.id)
        assert third.jobs[0].job["status"] == "waiting"
    assert len(jobs_of(admin_session)) == 1


def test_upload_default_queue_and_queue_move(env: Any) -> None:
    transport, admin_session, world, operator, _db = env
    make_tree(world.volume_root("hq"), "proj002/sc0100/sh0100")
    default = next(q["code"] for q in admin_session.find("queue") if q["default"])
    with inproc_session(transport, world.operator_key) as op:
        up = submit_sync(op, ["proj001/sc0010/sh0030/scans"], "london", "upload")
        assert up.jobs[0].name == today_name(way="upload")
        assert (up.jobs[0].source_site, up.jobs[0].destination_site) == ("london", "hq")
        assert operator.calls[-1].site_code == "london"

        both = submit_sync(op, ["proj002/sc0100/sh0100/scans", SHOT1], None)
        by_project = {j.project: j for j in both.jobs}
        assert by_project["proj002"].queue == default
        assert by_project["proj001"].queue == "proj001"
        assert both.notes == (f"project proj002 has no queue; using the default queue {default}",)

        moved = submit_sync(op, [SHOT2], "london", queue=default)
        assert moved.jobs[0].queue == default
        assert moved.notes == (
            f"job {today_name()!r} moved from queue proj001 to {default} (the queue asked for)",
        )


@pytest.mark.parametrize(test_sync_checks.MISTAKE_FIELDS, test_sync_checks.MISTAKES)
def test_mistakes_say_what_the_old_flow_says(
    env: Any,
    paths: list[str],
    site: str,
    kwargs: dict[str, Any],
    error: type[ReelsyncError],
    message: str,
) -> None:
    transport, admin_session, world, _op, _db = env
    with inproc_session(transport, world.operator_key) as op:
        with pytest.raises(error) as new:
            submit_sync(op, paths, site, **kwargs)
        with pytest.raises(error) as old:
            site_sync(op, paths, site, **kwargs)
    assert message in str(new.value)
    assert str(new.value) == str(old.value)
    assert jobs_of(admin_session) == []


def test_access_and_agents_say_what_the_old_flow_says(env: Any) -> None:
    transport, admin_session, world, _op, database = env
    acl = admin_session.acls(user=OPERATOR)[0]
    admin_session.revoke_acl(acl["id"])
    admin_session.grant(OPERATOR, "projects", path="proj001/sc0010/sh0010", read=True, write=False)
    with inproc_session(transport, world.operator_key) as op:
        for shot, what in ((SHOT1, "write"), (SHOT2, "read")):
            with pytest.raises(PermissionDeniedError) as new:
                submit_sync(op, [shot], "london")
            with pytest.raises(PermissionDeniedError) as old:
                site_sync(op, [shot], "london")
            assert str(new.value) == str(old.value)
            assert f"{OPERATOR} has no {what} access to projects/{shot}" in str(new.value)
    set_agents(database, "offline", site="london")
    with inproc_session(transport, world.operator_key) as op:
        with pytest.raises(UnavailableError) as new_offline:
            submit_sync(op, [SHOT1], "london")
        with pytest.raises(UnavailableError) as old_offline:
            site_sync(op, [SHOT1], "london")
    assert (
        str(new_offline.value)
        == str(old_offline.value)
        == (
            "no agent is online at site london (agent-london offline) "
            "(start one there: reelsync agent run)"
        )
    )
    assert jobs_of(admin_session) == []


def test_an_empty_folder_is_an_error(env: Any) -> None:
    transport, admin_session, world, _op, _db = env
    (world.volume_root("hq") / "proj001" / "empty").mkdir()
    with inproc_session(transport, world.operator_key) as op, pytest.raises(ValidationError) as e:
        submit_sync(op, ["proj001/empty"], "london")
    assert str(e.value) == "proj001/empty at hq is an empty folder: nothing to sync"
    assert jobs_of(admin_session) == []


def test_many_paths_are_sized_in_few_round_trips_and_older_agents_path_by_path(env: Any) -> None:
    """70 shots: two ``sizes`` round trips to the source agent (64 paths, then 6), not 70; an
    agent older than ``sizes`` is asked path by path, with the same sizes; a missing path and an
    empty folder are said for the first such path in the order given, either way."""
    transport, admin_session, world, operator, _db = env
    root = world.volume_root("hq")
    shots = [f"proj002/sc0100/sh{n:04d}" for n in range(70)]
    for n, shot in enumerate(shots):
        make_tree(root, shot, frames=1 + n % 3)
    paths = [f"{shot}/scans" for shot in shots]
    with inproc_session(transport, world.operator_key) as op:
        operator.calls.clear()
        done = submit_sync(op, paths, "london")
        assert [(c.op, len(c.paths)) for c in operator.calls] == [
            (FileOp.SIZES, 64),
            (FileOp.SIZES, 6),
        ]
        sized = {t["source_path"]: t["size"] for t in admin_session.tasks(done.jobs[0].id)}
        assert sized == {p: (1 + n % 3) * 1000 + 22 for n, p in enumerate(paths)}

        (root / "proj002" / "empty").mkdir()
        wrong = [paths[0], "proj002/sc0100/nothing", "proj002/empty", paths[1]]
        for sizes in (True, False):
            operator.sizes = sizes
            operator.calls.clear()
            with pytest.raises(NotFoundError) as missing:
                submit_sync(op, wrong, "london")
            assert str(missing.value) == (
                "proj002/sc0100/nothing does not exist at hq (volume projects)"
            )
            with pytest.raises(ValidationError) as empty:
                submit_sync(op, wrong[2:], "london")
            assert str(empty.value) == "proj002/empty at hq is an empty folder: nothing to sync"
            if not sizes:
                assert FileOp.GETSIZE in {c.op for c in operator.calls}
        operator.calls.clear()
        again = submit_sync(op, paths[:5], "london")  # an older agent: path by path
        assert [c.op for c in operator.calls].count(FileOp.GETSIZE) == 5
        assert again.jobs[0].size == sum(sized[p] for p in paths[:5])
        operator.sizes = True


def test_the_same_key_again_appends_nothing(env: Any) -> None:
    transport, admin_session, world, _op, _db = env
    body = {"paths": [SHOT1, SHOT2], "site": "london"}
    with inproc_session(transport, world.operator_key) as op:
        for key, count in (("k1", 2), ("k2", 3)):  # a created job, then an append
            first = op.request("POST", "/syncs", json_body=body, headers={"Idempotency-Key": key})
            again = op.request("POST", "/syncs", json_body=body, headers={"Idempotency-Key": key})
            assert again["jobs"][0]["job"]["id"] == first["jobs"][0]["job"]["id"]
            assert len(op.tasks(first["jobs"][0]["job"]["id"])) == count
            body = {"paths": ["proj001/sc0010/sh0010"], "site": "london"}
        other = op.request("POST", "/syncs", json_body=body, headers={"Idempotency-Key": "k3"})
        assert len(op.tasks(other["jobs"][0]["job"]["id"])) == 3  # re-queued, not added
    assert len(jobs_of(admin_session)) == 1


def test_two_syncs_of_one_project_at_once_make_one_job(env: Any) -> None:
    transport, admin_session, world, _op, _db = env
    config = ClientConfig(url=INPROC_URL, api_key=world.operator_key)

    async def both() -> list[Any]:
        async with AsyncSession(config, transport=transport) as op:
            return await asyncio.gather(
                *(
                    op.request(
                        "POST", "/syncs", json_body={"paths": [shot], "site": "london"},
                        headers={"Idempotency-Key": shot},
                    )
                    for shot in (SHOT1, SHOT2)
                )
            )  # fmt: skip

    answers = asyncio.run(both())
    assert sorted(a["jobs"][0]["action"] for a in answers) == ["appended", "created"]
    (job,) = jobs_of(admin_session)
    assert job["tasks"] == 2


class OlderServer(httpx.AsyncBaseTransport):
    """A server from before ``POST /syncs``: that route answers 404."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        self.sent.append(path)
        if path == "/syncs":
            return httpx.Response(404, json={"detail": "Not Found"}, request=request)
        return await self.inner.handle_async_request(request)


def test_an_older_server_gets_the_old_flow(env: Any) -> None:
    transport, _admin, world, _op, _db = env
    older = OlderServer(transport)
    config = ClientConfig(url=INPROC_URL, api_key=world.operator_key)
    with Session(config, transport=older) as op:
        result = submit_sync(op, [SHOT1], "london")
        assert result.jobs[0].action == "created"
        assert result.jobs[0].size == SHOT1_SIZE
        with pytest.raises(NotFoundError) as e:  # the old flow's own error
            submit_sync(op, [SHOT1], "paris")
    assert str(e.value) == "unknown site 'paris' (sites: hq, london)"
    assert older.sent[0] == "/syncs"
    assert "/files/getsize" in older.sent
