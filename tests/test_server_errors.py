"""The server's one error table, at the ASGI boundary: a client that hangs up while its request
body is read is logged as such, never as a crash with a traceback (an agent killed mid-call)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI, Request

from reelsync.server.errors import install_error_handlers


async def test_a_client_gone_mid_body_is_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    sent: list[dict[str, Any]] = []
    messages = iter(
        [
            {"type": "http.request", "body": b"part of it", "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/echo", "raw_path": b"/echo", "query_string": b"",
        "headers": [(b"content-length", b"100")], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    with caplog.at_level(logging.INFO, logger="reelsync.server"):
        await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "went away" in caplog.records[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
