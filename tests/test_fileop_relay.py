"""The file-operation relay on a real database (SQLite and PostgreSQL), agents played by this test
through the relay's own long-poll calls: an operation handed to an agent that stops polling goes
to the site's next agent, and around again; an answer counts once, only from an agent it was
handed to; on PostgreSQL an agent long-polling ANOTHER process (a second relay on the same
database) takes the operation from the mailbox and its answer reaches the asking process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.fileops import FileOp, FileRequest
from reelsync.domain.records import Actor
from reelsync.errors import NotFoundError
from reelsync.server.agentapi import FileOpRelay
from scheduler_world import World


def _request(db: Database) -> FileRequest:
    with db.session() as session:
        volume_id = session.scalar(select(m.Volume.id).where(m.Volume.code == "projects"))
    assert volume_id is not None
    return FileRequest(FileOp.EXISTS, volume_id, "projects", "shot/a.exr", site_code="hq")


async def _poll_until(relay: FileOpRelay, agent: str, seconds: float) -> list[dict[str, Any]]:
    """Play ``agent``'s work long-poll on ``relay`` until it is handed something."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        taken = await relay.collect(agent)
        if taken:
            return taken
        await relay.wait(agent, 0.2)
    return []


async def test_an_operation_goes_to_the_next_agent_when_its_holder_stops_polling(
    database: Database, admin: Actor
) -> None:
    world = World(database, admin)
    first, second = world.agent("hq"), world.agent("hq")
    relay = FileOpRelay(lambda: database, timeout_s=30)
    for agent in (first, second):
        await relay.collect(agent)  # both poll here ...
    asking = asyncio.create_task(relay.run(_request(database)))
    holder, handed = "", []
    for _ in range(50):
        for agent in (first, second):
            if taken := await relay.collect(agent):
                holder, handed = agent, taken
        if handed:
            break
        await asyncio.sleep(0.1)
    assert len(handed) == 1, handed
    op_id = handed[0]["id"]
    # ... then the holder dies with the operation (it never polls again, never answers): the
    # other agent, still polling, is handed the same operation within a few seconds
    other = second if holder == first else first
    again = await _poll_until(relay, other, 10)
    assert [op["id"] for op in again] == [op_id]
    assert not asking.done()
    assert await relay.deliver(other, op_id, {"id": op_id, "result": True})
    assert await asyncio.wait_for(asking, 5) is True
    assert not await relay.deliver(holder, op_id, {"id": op_id, "result": False})  # once


async def test_only_an_agent_handed_the_operation_may_answer_it(
    database: Database, admin: Actor
) -> None:
    world = World(database, admin)
    agent = world.agent("hq")
    stranger = world.agent("london")
    relay = FileOpRelay(lambda: database, timeout_s=30)
    await relay.collect(agent)
    asking = asyncio.create_task(relay.run(_request(database)))
    [op] = await _poll_until(relay, agent, 5)
    assert not await relay.deliver(stranger, op["id"], {"id": op["id"], "result": False})
    error = {"code": "not_found", "message": "no such file"}
    assert await relay.deliver(agent, op["id"], {"id": op["id"], "error": error})
    with pytest.raises(NotFoundError, match="no such file"):  # rebuilt as the same class
        await asyncio.wait_for(asking, 5)


async def test_an_agent_polling_another_process_answers_through_the_mailbox(
    database: Database, admin: Actor
) -> None:
    if database.is_sqlite:  # one process only: nothing crosses
        assert not FileOpRelay(lambda: database).shared
        return
    world = World(database, admin)
    agent = world.agent("hq")
    asked_here = FileOpRelay(lambda: database, timeout_s=30)  # the process the user called
    polled_there = FileOpRelay(lambda: database, timeout_s=30)  # the one the agent polls
    asking = asyncio.create_task(asked_here.run(_request(database)))
    [op] = await _poll_until(polled_there, agent, 10)
    assert op["op"] == "exists"
    assert await polled_there.deliver(agent, op["id"], {"id": op["id"], "result": True})
    assert await asyncio.wait_for(asking, 10) is True
    with database.session() as session:  # the mailbox row is gone
        assert session.scalar(select(m.FileOp.id)) is None
