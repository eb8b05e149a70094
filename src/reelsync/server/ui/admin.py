"""The web UI's set-up pages: sites, agents (enrollment tokens, revoke, bandwidth limit), volumes
(paths per site, access grants), queues (priority, pause, weight, mail recipients), users (role,
disable, API keys, grants, mail opt-out) and the workspace settings with the outbox's state.

Rules: each page reads through :mod:`reelsync.services` as the signed-in user, so it shows what
the API would show them; the forms are for admins only (the services refuse anyone else, and the
pages offer no form to them). A POST carries the CSRF token; success redirects (303) to the page
with a fixed notice (``?done=CODE``, never text from the request); a refused change renders the
page again with the error (its HTTP status). A secret (an API key, an enrollment token) is shown
once, in the answer to the POST that made it, and never again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.domain.records import Actor, Role, User
from reelsync.domain.units import MIB
from reelsync.errors import NotFoundError, ReelsyncError, ValidationError
from reelsync.server.dependencies import DatabaseDep
from reelsync.server.ui.guard import (
    UI_PREFIX,
    FormDep,
    PageSession,
    SessionDep,
    UiRoute,
    check_csrf,
    render,
)
from reelsync.services import (
    acls,
    agents,
    apikeys,
    outbox,
    queues,
    servers,
    settings,
    sites,
    users,
    volumes,
)

__all__ = ["NOTICES", "QUEUE_SETTINGS", "enroll_line", "router"]

router = APIRouter(prefix=UI_PREFIX, route_class=UiRoute, include_in_schema=False)

NOTICES = {
    "site-created": "Site created.",
    "site-saved": "Site saved.",
    "agent-saved": "Agent saved.",
    "agent-revoked": "Agent revoked: it gets no more work and its peers refuse it.",
    "volume-created": "Volume created.",
    "volume-saved": "Volume saved.",
    "grant-added": "Access granted.",
    "grant-removed": "Access removed.",
    "queue-created": "Queue created.",
    "queue-saved": "Queue saved.",
    "user-created": "User created.",
    "user-saved": "User saved.",
    "key-revoked": "API key revoked.",
    "setting-saved": "Setting saved.",
    "setting-removed": "Setting removed.",
}

# What the queue form edits besides the queue itself (queue-scoped settings).
QUEUE_SETTINGS = {
    "queue_weight": "Weight",
    "email_job_done_recipients": "Mail when done",
    "email_job_failed_recipients": "Mail when failed",
}

ENROLL_DATA_DIR = "/var/lib/reelsync-agent"


def enroll_line(config: ServerConfig, token: str) -> str:
    """The exact command that enrolls a machine with ``token`` (the CA file is downloaded from
    this page as ``ca.crt``)."""
    parts = ["reelsync agent enroll", f"--server {config.url}"]
    if config.tls:
        parts.append("--ca-file ca.crt")
    parts += [f"--token {token}", f"--data-dir {ENROLL_DATA_DIR}"]
    return " ".join(parts)


def _flag(form: Mapping[str, str], name: str) -> bool:
    return form.get(name, "") in ("on", "true", "1", "yes")


def _text(form: Mapping[str, str], name: str) -> str:
    return form.get(name, "").strip()


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValidationError(f"{what} must be a number, got {text!r}") from None


def _whole(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValidationError(f"{what} must be a whole number, got {text!r}") from None


@dataclass(frozen=True, slots=True)
class AdminPage:
    template: str
    title: str
    context: Callable[[Database, Actor], dict[str, Any]]


def _sites_context(db: Database, actor: Actor) -> dict[str, Any]:
    return {"sites": sites.list_sites(db, actor)}


def _agents_context(db: Database, actor: Actor) -> dict[str, Any]:
    return {"agents": agents.list_agents(db, actor), "sites": sites.list_sites(db, actor)}


def _volumes_context(db: Database, actor: Actor) -> dict[str, Any]:
    rows = volumes.list_volumes(db, actor)
    grants = acls.list_acls(db, actor) if actor.is_admin else []
    people = users.list_users(db, actor) if actor.is_admin else []
    return {
        "volumes": rows,
        "sites": sites.list_sites(db, actor),
        "grants": grants,
        "people": people,
    }


def _queues_context(db: Database, actor: Actor) -> dict[str, Any]:
    rows = queues.list_queues(db, actor)
    extra = {
        q.code: settings.list_settings(db, actor, scope="queue", target=q.code)
        for q in rows
        if actor.is_admin
    }
    return {"queues": rows, "queue_settings": extra, "setting_labels": QUEUE_SETTINGS}


def _users_context(db: Database, actor: Actor) -> dict[str, Any]:
    people = users.list_users(db, actor) if actor.is_admin else [users.get_user(db, actor, "me")]
    keys = {u.id: apikeys.list_api_keys(db, actor, u.id) for u in people}
    prefs = {u.id: users.get_preferences(db, actor, u.id) for u in people}
    grants = acls.list_acls(db, actor, user=None if actor.is_admin else actor.email)
    return {
        "people": people,
        "keys": keys,
        "prefs": prefs,
        "grants": grants,
        "roles": [r.value for r in Role],
        "volumes": volumes.list_volumes(db, actor),
    }


def _settings_context(db: Database, actor: Actor) -> dict[str, Any]:
    own = settings.list_settings(db, actor, scope="workspace")
    return {
        "workspace_settings": own,
        "outbox": outbox.outbox_status(db, actor) if actor.is_admin else None,
    }


PAGES = {
    "sites": AdminPage("sites.html", "Sites", _sites_context),
    "agents": AdminPage("agents.html", "Agents", _agents_context),
    "volumes": AdminPage("volumes.html", "Volumes", _volumes_context),
    "queues": AdminPage("queues.html", "Queues", _queues_context),
    "users": AdminPage("users.html", "Users", _users_context),
    "settings": AdminPage("settings.html", "Settings", _settings_context),
}


def show(
    request: Request,
    db: Database,
    session: PageSession,
    name: str,
    *,
    status: int = 200,
    error: ReelsyncError | None = None,
    **extra: Any,
) -> HTMLResponse:
    page = PAGES[name]
    config: ServerConfig = request.app.state.config
    done = request.query_params.get("done")
    return render(
        request,
        page.template,
        status=status,
        session=session,
        notice=NOTICES.get(done or ""),
        error=error,
        smtp_configured=config.smtp.host is not None,
        refresh=5 if name == "agents" and error is None and not extra else 0,
        **page.context(db, session.actor),
        **extra,
    )


def _change(
    request: Request,
    db: Database,
    session: PageSession,
    form: Mapping[str, str],
    page: str,
    notice: str,
    change: Callable[[], object],
) -> Response:
    """Apply ``change`` after the CSRF check, in one transaction (a form that changes a row and
    its settings changes all or nothing); back to ``page`` with ``notice``, or the page again with
    the error."""
    check_csrf(request, session, form)
    try:
        with db.transaction():
            change()
    except ReelsyncError as exc:
        return show(request, db, session, page, status=exc.http_status, error=exc)
    return RedirectResponse(f"{UI_PREFIX}/{page}?done={notice}", 303)


def _page_route(name: str) -> Callable[[Request, Database, PageSession], Response]:
    """The GET route of set-up page ``name``."""

    def page(request: Request, db: DatabaseDep, session: SessionDep) -> Response:
        return show(request, db, session, name)

    page.__name__ = f"{name}_page"
    return page


for _name in PAGES:
    router.add_api_route(
        f"/{_name}", _page_route(_name), methods=["GET"], response_class=HTMLResponse
    )


@dataclass(frozen=True, slots=True)
class FormChange:
    """What a set-up form's change works with: the database, the signed-in user, the form's
    fields and the address's parameters (``ref``, ``server_id``, ...)."""

    db: Database
    actor: Actor
    form: Mapping[str, str]
    params: Mapping[str, str]

    def text(self, name: str) -> str:
        return _text(self.form, name)

    def flag(self, name: str) -> bool:
        return _flag(self.form, name)


