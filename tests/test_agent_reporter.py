"""The agent's batched reports: progress coalesced per file, results never dropped while the
control plane is unreachable, keepalives for files still in flight, progress at most every
progress_s."""

from __future__ import annotations

from typing import Any

from reelsync.agent.reporter import Reporter
from reelsync.engine import FileResult
from reelsync.errors import ConnectionLostError, IntegrityError


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.down = False

    async def report(self, results: list[dict[str, Any]]) -> None:
        if self.down:
            raise ConnectionLostError("cannot reach https://cp: connection refused")
        self.batches.append(results)


async def test_progress_is_coalesced_and_results_survive_an_outage() -> None:
    sink = Sink()
    reporter = Reporter(sink, keepalive_s=3600)
    reporter.started(["t1", "t2"], [100, 50])
    reporter.progress("t1", 10, 100)
    reporter.progress("t1", 60, 100)
    assert await reporter.flush()
    assert sink.batches[-1] == [
        {"task_id": "t1", "status": "executing", "bytes_done": 60, "size": 100},
        {"task_id": "t2", "status": "executing", "bytes_done": 0, "size": 50},
    ]
    assert await reporter.flush()  # nothing new: nothing sent
    assert len(sink.batches) == 1

    sink.down = True
    reporter.finished(FileResult("t1", "done", 100, 100, "xxh3-128t:ab"))
    reporter.finished(FileResult.failed("t2", IntegrityError("source changed"), size=50, sent=7))
    assert not await reporter.flush()
    assert reporter.pending_results == 2
    sink.down = False
    assert await reporter.flush()
    assert reporter.pending_results == 0
    assert sink.batches[-1] == [
        {"task_id": "t1", "status": "done", "bytes_done": 100, "size": 100,
         "digest": "xxh3-128t:ab"},
        {"task_id": "t2", "status": "failed", "bytes_done": 7, "size": 50,
         "error": "integrity: source changed", "retryable": True, "error_code": "integrity"},
    ]  # fmt: skip
    assert not reporter.is_live("t1")


async def test_files_in_flight_are_kept_alive() -> None:
    sink = Sink()
    reporter = Reporter(sink, keepalive_s=0.0)
    reporter.started(["t1"], [None])
    assert await reporter.flush()
    assert await reporter.flush()  # no progress, but the lease is renewed
    assert [b[0]["status"] for b in sink.batches] == ["executing", "executing"]


async def test_revoked_tasks_are_dropped_and_announced() -> None:
    class Revoking(Sink):
        async def report(self, results: list[dict[str, Any]]) -> dict[str, Any]:
            await super().report(results)
            return {"applied": [], "revoked": ["t1"]}

    seen: list[set[str]] = []
    sink = Revoking()
    reporter = Reporter(sink, keepalive_s=0.0, on_revoked=seen.append)
    reporter.started(["t1", "t2"], [10, 10])
    assert await reporter.flush()
    assert seen == [{"t1"}]
    assert not reporter.is_live("t1")
    assert reporter.is_live("t2")
    assert await reporter.flush()
    assert [item["task_id"] for item in sink.batches[-1]] == ["t2"]


async def test_the_transfers_held_include_results_not_yet_reported() -> None:
    sink = Sink()
    reporter = Reporter(sink, keepalive_s=3600)
    reporter.started(["t1"], [10], transfer_id="a")
    reporter.started(["t2"], [10], transfer_id="b")
    reporter.finished(FileResult("t2", "done", 10, 10, None))
    assert reporter.transfer_ids() == {"a", "b"}
    sink.down = True
    reporter.finished(FileResult("t1", "done", 10, 10, None))
    assert not await reporter.flush()
    assert reporter.transfer_ids() == {"a", "b"}  # the control plane has not taken them yet
    sink.down = False
    assert await reporter.flush()
    assert reporter.transfer_ids() == set()


async def test_progress_goes_at_most_every_progress_s_and_results_at_once() -> None:
    sink = Sink()
    reporter = Reporter(sink, keepalive_s=3600, progress_s=3600)
    reporter.started(["t1", "t2"], [100, 50])
    assert await reporter.flush()  # a file that starts is said at once
    reporter.progress("t1", 60, 100)
    reporter.progress("t2", 10, 50)
    assert await reporter.flush()
    assert len(sink.batches) == 1  # progress younger than progress_s waits: nothing sent
    reporter.finished(FileResult("t2", "done", 50, 50, "xxh3-128t:cd"))
    assert await reporter.flush()
    assert sink.batches[-1] == [
        {"task_id": "t2", "status": "done", "bytes_done": 50, "size": 50,
         "digest": "xxh3-128t:cd"},
    ]  # fmt: skip
    reporter.progress_s = 0.0  # t1's progress is due now, and kept until then
    assert await reporter.flush()
    assert sink.batches[-1] == [
        {"task_id": "t1", "status": "executing", "bytes_done": 60, "size": 100},
    ]
