"""Security headers for the web UI's responses (``/``, ``/ui`` and below), as plain ASGI middleware
(it never buffers a body, so the API's long-polls and streams pass untouched).

Rules: a CSP that allows only this origin's scripts and styles (no inline script or style), no
framing (CSP ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), no MIME sniffing, the
referrer only to this origin (``no-referrer`` would make browsers send ``Origin: null`` on the
forms' POSTs, which the origin check refuses); pages with data are ``no-store``; the static
files may be cached but revalidated.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "SecurityHeaders"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_COMMON = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


def _is_ui(path: str) -> bool:
    return path == "/" or path == "/ui" or path.startswith("/ui/")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, static_prefix: str = "/ui/static/") -> None:
        self.app = app
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_ui(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(self.static_prefix)
        cache = b"no-cache" if static else b"no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                drop = {name for name, _ in _COMMON} | {b"cache-control"}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in drop]
                headers.extend(_COMMON)
                headers.append((b"cache-control", cache))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