def _back_to(form: Mapping[str, str]) -> str:
    """The page a grant form came from (the users or the volumes page)."""
    return "users" if form.get("back") == "users" else "volumes"


FromForm = str | Callable[[Mapping[str, str]], str]  # a fixed value, or one chosen by the form


def form_route(
    path: str, page: FromForm, notice: FromForm
) -> Callable[[Callable[[FormChange], object]], Callable[[FormChange], object]]:
    """Register ``change`` as the POST of ``path``: the CSRF check, the change in one transaction,
    then back to ``page`` with ``notice``, or the page again with the error (:func:`_change`)."""

    def register(change: Callable[[FormChange], object]) -> Callable[[FormChange], object]:
        def handler(
            request: Request, db: DatabaseDep, session: SessionDep, form: FormDep
        ) -> Response:
            back = page(form) if callable(page) else page
            done = notice(form) if callable(notice) else notice
            params = {k: str(v) for k, v in request.path_params.items()}
            return _change(
                request, db, session, form, back, done,
                lambda: change(FormChange(db, session.actor, form, params)),
            )  # fmt: skip

        handler.__name__ = change.__name__
        router.add_api_route(f"/{path}", handler, methods=["POST"])
        return change

    return register


# -- sites -----------------------------------------------------------------------------------


@form_route("sites", "sites", "site-created")
def create_site(c: FormChange) -> object:
    return sites.create_site(c.db, c.actor, code=c.text("code"), name=c.text("name") or None)


