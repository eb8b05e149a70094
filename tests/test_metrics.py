"""``GET /metrics`` (Prometheus text format) through the real app, on SQLite and PostgreSQL: jobs
and tasks by queue, site pair and status, live jobs by id, agents and outbox; admins only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.services.bootstrap import InitResult
from sync_world import INPROC_URL, build_world, inproc_server, inproc_session


def _get(transport: httpx.ASGITransport, key: str | None) -> httpx.Response:
    async def fetch() -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx.AsyncClient(transport=transport, base_url=INPROC_URL) as client:
            return await client.get("/metrics", headers=headers)

    return asyncio.run(fetch())


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_jobs_tasks_and_live_jobs(
    database: Database, workspace: InitResult, tmp_path: Path
) -> None:
    with inproc_server(database, tmp_path) as (transport, _url):
        with inproc_session(transport, workspace.api_key) as admin:
            world = build_world(admin, tmp_path / "studio")
            job = admin.submit_job(
                {
                    "name": "plates",
                    "queue": "proj001",
                    "destination": "site=london",
                    "tasks": ["share=projects/proj001/a", "share=projects/proj001/b"],
                }
            )
            other = admin.submit_job(
                {"name": "done one", "destination": "site=london", "tasks": ["proj001/c"]}
            )
        with database.session() as s:  # as the scheduler would have it
            s.execute(update(m.Task).where(m.Task.job_id == other["id"]).values(
                status="done", size=1234))  # fmt: skip
            s.execute(update(m.Job).where(m.Job.id == other["id"]).values(status="done"))
            running = {"status": "running", "size": 2000, "bytes_done": 500, "speed": 100.0}
            s.execute(update(m.Job).where(m.Job.id == job["id"]).values(**running, progress=25.0))

        scraped = _get(transport, workspace.api_key)
        assert scraped.status_code == 200, scraped.text
        assert scraped.headers["content-type"].startswith("text/plain")
        got = _samples(scraped.text)

        def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
            return name, tuple(sorted(labels.items()))

        pair = {"source_site": "hq", "destination_site": "london"}
        assert got[key("reelsync_jobs", **pair, queue="proj001", status="running")] == 1
        assert got[key("reelsync_jobs", **pair, queue="medium", status="done")] == 1
        assert got[key("reelsync_tasks", **pair, queue="proj001", status="queued")] == 2
        assert got[key("reelsync_tasks", **pair, queue="medium", status="done")] == 1
        assert got[key("reelsync_done_bytes", **pair)] == 1234
        live = (
            ("destination_site", "london"),
            ("job", job["id"]),
            ("name", "plates"),
            ("queue", "proj001"),
            ("source_site", "hq"),
        )
        assert got[("reelsync_job_size_bytes", live)] == 2000
        assert got[("reelsync_job_done_bytes", live)] == 500
        assert got[("reelsync_job_speed_bytes_per_second", live)] == 100.0
        assert got[("reelsync_job_progress_ratio", live)] == 0.25
        # finished jobs are not listed one by one
        assert not [k for k in got if ("job", other["id"]) in k[1]]

        # agents: their last heartbeat's rates and the limit they apply
        from reelsync.services import agents as agent_service

        with database.session() as s:
            london = s.scalar(select(m.Site.id).where(m.Site.code == "london"))
            s.add(m.Server(id="a" * 24, site_id=london, hostname="lon-agent-1", status="init"))
        agent_service.heartbeat(
            database, "a" * 24, rate_sent=0.0, rate_received=5_000_000.0, applied_limit=8e6
        )
        got = _samples(_get(transport, workspace.api_key).text)
        agent = {"agent": "a" * 24, "hostname": "lon-agent-1", "site": "london"}
        assert (
            got[key("reelsync_agent_rate_bytes_per_second", **agent, direction="received")] == 5e6
        )
        assert got[key("reelsync_agent_rate_bytes_per_second", **agent, direction="sent")] == 0
        assert got[key("reelsync_agent_bandwidth_limit_bytes_per_second", **agent)] == 8e6
        assert got[key("reelsync_agents", site="london", status="online")] == 1

        assert _get(transport, world.operator_key).status_code == 403
        assert _get(transport, None).status_code == 401


def test_shared_scrape_answers_no_caller_from_a_computation_older_than_it() -> None:
    from reelsync.server.metrics import SharedScrape

    async def scenario() -> None:
        started: list[int] = []
        release: list[asyncio.Event] = []

        async def compute() -> bytes:
            started.append(len(started))
            gate = asyncio.Event()
            release.append(gate)
            await gate.wait()
            return b"answer %d" % started[-1]

        async def until(n: int) -> None:  # until n computations have started
            while len(started) < n:
                await asyncio.sleep(0)

        shared = SharedScrape(compute)
        first = asyncio.ensure_future(shared.get())
        await until(1)
        # two callers arrive while the first computation runs: they wait for the next one
        late = [asyncio.ensure_future(shared.get()) for _ in range(2)]
        await asyncio.sleep(0)
        assert len(started) == 1
        release[0].set()
        assert await first == b"answer 0"
        await until(2)  # the next starts once the first ends, for both late callers
        gone = asyncio.ensure_future(shared.get())  # arrives during the second: a third
        await asyncio.sleep(0)
        late[0].cancel()  # a caller that goes away stops nothing
        release[1].set()
        assert await late[1] == b"answer 1"
        await until(3)
        release[2].set()
        assert await gone == b"answer 2"
        assert len(started) == 3

        async def failing() -> bytes:
            raise RuntimeError("database gone")

        broken = SharedScrape(failing)
        for _ in range(2):  # an error reaches its callers and the next call computes again
            with pytest.raises(RuntimeError, match="database gone"):
                await broken.get()

    asyncio.run(scenario())
