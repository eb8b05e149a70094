"""Server push for the web UI's job pages (Server-Sent Events): ``/ui/events/jobs`` says when the
signed-in user's jobs change, ``/ui/events/jobs/{id}`` when that job does; the page then fetches
itself again (``static/ui.js``). Pages without ``EventSource`` keep the 5 s refresh.

Rules: a stream reads through :mod:`reelsync.services` as the signed-in user (what the list or the
job page would show), once per :data:`POLL_S`, and sends ``event: change`` only when what it
watches changed; a comment every :data:`KEEPALIVE_S` keeps proxies from closing it. Every tick
checks the session again (:func:`reelsync.services.auth.session_actor`) and reads as the user it
names now: signing out, revoking the session's API key, disabling the user or the cookie expiring
ends the stream at the next tick with ``event: ended`` (the page stops listening and reloads, which
leads to the sign-in page); so does the job becoming invisible to them (``event: change``, and the
reload shows why). It also ends after :data:`STREAM_S` (the browser reconnects after ``retry``),
when the browser goes away, or at once when the server is stopping (its stop hook), so it never
holds a shutdown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from reelsync.db import Database
from reelsync.domain.records import Actor
from reelsync.errors import AuthenticationError, ReelsyncError
from reelsync.server.dependencies import DatabaseDep
from reelsync.server.ui.guard import UI_PREFIX, PageSession, SessionDep, UiRoute
from reelsync.services import auth, jobs

__all__ = ["KEEPALIVE_S", "POLL_S", "STREAM_S", "Stopping", "router"]

router = APIRouter(prefix=f"{UI_PREFIX}/events", route_class=UiRoute, include_in_schema=False)

POLL_S = 1.0
KEEPALIVE_S = 15.0
STREAM_S = 300.0
RETRY_MS = 2000


class Stopping:
    """Set by the server's stop hook: every open stream ends at its next tick."""

    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def _jobs_state(db: Database, actor: Actor) -> object:
    page = jobs.list_jobs(db, actor, limit=100)
    return page.total, [(j.id, j.status, j.progress, j.bytes_done, j.tasks) for j in page.items]


def _job_state(db: Database, actor: Actor, job_id: str) -> object:
    job = jobs.get_job(db, actor, job_id)
    return job.status, job.progress, job.bytes_done, job.tasks, job.modified


ENDED = b"event: ended\ndata: {}\n\n"
CHANGE = b"event: change\ndata: {}\n\n"


class _Ended(Exception):
    """The session behind a stream ended (signed out, key revoked, user disabled, expired)."""


def _watch(
    db: Database, session: PageSession, state: Callable[[Database, Actor], object]
) -> Callable[[], object]:
    """``state`` read as the user the session names at this moment; :class:`_Ended` when the
    session no longer lets anyone in."""

    def read() -> object:
        if session.claims.expires <= time.time():
            raise _Ended
        try:
            actor = auth.session_actor(db, session.claims.session_id)
        except AuthenticationError:
            raise _Ended from None
        return state(db, actor)

    return read


def _stream(
    request: Request, db: Database, session: PageSession, state: Callable[[Database, Actor], object]
) -> StreamingResponse:
    stopping: Stopping = request.app.state.ui_stopping
    read = _watch(db, session, state)

    async def events() -> AsyncIterator[bytes]:
        yield f"retry: {RETRY_MS}\n\n".encode()
        last = await run_in_threadpool(read)
        started = quiet = time.monotonic()
        while not stopping.stopped and time.monotonic() - started < STREAM_S:
            await asyncio.sleep(POLL_S)
            if stopping.stopped or await request.is_disconnected():
                return
            try:
                now = await run_in_threadpool(read)
            except _Ended:
                yield ENDED
                return
            except ReelsyncError:  # the job is gone or no longer theirs: the page says why
                yield CHANGE
                return
            if now != last:
                last, quiet = now, time.monotonic()
                yield CHANGE
            elif time.monotonic() - quiet > KEEPALIVE_S:
                quiet = time.monotonic()
                yield b": keep-alive\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )


@router.get("/jobs")
def job_list_events(request: Request, db: DatabaseDep, session: SessionDep) -> StreamingResponse:
    return _stream(request, db, session, _jobs_state)


@router.get("/jobs/{job_id}")
def job_events(
    request: Request, job_id: str, db: DatabaseDep, session: SessionDep
) -> StreamingResponse:
    job = jobs.get_job(db, session.actor, job_id)  # a 404 page for a job the user cannot see
    return _stream(request, db, session, lambda db, actor: _job_state(db, actor, job.id))