@form_route("sites/{ref}", "sites", "site-saved")
def edit_site(c: FormChange) -> object:
    return sites.update_site(
        c.db, c.actor, c.params["ref"], name=c.text("name"), enabled=c.flag("enabled")
    )


# -- agents ----------------------------------------------------------------------------------


@router.post("/agents/token", response_class=HTMLResponse)
def make_token(request: Request, db: DatabaseDep, session: SessionDep, form: FormDep) -> Response:
    check_csrf(request, session, form)
    config: ServerConfig = request.app.state.config
    try:
        hours = _number(_text(form, "hours") or "1", "the token's lifetime")
        made, plain = servers.create_enrollment_token(
            db, session.actor, _text(form, "site"), ttl_s=int(hours * 3600)
        )
    except ReelsyncError as exc:
        return show(request, db, session, "agents", status=exc.http_status, error=exc)
    return show(request, db, session, "agents", token=made, enroll_line=enroll_line(config, plain))


@router.get("/ca.crt")
def ca_file(request: Request, session: SessionDep) -> Response:
    """The workspace CA an agent verifies the control plane with (public, but only for users)."""
    del session
    config: ServerConfig = request.app.state.config
    if not config.tls or not config.ca_file.is_file():
        raise NotFoundError("this server does not use its own CA")
    return FileResponse(config.ca_file, media_type="application/x-pem-file", filename="ca.crt")


@form_route("agents/{server_id}", "agents", "agent-saved")
def edit_agent(c: FormChange) -> object:
    limit = c.text("limit_mib_s")
    value = _number(limit, "the limit (MiB/s)") if limit else 0.0
    if value < 0:
        raise ValidationError("the limit must be positive MiB/s, or empty for none")
    return servers.update_server(
        c.db,
        c.actor,
        c.params["server_id"],
        bandwidth_limit=value * MIB,
        status="enabled" if c.flag("enabled") else "disabled",
    )


@form_route("agents/{server_id}/revoke", "agents", "agent-revoked")
def revoke_agent(c: FormChange) -> object:
    return servers.revoke_server(c.db, c.actor, c.params["server_id"])


# -- volumes ---------------------------------------------------------------------------------


def _paths(form: Mapping[str, str], *, keep_empty: bool = False) -> dict[str, str | None]:
    """The ``path:SITE`` fields; an empty one is None when ``keep_empty`` (it removes the path)."""
    found: dict[str, str | None] = {}
    for name, value in form.items():
        if name.startswith("path:") and (value.strip() or keep_empty):
            found[name[len("path:") :]] = value.strip() or None
    return found


@form_route("volumes", "volumes", "volume-created")
def create_volume(c: FormChange) -> object:
    paths = {site: path for site, path in _paths(c.form).items() if path}
    return volumes.create_volume(
        c.db, c.actor, code=c.text("code"), name=c.text("name") or None,
        default=c.flag("default"), paths=paths,
    )  # fmt: skip


@form_route("volumes/{ref}", "volumes", "volume-saved")
def edit_volume(c: FormChange) -> object:
    return volumes.update_volume(
        c.db, c.actor, c.params["ref"], enabled=c.flag("enabled"),
        paths=_paths(c.form, keep_empty=True),
    )  # fmt: skip


@form_route("grants", _back_to, "grant-added")
def add_grant(c: FormChange) -> object:
    return acls.grant(
        c.db, c.actor, user=c.text("user"), volume=c.text("volume"),
        path=c.text("path") or None, read=c.flag("read"), write=c.flag("write"),
    )  # fmt: skip


