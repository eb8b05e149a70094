"""A real HTTP webhook receiver for tests: stdlib ThreadingHTTPServer on a free loopback port.

It verifies each request's signature with reelsync's own receiver helper and records the result.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reelsync.errors import AuthenticationError
from reelsync.notify.webhook import verify_signature


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    secret: str
    deliveries: list[Delivery] = field(default_factory=list)
    status: int = 200  # what to answer; set 500 to play a broken receiver
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = dict(self.headers.items())
                try:
                    verify_signature(receiver.secret, body, headers)
                    verified = True
                except AuthenticationError:
                    verified = False
                receiver.deliveries.append(Delivery(self.path, headers, body, verified))
                status = receiver.status if verified else 401
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
