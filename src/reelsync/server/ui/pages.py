"""The web UI's pages, server-rendered: sign-in/out, jobs, a job with its tasks and controls,
agents, queues, sites and volumes.

Rules: every page reads through :mod:`reelsync.services` as the signed-in user, so it shows exactly
what the API would show them (admins everything; other users their own jobs and the volumes their
ACLs grant). The only writes are sign-in, sign-out and a job's pause/resume/abort/retry, each a
POST carrying the session's CSRF token, answered with a redirect (303) to a page.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reelsync.domain.records import Job
from reelsync.domain.status import JobStatus
from reelsync.errors import AuthenticationError, NotFoundError
from reelsync.server.dependencies import DatabaseDep
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
from reelsync.server.ui.sessions import COOKIE_NAME
from reelsync.services import agents, auth, jobs, queues, sites, tasks, volumes

__all__ = ["ACTIONS", "REFRESH_S", "allowed_actions", "router"]

router = APIRouter(prefix=UI_PREFIX, route_class=UiRoute, include_in_schema=False)

REFRESH_S = 5
JOBS_PAGE = 100
TASKS_PAGE = 200


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


@router.get("/", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    db: DatabaseDep,
    session: SessionDep,
    show: str = Query("active", pattern="^(active|all)$"),
    offset: int = Query(0, ge=0, le=jobs.MAX_OFFSET),
) -> Response:
    finished = None if show == "all" else False
    page = jobs.list_jobs(db, session.actor, finished=finished, limit=JOBS_PAGE, offset=offset)
    priority = {q.code: q.priority for q in queues.list_queues(db, session.actor)}
    return render(
        request,
        "jobs.html",
        session=session,
        page=page,
        show=show,
        priority=priority,
        refresh=REFRESH_S,
        page_size=JOBS_PAGE,
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    request: Request,
    job_id: str,
    db: DatabaseDep,
    session: SessionDep,
    offset: int = Query(0, ge=0, le=tasks.MAX_OFFSET),
) -> Response:
    job = jobs.get_job(db, session.actor, job_id)
    page = tasks.list_tasks(db, session.actor, job.id, limit=TASKS_PAGE, offset=offset)
    return render(
        request,
        "job.html",
        session=session,
        job=job,
        page=page,
        actions=[(name, ACTIONS[name].label) for name in allowed_actions(job)],
        refresh=REFRESH_S,
        page_size=TASKS_PAGE,
    )


@router.post("/jobs/{job_id}/{action}")
def job_action(
    request: Request,
    job_id: str,
    action: str,
    db: DatabaseDep,
    session: SessionDep,
    form: FormDep,
) -> Response:
    check_csrf(request, session, form)
    if action not in ACTIONS:
        raise NotFoundError(f"no job action {action!r}")
    job = jobs.update_job(db, session.actor, job_id, status=ACTIONS[action].target)
    return RedirectResponse(f"{UI_PREFIX}/jobs/{job.id}", 303)


@router.get("/agents", response_class=HTMLResponse)
def agents_page(request: Request, db: DatabaseDep, session: SessionDep) -> Response:
    views = agents.list_agents(db, session.actor)
    return render(request, "agents.html", session=session, agents=views, refresh=REFRESH_S)


@router.get("/queues", response_class=HTMLResponse)
def queues_page(request: Request, db: DatabaseDep, session: SessionDep) -> Response:
    rows = queues.list_queues(db, session.actor)
    return render(request, "queues.html", session=session, queues=rows, refresh=0)


@router.get("/sites", response_class=HTMLResponse)
def sites_page(request: Request, db: DatabaseDep, session: SessionDep) -> Response:
    site_rows = sites.list_sites(db, session.actor)
    volume_rows = volumes.list_volumes(db, session.actor)
    return render(
        request, "sites.html", session=session, sites=site_rows, volumes=volume_rows, refresh=0
    )
