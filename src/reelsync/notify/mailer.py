"""The mail port: one ``Mailer`` protocol, an SMTP implementation and an in-memory twin.

Rules:
- A mailer sends one composed :class:`OutgoingMail` (recipients, subject, text and optional HTML).
- Failures are sorted by behaviour: a mail server that is down, slow or answers 4xx raises
  :class:`~reelsync.errors.UnavailableError` (try again later, the outbox backs off); a 5xx refusal
  of the message or of every recipient raises :class:`~reelsync.errors.ValidationError` (the same
  mail will never pass); a refused login raises :class:`~reelsync.errors.ConfigError` (an admin must
  fix the settings; the outbox keeps retrying).
- Both implementations pass the same contract tests (``tests/test_notify_mailer.py``).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

import aiosmtplib

from reelsync.config import SmtpConfig
from reelsync.errors import ConfigError, UnavailableError, ValidationError

__all__ = [
    "Mailer",
    "MemoryMailer",
    "OutgoingMail",
    "SmtpMailer",
    "build_email",
]


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """One e-mail, ready to send; ``message_id`` is stable so a resend can be recognised."""

    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    reply_to: str | None = None
    message_id: str | None = None


class Mailer(Protocol):
    """Something that delivers an :class:`OutgoingMail` or raises (see the module rules)."""

    async def send(self, mail: OutgoingMail) -> None: ...


def build_email(mail: OutgoingMail, sender: str) -> EmailMessage:
    """The RFC 5322 message: plain text, plus an HTML alternative when the mail has one."""
    if not mail.to:
        raise ValidationError("an e-mail needs at least one recipient")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(mail.to)
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    if mail.reply_to:
        msg["Reply-To"] = mail.reply_to
    if mail.message_id:
        msg["Message-ID"] = mail.message_id
    msg.set_content(mail.text)
    if mail.html is not None:
        msg.add_alternative(mail.html, subtype="html")
    return msg


class SmtpMailer:
    """Sends through an SMTP server with aiosmtplib: plain, STARTTLS or implicit TLS.

    ``ssl_context`` overrides the system trust store (a private CA, or tests' self-signed cert).
    """

    def __init__(self, config: SmtpConfig, *, ssl_context: ssl.SSLContext | None = None) -> None:
        if not config.host:
            raise ConfigError("SMTP is not configured: set REELSYNC_SMTP_HOST or [smtp] host")
        self._config = config
        self._ssl_context = ssl_context

    @property
    def config(self) -> SmtpConfig:
        return self._config

    async def send(self, mail: OutgoingMail) -> None:
        cfg = self._config
        message = build_email(mail, cfg.sender)
        where = f"SMTP server {cfg.host}:{cfg.port}"
        try:
            await aiosmtplib.send(
                message,
                sender=cfg.sender,
                recipients=list(mail.to),
                hostname=cfg.host,
                port=cfg.port,
                username=cfg.user,
                password=cfg.password,
                use_tls=cfg.tls == "tls",
                start_tls=cfg.tls == "starttls",
                tls_context=self._ssl_context,
                timeout=cfg.timeout_s,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise ConfigError(
                f"{where} refused the login of {cfg.user!r}: {exc.code} {exc.message}",
                hint="check REELSYNC_SMTP_USER / REELSYNC_SMTP_PASSWORD",
            ) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            if all(c >= 500 for c in codes):
                raise ValidationError(f"{where} refused every recipient: {text}") from exc
            raise UnavailableError(f"{where} deferred the recipients: {text}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise ValidationError(
                    f"{where} refused the mail: {exc.code} {exc.message}"
                ) from exc
            raise UnavailableError(f"{where} deferred the mail: {exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPNotSupported as exc:
            raise ConfigError(f"{where}: {exc}", hint="check REELSYNC_SMTP_TLS") from exc
        except aiosmtplib.SMTPException as exc:
            if "STARTTLS" in str(exc) and "not supported" in str(exc):
                raise ConfigError(f"{where}: {exc}", hint="check REELSYNC_SMTP_TLS") from exc
            raise UnavailableError(f"{where} is unreachable: {exc}") from exc
        except OSError as exc:
            # connect refused/timeout, disconnects, TLS handshake failures: try again later
            raise UnavailableError(f"{where} is unreachable: {exc}") from exc


@dataclass(slots=True)
class MemoryMailer:
    """The in-memory twin: keeps sent mails in ``sent``; ``fail_with`` simulates an outage."""

    sender: str = "reelsync@localhost"
    sent: list[EmailMessage] = field(default_factory=list)
    fail_with: Exception | None = None

    async def send(self, mail: OutgoingMail) -> None:
        message = build_email(mail, self.sender)
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(message)

    def recipients(self) -> Sequence[str]:
        return [addr for m in self.sent for addr in str(m["To"]).split(", ")]
