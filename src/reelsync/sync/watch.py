"""Following jobs until they end, with a live progress bar (rich) for people. Rules: following
only reads, by long-poll (``GET /jobs/{id}?wait=&since=``: the server answers when the job
changed), not a timer; one bar per job (bytes when the size is known, else indeterminate) with
status, and the server's speed and ETA while it runs (none when paused or queued); it returns the
jobs' final views (with failed tasks) when every job has ended, or raises UnavailableError when
``timeout_s`` passes first. The bars (``reelsync.sync.bars``, rich) load only when drawn."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from reelsync.client import Session
from reelsync.domain.units import duration_text, rate_text
from reelsync.errors import UnavailableError
from reelsync.sync.jobview import JobView, job_view, view_of

if TYPE_CHECKING:  # rich loads only when bars are drawn (reelsync.sync.bars)
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["watch_jobs"]


def watch_jobs(
    session: Session,
    job_ids: Sequence[str],
    *,
    console: Console | None = None,
    poll_s: float = 10.0,
    timeout_s: float | None = None,
    show: bool = True,
    clock: Callable[[], float] = time.monotonic,
    details: bool = True,
    known: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[JobView]:
    """Follow the jobs until each has ended (done, failed, aborted); draw bars when ``show``.
    ``poll_s``: the longest a long-poll waits for a change. The final views carry task counts
    and failed tasks; with ``details`` False, only those of jobs that did not end done (a done
    job's last view is returned as it is, saving a request per task status). ``known``: jobs the
    caller has just read (by id), e.g. after submitting: their first view is taken from there
    instead of being asked for again (one with no modified time is asked for)."""
    deadline = None if timeout_s is None else clock() + timeout_s
    bars: dict[str, TaskID] = {}
    known = known or {}
    views = [
        view_of(dict(known[job_id]), {}, ())
        if job_id in known and known[job_id].get("modified")
        else job_view(session, job_id, with_tasks=False)
        for job_id in job_ids
    ]
    with _bars(console) if show else _NoBars() as progress:
        while True:
            for view in views:
                total = float(view.size) if view.size else None
                speed = rate_text(view.current_speed, idle="")
                eta = duration_text(view.eta_s, unknown="")
                if view.id not in bars:
                    bars[view.id] = progress.add_task(
                        view.name, total=total, status=view.status, speed=speed, eta=eta
                    )
                progress.update(
                    bars[view.id],
                    total=total,
                    completed=view.bytes_done,
                    status=view.status,
                    speed=speed,
                    eta=eta,
                )
            if all(v.ended for v in views):
                return [
                    v if not details and v.status == "done" else job_view(session, v.id)
                    for v in views
                ]
            if deadline is not None and clock() > deadline:
                raise UnavailableError(
                    f"jobs still running after {timeout_s:.0f} s: "
                    + ", ".join(f"{v.name} ({v.status})" for v in views if not v.ended)
                )
            views = _next(session, views, poll_s, deadline, clock)


def _next(
    session: Session,
    views: list[JobView],
    poll_s: float,
    deadline: float | None,
    clock: Callable[[], float],
) -> list[JobView]:
    """The views after the first running job changed (long-poll; at most ``poll_s``)."""
    follow = next(v for v in views if not v.ended)
    wait = poll_s if deadline is None else max(0.0, min(poll_s, deadline - clock()))
    params: dict[str, str | float] = {"wait": round(wait, 3)}
    if follow.modified:
        params["since"] = follow.modified
    else:
        time.sleep(min(wait, 0.5))  # a server without modified times: poll
    changed = view_of(session.request("GET", f"/jobs/{follow.id}", params=params), {}, ())
    return [
        changed if v.id == follow.id else job_view(session, v.id, with_tasks=False) for v in views
    ]


def _bars(console: Console | None) -> Progress:
    from reelsync.sync.bars import job_bars

    return job_bars(console)


class _NoBars:
    """The Progress interface, drawing nothing (for --json and tests)."""

    def __enter__(self) -> _NoBars:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, **fields: object) -> TaskID:
        return cast("TaskID", 0)

    def update(self, task_id: TaskID, **fields: object) -> None:
        return None
