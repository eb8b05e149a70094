"""The demo's own mail server: aiosmtpd on a loopback port, keeping every message it receives in
memory (nothing leaves the machine). The control plane's REELSYNC_SMTP_* point at it."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["CapturedMail", "Mailbox"]


@dataclass(frozen=True, slots=True)
class CapturedMail:
    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def text(self) -> str:
        """The plain-text body (the first text/plain part)."""
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""


@dataclass(eq=False)
class _Handler:
    received: list[CapturedMail] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.arrived:
            self.received.append(
                CapturedMail(str(envelope.mail_from), tuple(envelope.rcpt_tos), message)
            )
            self.arrived.notify_all()
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    """``with Mailbox() as box:`` an SMTP server at ``box.host``:``box.port``."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = _free_port()
        self._handler = _Handler()
        self._controller = Controller(self._handler, hostname=self.host, port=self.port)

    def __enter__(self) -> Mailbox:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    @property
    def received(self) -> list[CapturedMail]:
        return list(self._handler.received)

    def wait(self, count: int = 1, timeout_s: float = 30.0) -> list[CapturedMail]:
        """The messages so far, once ``count`` have arrived or ``timeout_s`` has passed."""
        deadline = time.monotonic() + timeout_s
        with self._handler.arrived:
            while len(self._handler.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._handler.arrived.wait(left)
            return list(self._handler.received)

    def env(self) -> dict[str, str]:
        """REELSYNC_SMTP_* for a control plane that should mail here."""
        return {
            "REELSYNC_SMTP_HOST": self.host,
            "REELSYNC_SMTP_PORT": str(self.port),
            "REELSYNC_SMTP_TLS": "none",
            "REELSYNC_SMTP_FROM": "reelsync-demo@localhost",
        }