@form_route("grants/{acl_id}/remove", _back_to, "grant-removed")
def remove_grant(c: FormChange) -> object:
    acls.revoke_acl(c.db, c.actor, c.params["acl_id"])
    return None


# -- queues ----------------------------------------------------------------------------------


@form_route("queues", "queues", "queue-created")
def create_queue(c: FormChange) -> object:
    return queues.create_queue(
        c.db, c.actor, code=c.text("code"), name=c.text("name") or None,
        priority=_whole(c.text("priority") or "500", "the priority"),
    )  # fmt: skip


@form_route("queues/{ref}", "queues", "queue-saved")
def edit_queue(c: FormChange) -> object:
    weight = c.text("queue_weight")
    if weight and _number(weight, "the weight") <= 0:
        raise ValidationError("the weight must be a positive number")
    queue = queues.update_queue(
        c.db,
        c.actor,
        c.params["ref"],
        priority=_whole(c.text("priority"), "the priority"),
        paused=c.flag("paused"),
    )
    current = settings.list_settings(c.db, c.actor, scope="queue", target=queue.code)
    for key in QUEUE_SETTINGS:
        value = c.text(key)
        if value:
            settings.set_setting(
                c.db, c.actor, scope="queue", key=key, value=value, target=queue.code
            )
        elif key in current:
            settings.delete_setting(c.db, c.actor, scope="queue", key=key, target=queue.code)
    return queue


# -- users -----------------------------------------------------------------------------------


@router.post("/users", response_class=HTMLResponse)
def create_user(request: Request, db: DatabaseDep, session: SessionDep, form: FormDep) -> Response:
    check_csrf(request, session, form)
    try:
        with db.transaction():  # the user and their first key, or neither
            user, made = _new_user(db, session.actor, form)
    except ReelsyncError as exc:
        return show(request, db, session, "users", status=exc.http_status, error=exc)
    if made is None:
        return RedirectResponse(f"{UI_PREFIX}/users?done=user-created", 303)
    return show(request, db, session, "users", new_key=made, key_user=user)


def _new_user(db: Database, actor: Actor, form: Mapping[str, str]) -> tuple[User, str | None]:
    """The user the form describes and, when asked, their first API key (plain, shown once)."""
    user = users.create_user(
        db,
        actor,
        email=_text(form, "email"),
        name=_text(form, "name"),
        role=_text(form, "role") or Role.EMPLOYEE,
    )
    if not _flag(form, "with_key"):
        return user, None
    return user, apikeys.create_api_key(db, actor, user.id, description="web UI")[1]


@form_route("users/{ref}", "users", "user-saved")
def edit_user(c: FormChange) -> object:
    ref = c.params["ref"]
    if c.actor.is_admin:
        users.update_user(
            c.db, c.actor, ref, role=c.text("role") or None, enabled=c.flag("enabled")
        )
    return users.update_preferences(c.db, c.actor, ref, email_opt_out=c.flag("email_opt_out"))


@router.post("/users/{ref}/keys", response_class=HTMLResponse)
def create_key(
    request: Request, ref: str, db: DatabaseDep, session: SessionDep, form: FormDep
) -> Response:
    check_csrf(request, session, form)
    try:
        user = users.get_user(db, session.actor, ref)
        _, plain = apikeys.create_api_key(
            db, session.actor, user.id, description=_text(form, "description") or "web UI"
        )
    except ReelsyncError as exc:
        return show(request, db, session, "users", status=exc.http_status, error=exc)
    return show(request, db, session, "users", new_key=plain, key_user=user)


@form_route("users/{ref}/keys/{key_id}/revoke", "users", "key-revoked")
def revoke_key(c: FormChange) -> object:
    return apikeys.revoke_api_key(c.db, c.actor, c.params["ref"], c.params["key_id"])


# -- workspace settings ----------------------------------------------------------------------


def _setting_notice(form: Mapping[str, str]) -> str:
    return "setting-removed" if _flag(form, "remove") else "setting-saved"


@form_route("settings", "settings", _setting_notice)
def save_setting(c: FormChange) -> object:
    key = c.text("key")
    if c.flag("remove"):
        return settings.delete_setting(c.db, c.actor, scope="workspace", key=key)
    return settings.set_setting(
        c.db, c.actor, scope="workspace", key=key, value=c.form.get("value", "")
    )
