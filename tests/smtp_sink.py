"""A real SMTP server for tests: aiosmtpd in a thread, optionally STARTTLS or implicit TLS + AUTH.

It can be stopped and started again on the same port to play an outage.
"""

from __future__ import annotations

import email
import gc
import socket
import ssl
import time
import warnings
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from reelsync import pki


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TlsFiles:
    """A CA-signed server cert for 127.0.0.1/localhost and a client context trusting only it."""

    server_context: ssl.SSLContext
    client_context: ssl.SSLContext


def make_tls(tmp: Path) -> TlsFiles:
    ca = pki.CertificateAuthority.create("smtp-test")
    pair = ca.issue_server_cert()
    (tmp / "smtp.crt").write_bytes(pair.cert_pem)
    (tmp / "smtp.key").write_bytes(pair.key_pem)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "smtp.crt", tmp / "smtp.key")
    client = ssl.create_default_context(cadata=ca.cert_pem.decode())
    return TlsFiles(server_context=server, client_context=client)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: Message


@dataclass
class SinkHandler:
    received: list[Received] = field(default_factory=list)
    reject_rcpt: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.reject_rcpt:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        msg = email.message_from_bytes(envelope.original_content or envelope.content)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


class SmtpSink:
    """``mode``: none | starttls | tls. With ``login`` set, AUTH is required (over TLS)."""

    def __init__(
        self,
        mode: str = "none",
        *,
        tls: TlsFiles | None = None,
        login: tuple[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.mode = mode
        self.tls = tls
        self.login = login
        self.port = port or free_port()
        self.handler = SinkHandler()
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.login is not None
            and (
                auth_data.login.decode(),
                auth_data.password.decode(),
            )
            == self.login
        )
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.mode == "starttls":
            assert self.tls is not None
            kwargs.update(tls_context=self.tls.server_context, require_starttls=True)
        elif self.mode == "tls":
            assert self.tls is not None
            kwargs.update(ssl_context=self.tls.server_context)
        if self.login is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
        self._controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="localhost",
            **kwargs,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            # let the server's loop finish closing sessions (a TLS close needs a few round trips)
            # so that no half-closed transport is left for the garbage collector to warn about
            time.sleep(0.1)
            self._controller.stop()
            self._controller = None
            # aiosmtpd closes its thread's loop with the transports of sessions a client dropped
            # still open; collect them here, where they belong, instead of letting a ResourceWarning
            # fire (as an error) in whichever later test the garbage collector happens to run
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()
