"""The control plane's web UI at ``/ui/``: server-rendered pages (Jinja2) over the services, a
little vanilla JS (``static/ui.js``) to refresh them; no build step.

:func:`install_ui` mounts it on the app ``create_app`` builds: the pages (:mod:`.pages`), the
static files at ``/ui/static/``, ``/`` redirecting browsers to ``/ui/``, and the security headers
(:mod:`.headers`). Sign-in is with an API key (optionally with the e-mail) and gives a signed
session cookie (:mod:`.sessions`); the key itself is never stored in the browser.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from reelsync.config import ServerConfig
from reelsync.errors import NotFoundError
from reelsync.server.ui.admin import router as admin_router
from reelsync.server.ui.events import Stopping
from reelsync.server.ui.events import router as events_router
from reelsync.server.ui.guard import UI_PREFIX, UiContext, UiRoute
from reelsync.server.ui.headers import SecurityHeaders
from reelsync.server.ui.pages import router as pages_router
from reelsync.server.ui.sessions import KEY_FILE, SessionSigner, load_or_create_key
from reelsync.server.ui.transfer import router as transfer_router

__all__ = ["UI_PREFIX", "install_ui"]

_entry = APIRouter(include_in_schema=False)


@_entry.get("/")
def root(request: Request) -> Response:
    """Browsers go to the UI; other clients get the API's 404."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(f"{UI_PREFIX}/", 303)
    hint = f"the API is at /api/v1, the web UI at {UI_PREFIX}/"
    raise NotFoundError("no such endpoint: GET /", hint=hint)


@_entry.get(UI_PREFIX)
def ui_root() -> Response:
    return RedirectResponse(f"{UI_PREFIX}/", 307)


@_entry.get("/jobs/{job_id}")
def job_link(job_id: str) -> Response:
    """A job's address as older mails wrote it: its page in the UI."""
    return RedirectResponse(f"{UI_PREFIX}/jobs/{quote(job_id, safe='')}", 303)


# Last of all (after the static files): any other /ui/ address is the UI's own 404 page.
_fallback = APIRouter(prefix=UI_PREFIX, route_class=UiRoute, include_in_schema=False)


@_fallback.get("/{rest:path}")
def no_page(rest: str) -> Response:
    raise NotFoundError(f"no page /ui/{rest}")


def install_ui(app: FastAPI, config: ServerConfig) -> None:
    """Mount the UI on ``app``; its session key lives in ``config.data_dir``."""
    signer = SessionSigner(load_or_create_key(config.data_dir / KEY_FILE))
    app.state.ui = UiContext(signer)
    stopping = Stopping()
    app.state.ui_stopping = stopping
    app.state.stop_hooks = [*getattr(app.state, "stop_hooks", []), stopping.stop]
    app.include_router(_entry)
    app.include_router(pages_router)
    app.include_router(admin_router)
    app.include_router(transfer_router)
    app.include_router(events_router)
    static = StaticFiles(directory=Path(__file__).parent / "static")
    app.mount(f"{UI_PREFIX}/static", static, name="ui-static")
    app.include_router(_fallback)
    app.add_middleware(SecurityHeaders, static_prefix=f"{UI_PREFIX}/static/")
