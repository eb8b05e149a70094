"""A task append retried after its answer was lost appends once (Idempotency-Key), on SQLite and
PostgreSQL: the real client (its own retry) against the real app in-process, with a transport that
delivers the request to the app and then drops the answer; and the accsyn adapter's appends
(``task/create``, ``job/create`` with ``append``) sent twice with one key, in-process too."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from reelsync.client import AsyncSession
from reelsync.config import ClientConfig, ServerConfig
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor
from reelsync.errors import ConflictError, ValidationError
from reelsync.server.accsyn.router import build_router
from reelsync.server.app import create_app
from reelsync.services import jobs, sites, tasks, volumes
from reelsync.services.bootstrap import InitResult


class LosesAnswers(httpx.AsyncBaseTransport):
    """Hands every request to the app; drops the answer to the first one ``lose`` picks, after
    running ``meanwhile`` (what happens at the server before the client tries again)."""

    def __init__(
        self,
        app: Any,
        lose: Callable[[httpx.Request], bool],
        meanwhile: Callable[[], None] = lambda: None,
    ) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.lose = lose
        self.meanwhile = meanwhile
        self.lost: list[httpx.Response] = []
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if not self.lost and self.lose(request):
            self.lost.append(response)  # the server did it; the client never hears
            self.meanwhile()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


def _appends(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/tasks")


def _task(path: str) -> dict[str, str]:
    return {"source": f"share=projects/{path}", "destination": "site=london"}


@pytest.fixture
async def studio(database: Database, workspace: InitResult, tmp_path: Path) -> Any:
    app = create_app(ServerConfig(data_dir=tmp_path, database_url=database.url), database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test/api/v1",
        headers={"Authorization": f"Bearer {workspace.api_key}"},
    ) as api:
        assert (await api.post("/sites", json={"code": "london"})).status_code == 201
        volume = {"code": "projects", "paths": {"hq": "/mnt/projects", "london": "/data/p"}}
        assert (await api.post("/volumes", json=volume)).status_code == 201
    return app


def _client(transport: httpx.AsyncBaseTransport, workspace: InitResult) -> AsyncSession:
    config = ClientConfig(url="http://test", api_key=workspace.api_key, retry_s=10)
    return AsyncSession(config, transport=transport)


def _task_rows(database: Database, job_id: str) -> int:
    with database.reader() as session:
        return int(session.scalar(select(func.count()).where(m.Task.job_id == job_id)) or 0)


async def test_an_append_whose_answer_was_lost_is_retried_and_appends_once(
    studio: Any, database: Database, workspace: InitResult
) -> None:
    link = LosesAnswers(studio, _appends)
    async with _client(link, workspace) as client:
        job = await client.submit_job({"name": "proj001 london", "tasks": [_task("proj001/a")]})
        added = await client.add_tasks(job["id"], [_task("proj001/b"), _task("proj001/c")])
    assert len(link.lost) == 1
    first = link.lost[0].json()
    appends = [r for r in link.sent if _appends(r)]
    assert len(appends) == 2  # the lost one and the retry, with one key
    assert len({r.headers["idempotency-key"] for r in appends}) == 1
    assert [t["id"] for t in added] == [t["id"] for t in first]
    assert [t["uri"] for t in added] == ["1", "2"]
    assert _task_rows(database, job["id"]) == 3


async def test_a_retried_append_does_not_send_again_what_finished_meanwhile(
    studio: Any, database: Database, workspace: InitResult
) -> None:
    """Without the key a repeated append of a finished path re-queues it (a second transfer)."""
    job_id: list[str] = []

    def finish_everything() -> None:  # the agents move the files before the client retries
        with database.session() as session:
            session.execute(
                update(m.Task).where(m.Task.job_id == job_id[0]).values(status="done", size=1)
            )

    link = LosesAnswers(studio, _appends, meanwhile=finish_everything)
    async with _client(link, workspace) as client:
        job = await client.submit_job({"name": "proj001 london", "tasks": [_task("proj001/a")]})
        job_id.append(job["id"])
        added = await client.add_tasks(job["id"], [_task("proj001/a"), _task("proj001/b")])
        assert [t["status"] for t in added] == ["done", "done"]  # as they are now, not re-queued
        # the same append under a new key is a new request: it re-queues them
        again = await client.add_tasks(job["id"], [_task("proj001/a"), _task("proj001/b")])
        assert [t["status"] for t in again] == ["queued", "queued"]
    assert len(link.lost) == 1
    assert _task_rows(database, job["id"]) == 2


def test_append_keys_name_one_request(database: Database, admin: Actor) -> None:
    sites.create_site(database, admin, code="london")
    volumes.create_volume(database, admin, code="projects", paths={"hq": "/mnt", "london": "/data"})
    one = jobs.submit_job(database, admin, _task("p/a"), idempotency_key="submit-1")
    two = jobs.submit_job(database, admin, {**_task("p/z"), "name": "other"})
    first = tasks.add_tasks(database, admin, one.id, [_task("p/b")], idempotency_key="append-1")
    replay = tasks.add_tasks(database, admin, one.id, [_task("p/b")], idempotency_key="append-1")
    assert [t.id for t in replay] == [t.id for t in first]
    assert _task_rows(database, one.id) == 2
    with pytest.raises(ConflictError, match="used for another request"):
        tasks.add_tasks(database, admin, two.id, [_task("p/b")], idempotency_key="append-1")
    with pytest.raises(ConflictError, match="used for another request"):
        tasks.add_tasks(database, admin, one.id, [_task("p/c")], idempotency_key="submit-1")
    with pytest.raises(ValidationError, match="idempotency key"):
        tasks.add_tasks(database, admin, one.id, [_task("p/c")], idempotency_key=" ")
    assert _task_rows(database, one.id) == 2
    assert _task_rows(database, two.id) == 1


# -- the accsyn adapter ----------------------------------------------------------------------


@pytest.fixture
async def accsyn(
    database: Database, workspace: InitResult, admin: Actor, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The accsyn v3 adapter in-process, called as the admin (as the official client calls it)."""
    sites.create_site(database, admin, code="london")
    volumes.create_volume(database, admin, code="projects", paths={"hq": "/mnt", "london": "/data"})
    config = ServerConfig(data_dir=tmp_path, database_url=database.url)
    app = create_app(config, database, routers=[build_router()])
    b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    headers = {
        "Authorization": f"basic {b64(admin.email)}:{b64(workspace.api_key)}",
        "X-Accsyn-Workspace": "acmepost",
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://reelsync.test", headers=headers
    ) as client:
        yield client


