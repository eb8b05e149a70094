"""The web UI's job pages, server-rendered: sign-in/out, the jobs list (filters and search), a job
(its notes, failed files first with their errors, one row per folder or image sequence with a
drill-down to its files, the history of what each sync added) and its controls.

Rules: every page reads through :mod:`reelsync.services` as the signed-in user, so it shows exactly
what the API would show them (admins everything; other users their own jobs). Writes are sign-in,
sign-out, a job's pause/resume/abort/retry and the retry of one failed file, each a POST carrying
the session's CSRF token, answered with a redirect (303) to a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reelsync.db import Database
from reelsync.domain.records import Actor, Job
from reelsync.domain.status import JOB_ACTIVE, JobStatus
from reelsync.errors import AuthenticationError, NotFoundError, ValidationError
from reelsync.server.dependencies import DatabaseDep, ServerConfigDep
from reelsync.server.ui.guard import (
    LOGIN_PATH,
    UI_PREFIX,
    FormDep,
    SessionDep,
    UiRoute,
    check_csrf,
    clear_session,
    page_session,
    render,
    safe_next,
)
from reelsync.server.ui.jobview import job_contents, waiting_notes
from reelsync.server.ui.sessions import COOKIE_NAME
from reelsync.services import auth, jobs, queues, sites, tasks, users
from reelsync.services.paging import COUNT_CAP

__all__ = ["ACTIONS", "REFRESH_S", "SHOWS", "allowed_actions", "router"]

router = APIRouter(prefix=UI_PREFIX, route_class=UiRoute, include_in_schema=False)

REFRESH_S = 5
JOBS_PAGE = 100


@dataclass(frozen=True, slots=True)
class Action:
    label: str
    target: JobStatus
    from_statuses: frozenset[JobStatus]


_J = JobStatus
ACTIONS = {
    "pause": Action("Pause", _J.PAUSED, frozenset({_J.INIT, _J.WAITING, _J.RUNNING})),
    "resume": Action("Resume", _J.WAITING, frozenset({_J.PAUSED})),
    "retry": Action("Retry", _J.WAITING, frozenset({_J.FAILED, _J.ABORTED})),
    "abort": Action(
        "Abort", _J.ABORTED, frozenset({_J.INIT, _J.WAITING, _J.RUNNING, _J.PAUSED, _J.FAILED})
    ),
}

# The jobs list's status choices: "active" is what `reelsync job list --active` lists.
SHOWS = {
    "active": sorted(s.value for s in JOB_ACTIVE),
    "failed": [_J.FAILED.value],
    "done": [_J.DONE.value],
    "all": [],
}


# What a send from the transfer page says on the page it lands on (``?done=CODE``).
SENT = {
    "sent": "Sent: the files were added to this job.",
    "sent-default": "Sent. The project has no queue of its own: they went to the default queue.",
    "sent-moved": "Sent. The day's job moved to the queue you picked.",
}


def allowed_actions(job: Job) -> list[str]:
    """The controls offered for ``job`` in its status (the service checks again on POST)."""
    return [name for name, action in ACTIONS.items() if job.status in action.from_statuses]


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, db: DatabaseDep, next: str | None = None) -> Response:
    try:
        page_session(request, db)
    except AuthenticationError:
        return render(request, "login.html", next=safe_next(next), email="", error=None)
    return RedirectResponse(safe_next(next), 303)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, db: DatabaseDep, form: FormDep) -> Response:
    email = form.get("email", "").strip()
    target = safe_next(form.get("next"))
    signer = request.app.state.ui.signer
    try:
        opened = auth.open_session(
            db, form.get("api_key", ""), email=email or None, ttl_s=signer.ttl_s
        )
    except AuthenticationError as exc:
        return render(
            request, "login.html", status=401, next=target, email=email, error=exc.message
        )
    response = RedirectResponse(target, 303)
    response.set_cookie(
        COOKIE_NAME,
        signer.issue(opened.id, int(opened.expires_at.timestamp())),
        max_age=signer.ttl_s,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
def logout(request: Request, db: DatabaseDep, session: SessionDep, form: FormDep) -> Response:
    check_csrf(request, session, form)
    auth.close_session(db, session.claims.session_id)
    response = RedirectResponse(LOGIN_PATH, 303)
    clear_session(response)
    return response


def _day(text: str | None, what: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    except ValueError:
        raise ValidationError(f"{what} must be a date like 2026-11-27, got {text!r}") from None


@dataclass(frozen=True, slots=True)
class JobFilters:
    show: str
    queue: str
    user: str
    site: str
    since: str
    until: str
    q: str

    def query(self, **changes: str) -> dict[str, str]:
        values = {
            "show": self.show, "queue": self.queue, "user": self.user, "site": self.site,
            "from": self.since, "to": self.until, "q": self.q,
        }  # fmt: skip
        values.update(changes)
        return {k: v for k, v in values.items() if v}


def _filter_choices(db: Database, actor: Actor, queue_codes: list[str]) -> dict[str, list[str]]:
    return {
        "queues": queue_codes,
        "sites": [s.code for s in sites.list_sites(db, actor)],
        "users": [u.email for u in users.list_users(db, actor)] if actor.is_admin else [],
    }


@router.get("/", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    db: DatabaseDep,
    session: SessionDep,
    show: str = Query("active", pattern="^(active|failed|done|all)$"),
    queue: str = Query("", max_length=255),
    user: str = Query("", max_length=255),
    site: str = Query("", max_length=255),
    since: str = Query("", alias="from", max_length=10),
    until: str = Query("", alias="to", max_length=10),
    q: str = Query("", max_length=200),
    offset: int = Query(0, ge=0, le=jobs.MAX_OFFSET),
    after: str | None = Query(None, max_length=64),
) -> Response:
    filters = JobFilters(show, queue, user, site, since, until, q)
    end = _day(until, "to")
    with db.snapshot():  # the page and its filter choices: one read transaction
        page = jobs.list_jobs(
            db,
            session.actor,
            status=SHOWS[show] or None,
            queue=queue or None,
            user=(user or None) if session.actor.is_admin else None,
            site=site or None,
            since=_day(since, "from"),
            until=end + timedelta(days=1) if end else None,
            search=q or None,
            limit=JOBS_PAGE,
            offset=offset,
            after=after,
        )
        known = queues.list_queues(db, session.actor)
        choices = _filter_choices(db, session.actor, [q.code for q in known])
    priority = {q.code: q.priority for q in known}
    return render(
        request,
        "jobs.html",
        session=session,
        page=page,
        show=show,
        filters=filters,
        choices=choices,
        priority=priority,
        refresh=REFRESH_S,
        events=f"{UI_PREFIX}/events/jobs",
        page_size=JOBS_PAGE,
        notice=SENT.get(request.query_params.get("done") or ""),
        after=after,
        count_cap=f"{COUNT_CAP:,}",
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    request: Request,
    job_id: str,
    db: DatabaseDep,
    session: SessionDep,
    folder: str | None = Query(None, max_length=4096),
) -> Response:
    job = jobs.get_job(db, session.actor, job_id)
    contents = job_contents(db, session.actor, job, folder=folder)
    return render(
        request,
        "job.html",
        session=session,
        job=job,
        contents=contents,
        folder=folder,
        notes=waiting_notes(db, session.actor, job, contents.counts),
        actions=[(name, ACTIONS[name].label) for name in allowed_actions(job)],
        refresh=REFRESH_S,
        events=f"{UI_PREFIX}/events/jobs/{job.id}",
        notice=SENT.get(request.query_params.get("done") or ""),
    )


@router.post("/jobs/{job_id}/tasks/{task_id}/retry")
def retry_file(
    request: Request, job_id: str, task_id: str, db: DatabaseDep, session: SessionDep, form: FormDep
) -> Response:
    check_csrf(request, session, form)
    job = jobs.get_job(db, session.actor, job_id)
    tasks.update_tasks(db, session.actor, job.id, [{"id": task_id, "status": "queued"}])
    return RedirectResponse(f"{UI_PREFIX}/jobs/{job.id}", 303)


@router.post("/jobs/{job_id}/{action}")
def job_action(
    request: Request,
    job_id: str,
    action: str,
    db: DatabaseDep,
    session: SessionDep,
    form: FormDep,
    config: ServerConfigDep,
) -> Response:
    check_csrf(request, session, form)
    if action not in ACTIONS:
        raise NotFoundError(f"no job action {action!r}")
    target = ACTIONS[action].target
    job = jobs.update_job(db, session.actor, job_id, status=target, fence_s=config.fence_s)
    return RedirectResponse(f"{UI_PREFIX}/jobs/{job.id}", 303)
