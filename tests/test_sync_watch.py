"""Following jobs (``reelsync.sync.watch``): the first view of a job the caller has just read is
taken from that read, not asked for again; the long-polls start from its modified time."""

from __future__ import annotations

from typing import Any

from reelsync.sync.watch import watch_jobs

JOB = "0123456789abcdef01234567"


class RecordingSession:
    """Answers the job reads ``watch_jobs`` makes from a list of successive job states, and
    records each read (a plain read, or a long-poll with its parameters)."""

    def __init__(self, *states: dict[str, Any]) -> None:
        self.states = list(states)
        self.reads: list[tuple[str, dict[str, Any]]] = []

    def get_entity(self, entitytype: str, ref: str) -> dict[str, Any]:
        assert (entitytype, ref) == ("job", JOB)
        self.reads.append(("get", {}))
        return self.states.pop(0)

    def request(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        assert (method, path) == ("GET", f"/jobs/{JOB}")
        self.reads.append(("poll", dict(params or {})))
        return self.states.pop(0)


def job(status: str, modified: str | None) -> dict[str, Any]:
    return {"id": JOB, "name": "p download london", "status": status, "modified": modified}


def test_a_known_job_is_not_read_again_and_polls_start_from_its_modified_time() -> None:
    session = RecordingSession(job("done", "2026-01-01T00:00:02Z"))
    known = {JOB: job("queued", "2026-01-01T00:00:01Z")}
    [view] = watch_jobs(session, [JOB], show=False, details=False, known=known)  # type: ignore[arg-type]
    assert view.status == "done"
    assert session.reads == [("poll", {"wait": 10.0, "since": "2026-01-01T00:00:01Z"})]


def test_a_known_job_that_has_ended_is_returned_without_a_request() -> None:
    session = RecordingSession()
    known = {JOB: job("done", "2026-01-01T00:00:01Z")}
    [view] = watch_jobs(session, [JOB], show=False, details=False, known=known)  # type: ignore[arg-type]
    assert view.status == "done"
    assert session.reads == []


def test_a_known_job_without_a_modified_time_is_read() -> None:
    session = RecordingSession(job("done", "2026-01-01T00:00:02Z"))
    [view] = watch_jobs(  # type: ignore[arg-type]
        session, [JOB], show=False, details=False, known={JOB: job("queued", None)}
    )
    assert view.status == "done"
    assert session.reads == [("get", {})]
