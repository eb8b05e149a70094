"""reelsync.server.workers without a server: how many workers, the link between them (a write in
one wakes the long-polls and job followers of another), and the sign-in throttle they share (a
forked process fails sign-ins, the parent sees them). The real
``server run --workers 2`` runs in tests/test_scheduler_replicas.py."""

from __future__ import annotations

import asyncio
import copy
import multiprocessing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from reelsync.config import ServerConfig
from reelsync.errors import ConfigError
from reelsync.pki import TicketSigner
from reelsync.server.agentapi import AgentHub
from reelsync.server.agentapi.relay import FileOpRelay
from reelsync.server.controlplane import _listening
from reelsync.server.jobbell import JobBell
from reelsync.server.workers import (
    RING_JOBS,
    WAKE_AGENTS,
    SharedSignInThrottle,
    SiblingLink,
    Worker,
    worker_count,
)

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/x"


def _config(url: str) -> ServerConfig:
    return ServerConfig(data_dir=Path("/nowhere"), database_url=url)


def test_how_many_workers() -> None:
    assert worker_count(_config("sqlite:///x.db"), None) == 1
    assert worker_count(_config(PG), 3) == 3
    assert 1 <= worker_count(_config(PG), None) <= 8
    with pytest.raises(ConfigError, match="several workers need PostgreSQL"):
        worker_count(_config("sqlite:///x.db"), 2)
    with pytest.raises(ConfigError, match="1 or more"):
        worker_count(_config(PG), 0)


def test_a_worker_tells_the_others_not_itself() -> None:
    link = SiblingLink(3)
    try:
        link.bind(0)
        link.send(WAKE_AGENTS)
        link.send(RING_JOBS)
        assert link.drain() == set()  # not to itself
        for index in (1, 2):
            link.bind(index)
            assert link.drain() == {WAKE_AGENTS, RING_JOBS}
            assert link.drain() == set()
    finally:
        link.close()


def _fail_twice(throttle: SharedSignInThrottle) -> None:
    throttle.failed("203.0.113.7", now=100.0)
    throttle.failed("203.0.113.7", now=100.0)


def test_the_throttle_is_shared_by_forked_workers() -> None:
    throttle = SharedSignInThrottle(burst=2, per_s=1.0, slots=64)
    child = multiprocessing.get_context("fork").Process(target=_fail_twice, args=(throttle,))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert throttle.wait_s("203.0.113.7", now=100.0) == pytest.approx(1.0)
    assert throttle.wait_s("203.0.113.8", now=100.0) == 0.0  # another address
    assert throttle.wait_s("203.0.113.7", now=101.0) == 0.0  # refilled


async def test_a_write_in_one_worker_wakes_the_long_polls_and_followers_of_another(
    tmp_path: Path,
) -> None:
    link = SiblingLink(2)
    hub = AgentHub(
        tls_dir=tmp_path, signer=TicketSigner.load_or_create(tmp_path), relay=FileOpRelay(_none)
    )
    app = SimpleNamespace(state=SimpleNamespace(job_bell=JobBell()))
    link.bind(1)
    worker = Worker(1, 2, link, SharedSignInThrottle(slots=8))
    try:
        with _listening(worker, hub, app):  # type: ignore[arg-type]
            parked = asyncio.create_task(hub.relay.wait("agent-1", 30))
            following = asyncio.create_task(app.state.job_bell.wait(30))
            await asyncio.sleep(0)
            first = copy.copy(link)  # the same sockets, as the forked worker 1 has them
            first.bind(0)  # worker 1 takes a submit, then an agent's report
            first.send(WAKE_AGENTS)
            first.send(RING_JOBS)
            await asyncio.wait_for(asyncio.gather(parked, following), timeout=10)
    finally:
        link.close()


def _none() -> Any:
    return None
