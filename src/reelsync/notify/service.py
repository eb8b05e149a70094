"""The notifier of a control-plane process: job-event capture plus the outbox dispatcher loop.

Rules: start it once per ``reelsync server run`` process, after the database is open and before
requests are served, and stop it on shutdown (``async with Notifier(config, db): ...`` or
``await start()`` / ``await stop()``). Every process that changes jobs must have the capture
installed (it is what fills the outbox); several processes may run dispatchers on one PostgreSQL
database (``dispatch=False``: capture only, for the workers of one server but the first).
The mailer is SMTP when ``config.smtp.host`` is set; otherwise mail waits in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from types import TracebackType

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.notify.capture import JobEventCapture, install_job_events
from reelsync.notify.dispatcher import Dispatcher, DispatcherPolicy
from reelsync.notify.mailer import Mailer, SmtpMailer
from reelsync.notify.webhook import HttpWebhookSender, WebhookSender

__all__ = ["Notifier", "mailer_from_config"]


def mailer_from_config(
    config: ServerConfig, *, ssl_context: ssl.SSLContext | None = None
) -> Mailer | None:
    if not config.smtp.host:
        return None
    return SmtpMailer(config.smtp, ssl_context=ssl_context)


class Notifier:
    def __init__(
        self,
        config: ServerConfig,
        db: Database,
        *,
        mailer: Mailer | None = None,
        webhooks: WebhookSender | None = None,
        policy: DispatcherPolicy | None = None,
        smtp_ssl_context: ssl.SSLContext | None = None,
        dispatch: bool = True,
    ) -> None:
        self._db = db
        self.dispatch = dispatch  # False: capture only (another worker of this server sends)
        chosen = (
            mailer
            if mailer is not None
            else mailer_from_config(config, ssl_context=smtp_ssl_context)
        )
        self.dispatcher = Dispatcher(
            db,
            mailer=chosen,
            webhooks=webhooks or HttpWebhookSender(allow_private=config.webhook_allow_private),
            public_url=config.url,
            policy=policy,
            hook_tmp_dir=config.data_dir / "tmp" if config.data_dir.is_dir() else None,
        )
        self._capture: JobEventCapture | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._capture is not None:
            return
        if self.dispatcher.hook_tmp_dir is not None:
            self.dispatcher.hook_tmp_dir.mkdir(parents=True, exist_ok=True)
        self._capture = install_job_events(self._db)
        self._stop.clear()
        if self.dispatch:
            self._task = asyncio.create_task(
                self.dispatcher.run(self._stop), name="reelsync-outbox"
            )

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, timeout=30)
            self._task = None
        if self._capture is not None:
            self._capture.remove()
            self._capture = None

    async def __aenter__(self) -> Notifier:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
