"""A destination without a party whose first segment names a site (``"destination": "london"``)
is a path at the main site, as accsyn reads it (spec section 4: a relative path is in the
default volume): the submit is accepted and says so in a warning, through the services and the
accsyn adapter (in-process, SQLite and PostgreSQL). An explicit party or volume warns nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.domain.records import Actor
from reelsync.server.app import create_app
from reelsync.server.controlplane import routers
from reelsync.services import jobs
from reelsync.services.bootstrap import InitResult
from scheduler_world import World

SOURCE = "share=projects/proj001/plate.exr"


@pytest.fixture
def world(database: Database, admin: Actor) -> World:
    return World(database, admin)


def test_a_site_named_as_a_bare_path_is_accepted_with_a_warning(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    job = jobs.submit_job(world.db, world.admin, {"source": SOURCE, "destination": "london"})
    assert (job.source, job.destination) == ("site=hq", "site=hq")  # a copy within hq
    [warning] = job.warnings
    assert 'destination "london" is a path in the default volume at hq' in warning
    assert 'write "site=london"' in warning
    assert warning in caplog.text  # and logged at the control plane
    # a path below it, and many tasks naming it: one warning
    tasks = [{"source": f"{SOURCE[:-4]}{i}.exr", "destination": "London/in/"} for i in range(3)]
    job = jobs.submit_job(world.db, world.admin, {"name": "below", "tasks": tasks})
    [warning] = job.warnings
    assert 'write "site=london:volume=CODE/in"' in warning
    # said as meant: no warning
    for destination in ("site=london", "site=london:volume=projects/london/x", "projects/x"):
        job = jobs.submit_job(
            world.db, world.admin, {"name": destination, "source": SOURCE,
                                    "destination": destination},
        )  # fmt: skip
        assert job.warnings == (), destination
    job = jobs.submit_job(
        world.db, world.admin, {"source": SOURCE, "destination": "volume=projects/london/"}
    )
    assert job.warnings == ()
    # the record read back carries no warning: it belongs to the submit's answer
    assert jobs.get_job(world.db, world.admin, job.id).warnings == ()


@pytest.fixture
async def client(
    world: World, workspace: InitResult, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    config = ServerConfig(data_dir=tmp_path, database_url=str(world.db.url), tls=False)
    app = create_app(config, world.db, routers=routers(config, world.db))
    b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    headers = {
        "Authorization": f"basic {b64('admin@acmepost.com')}:{b64(workspace.api_key)}",
        "X-Accsyn-Workspace": "acmepost",
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://reelsync.test", headers=headers
    ) as api:
        yield api


async def _create_job(client: httpx.AsyncClient, data: dict[str, Any]) -> Any:
    envelope = {"workspace": "acmepost", "uri": "job/create", "data": data}
    answer = await client.post("/api/v3/event", content=json.dumps(envelope).encode())
    assert answer.status_code < 400, answer.text
    return answer.json()


async def test_the_accsyn_submit_answers_the_warning(client: httpx.AsyncClient) -> None:
    body = json.dumps(await _create_job(client, {"source": SOURCE, "destination": "london"}))
    assert 'destination \\"london\\" is a path in the default volume at hq' in body
    assert "site=london" in body
    plain = await _create_job(client, {"source": SOURCE, "destination": "site=london"})
    assert "warnings" not in json.dumps(plain)
