"""What every web UI request goes through: the page renderer, the signed-in session (else a
redirect to the sign-in page), the CSRF and origin checks of POSTs, and errors as HTML pages.

Rules: a route of the UI router answers HTML, never the API's JSON errors: no or an ended session
redirects (303) to ``/ui/login?next=PATH``; a :class:`~reelsync.errors.ReelsyncError` renders the
error page with its status; a malformed request is a 400 page. A POST must come from this origin
(``Origin``/``Sec-Fetch-Site`` when the browser sends them; the origin is the request's ``Host``
or the server's public URL) and carry the session's CSRF token.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit

import jinja2
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from reelsync import __version__
from reelsync.config import ServerConfig
from reelsync.domain.records import Actor
from reelsync.errors import (
    AuthenticationError,
    PermissionDeniedError,
    ReelsyncError,
    ValidationError,
)
from reelsync.server.dependencies import DatabaseDep
from reelsync.server.errors import validation_message
from reelsync.server.ui.formats import FILTERS
from reelsync.server.ui.sessions import COOKIE_NAME, SessionClaims, SessionSigner
from reelsync.services import auth

__all__ = [
    "LOGIN_PATH",
    "UI_PREFIX",
    "FieldsDep",
    "FormDep",
    "PageSession",
    "SessionDep",
    "UiContext",
    "UiRoute",
    "clear_session",
    "render",
    "safe_next",
]

UI_PREFIX = "/ui"
LOGIN_PATH = f"{UI_PREFIX}/login"
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 500


class UiContext:
    """The UI's parts, kept on ``app.state.ui``: the templates and the session signer."""

    def __init__(self, signer: SessionSigner) -> None:
        self.signer = signer
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(FILTERS)


def _ui(request: Request) -> UiContext:
    ui: UiContext = request.app.state.ui
    return ui


@dataclass(frozen=True, slots=True)
class PageSession:
    """The signed-in user of a request and the CSRF token its forms carry."""

    actor: Actor
    claims: SessionClaims
    csrf: str


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    session: PageSession | None = None,
    **context: Any,
) -> HTMLResponse:
    page = _ui(request).templates.get_template(template)
    config: ServerConfig = request.app.state.config
    html = page.render(
        smtp_missing=config.smtp.host is None,
        session=session,
        actor=session.actor if session else None,
        csrf=session.csrf if session else "",
        path=request.url.path,
        version=__version__,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path inside the UI, else the UI's home."""
    if not value or not value.startswith(f"{UI_PREFIX}/"):
        return f"{UI_PREFIX}/"
    if "\\" in value or "//" in value or "/." in value:
        return f"{UI_PREFIX}/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith(LOGIN_PATH):
        return f"{UI_PREFIX}/"
    return value


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", secure=True, httponly=True, samesite="strict")


def _to_sign_in(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = f"{UI_PREFIX}/"
    response = RedirectResponse(f"{LOGIN_PATH}?next={quote(safe_next(target), safe='/')}", 303)
    if COOKIE_NAME in request.cookies:
        clear_session(response)
    return response


def _same_origin(request: Request) -> bool:
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    # this server as the browser addressed it, or its public URL (a proxy may rewrite Host)
    ours = {request.headers.get("host", "").lower()}
    config: ServerConfig = request.app.state.config
    ours.add(urlsplit(config.url).netloc.lower())
    return urlsplit(origin).netloc.lower() in ours


async def read_fields(request: Request) -> dict[str, list[str]]:
    """A small urlencoded form (no multipart), from this origin; every value of each field."""
    if not _same_origin(request):
        raise PermissionDeniedError("this form was sent from another site")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ValidationError("expected a form (application/x-www-form-urlencoded)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ValidationError("the form is too large", hint="select fewer items at once")
    try:
        return parse_qs(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationError("the form could not be read", hint="select fewer items") from exc


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields, the first value of each."""
    fields = await read_fields(request)
    return {name: values[0] for name, values in fields.items()}


FormDep = Annotated[dict[str, str], Depends(read_form)]
FieldsDep = Annotated[dict[str, list[str]], Depends(read_fields)]


def _signed_in(request: Request) -> PageSession | None:
    """The session of an error page's request, when there is a good one (for the header)."""
    try:
        return page_session(request, request.app.state.database)
    except ReelsyncError:
        return None


def page_session(request: Request, db: DatabaseDep) -> PageSession:
    """The signed-in user (AuthenticationError, turned into the sign-in redirect, otherwise)."""
    signer = _ui(request).signer
    claims = signer.verify(request.cookies.get(COOKIE_NAME))
    if claims is None:
        raise AuthenticationError("please sign in")
    actor = auth.session_actor(db, claims.session_id)
    return PageSession(actor=actor, claims=claims, csrf=signer.csrf_token(claims))


SessionDep = Annotated[PageSession, Depends(page_session)]


def check_csrf(request: Request, session: PageSession, form: Mapping[str, str]) -> None:
    if not _ui(request).signer.check_csrf(session.claims, form.get("csrf")):
        raise PermissionDeniedError(
            "this form is stale or did not come from this page", hint="reload the page and retry"
        )


class UiRoute(APIRoute):
    """A route answering HTML errors and sign-in redirects instead of the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except AuthenticationError:
                return _to_sign_in(request)
            except ReelsyncError as exc:
                return render(
                    request,
                    "error.html",
                    session=await run_in_threadpool(_signed_in, request),
                    status=exc.http_status,
                    status_code=exc.http_status,
                    message=exc.message,
                    hint=exc.hint,
                )
            except RequestValidationError as exc:
                return render(
                    request,
                    "error.html",
                    session=await run_in_threadpool(_signed_in, request),
                    status=400,
                    status_code=400,
                    message=validation_message(list(exc.errors())),
                    hint=None,
                )

        return guarded
