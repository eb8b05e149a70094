"""A scheduling pass costs the same with 10,000 or 100,000 queued tasks (both databases); the
figures are printed (run with -s to see them). Also: submit-to-claim latency on an idle system."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from reelsync.db import Database
from reelsync.domain.records import Actor
from reelsync.scheduler import claim_transfers
from scheduler_world import World


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def _passes(world: World, n: int) -> tuple[float, int, int]:
    """Median seconds of ``n`` passes (each by a fresh idle agent), most statements in a pass,
    files granted."""
    times, statements, files = [], [], 0
    for _ in range(n):
        agent = world.agent("hq", dialable=False)
        with _statements(world.db) as seen:
            start = time.perf_counter()
            grants = claim_transfers(world.db, agent)
            times.append(time.perf_counter() - start)
        assert len(grants) == 4  # agent_concurrency
        statements.append(len(seen))
        files += sum(len(g.files) for g in grants)
    return statistics.median(times), max(statements), files


def test_pass_cost_does_not_grow_with_the_backlog(
    database: Database, admin: Actor, db_backend: str
) -> None:
    world = World(database, admin)
    world.setting("transfer_concurrency", 1000)
    world.setting("agent_concurrency", 4)
    world.setting("transfer_batch_files", 256)
    for port in range(7000, 7012):  # listeners with room for every pass below
        world.agent("london", port=port)
    world.job(10_000, prefix="small")
    small_s, small_sql, granted = _passes(world, 5)
    world.job(90_000, prefix="big")  # the backlog is now ~100,000 queued tasks
    big_s, big_sql, _ = _passes(world, 5)
    print(
        f"\n[{db_backend}] one pass granting 4 transfers x 256 files: "
        f"{small_s * 1000:.1f} ms with 10k queued, {big_s * 1000:.1f} ms with 100k queued "
        f"(at most {small_sql} and {big_sql} SQL statements)"
    )
    assert granted == 5 * 4 * 256
    assert big_sql <= small_sql
    # flat (generous: the machine is shared)
    assert big_s < 3 * small_s + 0.1


def test_submit_to_claim_on_an_idle_system(
    database: Database, admin: Actor, db_backend: str
) -> None:
    world = World(database, admin)
    sender = world.agent("hq", dialable=False)
    world.agent("london")
    samples = []
    for i in range(5):
        start = time.perf_counter()
        world.job([f"idle/{i}.mov"])
        grants = claim_transfers(world.db, sender)
        samples.append(time.perf_counter() - start)
        assert [f.src_path for g in grants for f in g.files] == [f"idle/{i}.mov"]
        world.setting("agent_concurrency", 5 + i)  # keep a slot free for the next job
    latency = statistics.median(samples)
    print(f"\n[{db_backend}] submit + first claim on an idle system: {latency * 1000:.1f} ms")
    assert latency < 1.0