async def _event(
    client: httpx.AsyncClient, envelope: dict[str, Any], key: str | None = None
) -> Any:
    """The ``result`` of one accsyn event (its ``message`` raised as an AssertionError)."""
    headers = {} if key is None else {"Idempotency-Key": key}
    answer = await client.post(
        "/api/v3/event", content=json.dumps({"workspace": "acmepost", **envelope}), headers=headers
    )
    body = answer.json()
    assert "result" in body, body
    return body["result"]


def _finish(database: Database, job_id: str) -> None:
    """The agents move every file of the job (before a client sends its create again)."""
    with database.session() as session:
        session.execute(update(m.Task).where(m.Task.job_id == job_id).values(status="done", size=1))


async def test_an_accsyn_task_create_sent_again_with_its_key_appends_once(
    accsyn: httpx.AsyncClient, database: Database
) -> None:
    [job] = await _event(accsyn, {"uri": "job/create", "data": _task("proj001/a")})
    create = {"uri": "task/create", "id": job["id"], "data": {"tasks": [_task("proj001/b")]}}
    first = await _event(accsyn, create, key="create-1")
    _finish(database, job["id"])
    again = await _event(accsyn, create, key="create-1")
    assert [t["id"] for t in again] == [t["id"] for t in first]
    assert [t["status"] for t in again] == ["done"]  # as it is now, not re-queued
    assert _task_rows(database, job["id"]) == 2
    # without a key (the official client sends none) the same create is a new request
    fresh = await _event(accsyn, create)
    assert [(t["id"], t["status"]) for t in fresh] == [(first[0]["id"], "queued")]
    # 3.0/3.1's job/task/create, the job id in the query: the same key, the same answer
    old = {"uri": "job/task/create", "query": job["id"], "data": {"tasks": [_task("proj001/b")]}}
    assert [t["id"] for t in await _event(accsyn, old, key="create-1")] == [first[0]["id"]]
    # a key names one request: another job's create with it is refused
    [other] = await _event(accsyn, {"uri": "job/create", "data": {**_task("p/z"), "name": "z"}})
    refused = await accsyn.post(
        "/api/v3/event",
        content=json.dumps({**create, "workspace": "acmepost", "id": other["id"]}),
        headers={"Idempotency-Key": "create-1"},
    )
    assert "used for another request" in refused.json()["message"]
    assert _task_rows(database, other["id"]) == 1


async def test_an_accsyn_job_create_that_appends_sent_again_with_its_key_appends_once(
    accsyn: httpx.AsyncClient, database: Database
) -> None:
    made = {"uri": "job/create", "data": {"name": "proj001 london", **_task("proj001/a")}}
    [job] = await _event(accsyn, made, key="submit-1")
    assert (await _event(accsyn, made, key="submit-1"))[0]["id"] == job["id"]  # one job
    append = {
        "uri": "job/create",
        "data": {"name": "proj001 london", "append": True, "tasks": [_task("proj001/b")]},
    }
    [appended] = await _event(accsyn, append, key="append-1")
    assert appended["id"] == job["id"]
    _finish(database, job["id"])
    [again] = await _event(accsyn, append, key="append-1")
    assert again["id"] == job["id"]
    assert _task_rows(database, job["id"]) == 2
    with database.reader() as session:
        statuses = session.scalars(select(m.Task.status).where(m.Task.job_id == job["id"]))
        assert set(statuses) == {"done"}  # nothing re-queued
        assert session.scalar(select(func.count()).select_from(m.Job)) == 1
