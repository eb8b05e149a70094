"""Mailer contract: the in-memory twin and the SMTP mailer against a real aiosmtpd server."""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message

import pytest

from reelsync.config import SmtpConfig
from reelsync.errors import ConfigError, UnavailableError, ValidationError
from reelsync.notify.mailer import Mailer, MemoryMailer, OutgoingMail, SmtpMailer
from smtp_sink import SmtpSink, free_port, make_tls

MAIL = OutgoingMail(
    to=("ops@acme.test", "lead@acme.test"),
    subject="[reelsync] done: shots",
    text="Job 'shots' is done.\n",
    html="<p>Job <b>shots</b> is done.</p>",
    reply_to="desk@acme.test",
    message_id="<job-1-done-1@reelsync>",
)


@dataclass
class Backend:
    mailer: Mailer
    inbox: Callable[[], list[Message]]
    outage: Callable[[bool], None]


@pytest.fixture(params=["memory", "smtp", "smtp-starttls-auth", "smtp-tls"])
def backend(request, tmp_path) -> Iterator[Backend]:
    if request.param == "memory":
        mem = MemoryMailer(sender="reelsync@acme.test")

        def outage(down: bool) -> None:
            mem.fail_with = UnavailableError("mail server down") if down else None

        yield Backend(
            mem, lambda: [email.message_from_bytes(m.as_bytes()) for m in mem.sent], outage
        )
        return
    tls = make_tls(tmp_path)
    if request.param == "smtp":
        sink = SmtpSink("none")
        cfg = SmtpConfig(host="127.0.0.1", port=sink.port, sender="reelsync@acme.test")
    elif request.param == "smtp-starttls-auth":
        sink = SmtpSink("starttls", tls=tls, login=("mailer", "s3cret"))
        cfg = SmtpConfig(
            host="localhost",
            port=sink.port,
            tls="starttls",
            user="mailer",
            password="s3cret",
            sender="reelsync@acme.test",
        )
    else:
        sink = SmtpSink("tls", tls=tls)
        cfg = SmtpConfig(host="localhost", port=sink.port, tls="tls", sender="reelsync@acme.test")
    sink.start()

    def smtp_outage(down: bool) -> None:
        (sink.stop if down else sink.start)()

    try:
        yield Backend(
            SmtpMailer(cfg, ssl_context=tls.client_context),
            lambda: [r.message for r in sink.received],
            smtp_outage,
        )
    finally:
        sink.stop()


async def test_send_delivers_text_and_html(backend: Backend) -> None:
    await backend.mailer.send(MAIL)
    [msg] = backend.inbox()
    assert msg["Subject"] == MAIL.subject
    assert msg["To"] == "ops@acme.test, lead@acme.test"
    assert msg["From"] == "reelsync@acme.test"
    assert msg["Reply-To"] == "desk@acme.test"
    assert msg["Message-ID"] == "<job-1-done-1@reelsync>"
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in msg.walk()
        if not p.is_multipart()
    }
    assert "Job 'shots' is done." in parts["text/plain"]
    assert "<b>shots</b>" in parts["text/html"]


async def test_outage_is_retryable_then_recovers(backend: Backend) -> None:
    backend.outage(True)
    with pytest.raises(UnavailableError):
        await backend.mailer.send(MAIL)
    assert backend.inbox() == []
    backend.outage(False)
    await backend.mailer.send(MAIL)
    assert len(backend.inbox()) == 1


async def test_no_recipient_is_refused(backend: Backend) -> None:
    with pytest.raises(ValidationError):
        await backend.mailer.send(OutgoingMail(to=(), subject="x", text="x"))
    assert backend.inbox() == []


def test_smtp_mailer_needs_a_host() -> None:
    with pytest.raises(ConfigError, match="SMTP is not configured"):
        SmtpMailer(SmtpConfig(host=None))


async def test_wrong_password_is_a_config_error(tmp_path) -> None:
    tls = make_tls(tmp_path)
    sink = SmtpSink("starttls", tls=tls, login=("mailer", "s3cret"))
    sink.start()
    try:
        cfg = SmtpConfig(
            host="localhost", port=sink.port, tls="starttls", user="mailer", password="wrong"
        )
        with pytest.raises(ConfigError, match="refused the login"):
            await SmtpMailer(cfg, ssl_context=tls.client_context).send(MAIL)
        assert sink.received == []
    finally:
        sink.stop()


async def test_refused_recipients_are_permanent(tmp_path) -> None:
    sink = SmtpSink("none")
    sink.handler.reject_rcpt = {"ops@acme.test", "lead@acme.test"}
    sink.start()
    try:
        mailer = SmtpMailer(SmtpConfig(host="127.0.0.1", port=sink.port))
        with pytest.raises(ValidationError, match="refused every recipient"):
            await mailer.send(MAIL)
    finally:
        sink.stop()


async def test_untrusted_certificate_is_not_accepted(tmp_path) -> None:
    tls = make_tls(tmp_path)
    other = make_tls(tmp_path / ".." / tmp_path.name)  # a second, unrelated CA
    sink = SmtpSink("tls", tls=tls)
    sink.start()
    try:
        cfg = SmtpConfig(host="localhost", port=sink.port, tls="tls")
        with pytest.raises(UnavailableError):
            await SmtpMailer(cfg, ssl_context=other.client_context).send(MAIL)
        assert sink.received == []
    finally:
        sink.stop()


async def test_starttls_required_by_config_but_not_offered(tmp_path) -> None:
    sink = SmtpSink("none")
    sink.start()
    try:
        cfg = SmtpConfig(host="127.0.0.1", port=sink.port, tls="starttls")
        with pytest.raises(ConfigError, match="REELSYNC_SMTP_TLS"):
            await SmtpMailer(cfg).send(MAIL)
    finally:
        sink.stop()


async def test_unreachable_port_is_retryable() -> None:
    cfg = SmtpConfig(host="127.0.0.1", port=free_port(), timeout_s=5)
    with pytest.raises(UnavailableError, match="unreachable"):
        await SmtpMailer(cfg).send(MAIL)
