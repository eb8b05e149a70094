"""One file's report never holds back the others (issue 10): the agent cuts long error texts,
the control plane checks report items one by one and refuses only the bad ones."""

from __future__ import annotations

from typing import Any

from reelsync.agent.reporter import MAX_REPORTED_ERROR, Reporter, result_report
from reelsync.engine import FileResult
from reelsync.errors import NotFoundError, PathBusyError
from reelsync.server.agentapi.router import ReportBody, _report_items


def test_the_agent_cuts_long_errors() -> None:
    long_path = "proj001/" + "/".join(["d" * 250] * 16)
    item = result_report(FileResult.failed("t1", NotFoundError(f"projects:{long_path} missing")))
    assert len(item["error"]) <= MAX_REPORTED_ERROR
    assert item["error"].startswith("not_found: projects:proj001/")
    assert item["error"].endswith(" missing")
    assert "characters cut" in item["error"]


def test_the_control_plane_refuses_only_the_bad_items() -> None:
    body = ReportBody(
        results=[
            {"task_id": "a", "status": "done", "bytes_done": 3, "size": 3},
            {"task_id": "b", "status": "exploded"},
            {"task_id": "c", "status": "failed", "error": "x" * 50_000},
            {"status": "done"},
            {"task_id": "d", "status": "done", "bytes_done": -1},
        ]
    )
    items, rejected = _report_items(body)
    assert [i.task_id for i in items] == ["a", "c"]
    assert len(items[1].error or "") <= 2000  # cut, not refused
    assert [(r["index"], r["task_id"]) for r in rejected] == [(1, "b"), (3, None), (4, "d")]
    assert all(len(r["error"]) <= 500 for r in rejected)


def test_a_failures_code_reaches_the_control_plane_and_an_odd_one_is_dropped() -> None:
    """The code says how to count a failure (``path_busy`` is no try): it travels with the
    item, and a code no reelsync error has is dropped, never a reason to refuse the item."""
    busy = result_report(FileResult.failed("t1", PathBusyError("proj:a is being written")))
    assert busy["error_code"] == "path_busy"
    odd = {"task_id": "t2", "status": "failed", "error": "x", "error_code": "c" * 500}
    items, rejected = _report_items(ReportBody(results=[busy, odd]))
    assert rejected == []
    assert [(i.task_id, i.error_code) for i in items] == [("t1", "path_busy"), ("t2", None)]


class _Sink:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    async def report(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        self.batches.append(results)
        return {"applied": [], "revoked": [], "rejected": [{"index": 0, "task_id": "t1",
                                                            "error": "status: bad"}]}  # fmt: skip


async def test_a_refused_item_is_dropped_and_the_rest_flow() -> None:
    sink = _Sink()
    reporter = Reporter(sink, keepalive_s=3600)
    reporter.finished(FileResult.failed("t1", NotFoundError("gone")))
    reporter.finished(FileResult("t2", "done", 1, 1, "xxh3-128t:00"))
    assert await reporter.flush()
    assert reporter.pending_results == 0  # neither is sent again
    assert await reporter.flush()
    assert len(sink.batches) == 1
