"""The outbox dispatcher: claims due rows, sends them, marks them; run by the control plane.

Rules:
- Claim: in one short transaction, due rows (``pending``, or ``sending`` whose lease ran out) are
  selected ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite serialises writers with BEGIN IMMEDIATE),
  then set ``sending`` with ``attempts + 1`` and ``next_attempt_at = now + lease``. The lease is the
  claim: several dispatchers (processes) on one database never hold the same row. The lease is
  short (``lease_s``, 20 s) and renewed every third of it while the pass holds the row (a slow
  SMTP server, a long hook, rows waiting their turn in the batch), so a dispatcher that died
  (a SIGKILLed control plane, a replica gone) gives its rows to the next pass within ``lease_s``.
- Send outside any transaction, then mark in another: ``sent``; or back to ``pending`` with
  exponential backoff (``base * 2**(attempts-1)``, capped) on a retryable error, a config error or
  any unexpected exception; ``failed`` (kept, with ``last_error``) when the error can never pass
  (a 5xx refusal) or after ``max_attempts``. A mark only applies if ``attempts`` still matches,
  so a dispatcher whose lease ran out cannot overwrite a newer claim.
- At-least-once: a crash (or a lost database) after the SMTP server / webhook receiver took the
  message but before the mark commits sends it again once the lease expires (``lease_s``).
  Receivers can drop such duplicates: mails carry a stable ``Message-ID``, webhooks a stable
  ``X-Reelsync-Delivery``.
  Nothing else sends twice, and nothing is lost: a row leaves the table never.
- Hooks run at most once per claim and are not retried when they fail (they may not be
  idempotent); only a crash while one runs re-runs it after its lease.
- Without a mailer (SMTP not configured) mail rows wait in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Update, select, update

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.errors import (
    ConfigError,
    NotFoundError,
    ReelsyncError,
    RetryableError,
)
from reelsync.notify.hooks import run_hook
from reelsync.notify.mailer import Mailer
from reelsync.notify.outbox import KIND_HOOK, KIND_MAIL, KIND_WEBHOOK, job_document
from reelsync.notify.summary import FailedFile, JobSummary, compose_job_mail
from reelsync.notify.webhook import HttpWebhookSender, WebhookSender, sign_request

__all__ = ["Dispatcher", "DispatcherPolicy", "job_url"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DispatcherPolicy:
    batch: int = 20
    lease_s: float = 20.0  # renewed every third of it while a pass holds the rows
    base_backoff_s: float = 30.0
    max_backoff_s: float = 3600.0
    max_attempts: int = 30  # ~ a day of retries with the defaults
    poll_s: float = 2.0

    def backoff(self, attempts: int) -> float:
        return float(min(self.max_backoff_s, self.base_backoff_s * 2 ** max(0, attempts - 1)))


def job_url(public_url: str | None, job_id: str) -> str | None:
    return f"{public_url.rstrip('/')}/ui/jobs/{job_id}" if public_url else None


class _Permanent(Exception):
    """The row can never be delivered (the webhook was deleted, a hook failed)."""


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _summary(data: dict[str, Any]) -> JobSummary:
    return JobSummary(
        job_id=data["job_id"],
        name=data["name"],
        status=data["status"],
        queue=data["queue"],
        source_site=data["source_site"],
        destination_site=data["destination_site"],
        file_count=int(data["file_count"]),
        files_done=int(data["files_done"]),
        bytes_total=int(data["bytes_total"]),
        started=_parse_time(data.get("started")),
        finished=_parse_time(data.get("finished")),
        failures=tuple(FailedFile(f["path"], f["reason"]) for f in data.get("failures", [])),
        failure_count=int(data.get("failure_count", 0)),
        creator=data.get("creator"),
    )


def _claimed(row_id: str, attempts: int) -> Update:
    """An update of outbox row ``row_id`` only while this pass's claim holds it (still
    ``sending``, at the attempt it claimed): a row another pass took over is left alone."""
    return update(m.Outbox).where(
        m.Outbox.id == row_id, m.Outbox.status == "sending", m.Outbox.attempts == attempts
    )


class Dispatcher:
    """Delivers the outbox. ``run_once`` for one pass (tests, cron); ``run`` loops until stopped."""

    def __init__(
        self,
        db: Database,
        *,
        mailer: Mailer | None,
        webhooks: WebhookSender | None = None,
        public_url: str | None = None,
        policy: DispatcherPolicy | None = None,
        hook_tmp_dir: Path | None = None,
    ) -> None:
        self._db = db
        self._mailer = mailer
        self._webhooks = webhooks or HttpWebhookSender()
        self._public_url = public_url
        self.policy = policy or DispatcherPolicy()
        self.hook_tmp_dir = hook_tmp_dir

    def _kinds(self) -> list[str]:
        kinds = [KIND_WEBHOOK, KIND_HOOK]
        if self._mailer is not None:
            kinds.append(KIND_MAIL)
        return kinds

    def _claim(self, now: datetime) -> list[tuple[str, str, dict[str, Any], int]]:
        with self._db.session() as session:
            due = (
                select(m.Outbox)
                .where(
                    m.Outbox.status.in_(["pending", "sending"]),
                    m.Outbox.next_attempt_at <= now,
                    m.Outbox.kind.in_(self._kinds()),
                )
                .order_by(m.Outbox.next_attempt_at, m.Outbox.id)
                .limit(self.policy.batch)
                .with_for_update(skip_locked=True)
            )
            claimed = []
            for row in session.scalars(due):
                row.status = "sending"
                row.attempts += 1
                row.next_attempt_at = now + timedelta(seconds=self.policy.lease_s)
                claimed.append((row.id, row.kind, dict(row.payload), row.attempts))
            return claimed

    def _renew(self, held: dict[str, int]) -> None:
        """Extend the lease of the rows this pass still holds (``id -> attempts`` of the claim)."""
        until = utcnow() + timedelta(seconds=self.policy.lease_s)
        with self._db.session() as session:
            for row_id, attempts in held.items():
                session.execute(_claimed(row_id, attempts).values(next_attempt_at=until))

    async def _keep_leases(self, held: dict[str, int]) -> None:
        """Renew ``held`` every third of the lease until cancelled (the pass is over)."""
        while True:
            await asyncio.sleep(self.policy.lease_s / 3)
            if held:
                try:
                    await asyncio.to_thread(self._renew, dict(held))
                except Exception:  # the next renewal tries again; the lease covers a miss
                    log.warning("outbox: renewing the leases failed", exc_info=True)

    def _mark(
        self,
        row_id: str,
        attempts: int,
        *,
        status: str,
        error: str | None,
        retry_at: datetime | None = None,
    ) -> None:
        now = utcnow()
        values: dict[str, Any] = {"status": status, "last_error": error}
        if status == "sent":
            values["sent_at"] = now
        if retry_at is not None:
            values["next_attempt_at"] = retry_at
        with self._db.session() as session:
            session.execute(_claimed(row_id, attempts).values(**values))

    async def _send_mail(self, row_id: str, payload: dict[str, Any]) -> None:
        assert self._mailer is not None
        summary = _summary(payload["summary"])
        digest = hashlib.sha256(row_id.encode()).hexdigest()[:16]
        mail = compose_job_mail(
            summary,
            to=tuple(payload["to"]),
            job_url=job_url(self._public_url, summary.job_id),
            reply_to=payload.get("reply_to"),
            message_id=f"<{summary.job_id}.{summary.status}.{digest}@reelsync>",
        )
        await self._mailer.send(mail)

    def _webhook_target(self, webhook_id: str) -> tuple[str, str]:
        with self._db.session() as session:
            hook = session.get(m.Webhook, webhook_id)
            if hook is None or not hook.enabled:
                raise _Permanent("the webhook was deleted or disabled")
            return hook.url, hook.secret

    async def _send_webhook(self, payload: dict[str, Any]) -> None:
        url, secret = await asyncio.to_thread(self._webhook_target, payload["webhook_id"])
        request = sign_request(
            secret, payload["body"], event=payload["event"], delivery=payload["delivery"]
        )
        await self._webhooks.post(url, request)

    def _hook_input(self, job_id: str) -> dict[str, Any]:
        with self._db.session() as session:
            job = session.get(m.Job, job_id)
            if job is None:
                raise _Permanent("the job was deleted before its hook ran")
            document = job_document(session, job)
            volumes = dict(session.execute(select(m.Volume.id, m.Volume.code)).all())
            tasks = session.execute(
                select(
                    m.Task.id,
                    m.Task.uri,
                    m.Task.status,
                    m.Task.source_volume_id,
                    m.Task.source_path,
                    m.Task.destination_volume_id,
                    m.Task.destination_path,
                    m.Task.size,
                    m.Task.last_error,
                )
                .where(m.Task.job_id == job.id)
                .order_by(m.Task.uri)
            ).all()
        document["tasks"] = [
            {
                "id": t.id,
                "uri": t.uri,
                "status": t.status,
                "source": f"volume={volumes.get(t.source_volume_id, '')}/{t.source_path}",
                "destination": (
                    f"volume={volumes.get(t.destination_volume_id, '')}/{t.destination_path}"
                ),
                "size": t.size,
                "error": t.last_error,
            }
            for t in tasks
        ]
        return document

    async def _run_hook(self, payload: dict[str, Any]) -> None:
        document = await asyncio.to_thread(self._hook_input, payload["job_id"])
        result = await asyncio.to_thread(
            run_hook,
            payload["hook"],
            payload["command"],
            document,
            timeout_s=float(payload["timeout_s"]),
            tmp_dir=self.hook_tmp_dir,
        )
        if not result.ok:
            raise _Permanent(f"hook {payload['hook']} failed: {result.message}")

    async def _deliver(self, row_id: str, kind: str, payload: dict[str, Any], attempts: int) -> str:
        try:
            if kind == KIND_MAIL:
                await self._send_mail(row_id, payload)
            elif kind == KIND_WEBHOOK:
                await self._send_webhook(payload)
            elif kind == KIND_HOOK:
                await self._run_hook(payload)
            else:
                raise _Permanent(f"unknown outbox kind {kind!r}")
        except (_Permanent, NotFoundError) as exc:
            await asyncio.to_thread(self._mark, row_id, attempts, status="failed", error=str(exc))
            return "failed"
        except Exception as exc:
            retry = isinstance(exc, RetryableError | ConfigError) or not isinstance(
                exc, ReelsyncError
            )
            error = str(exc) if isinstance(exc, ReelsyncError) else repr(exc)
            if retry and attempts < self.policy.max_attempts:
                delay = self.policy.backoff(attempts)
                log.warning("outbox %s %s: %s; retry in %.0f s", kind, row_id, error, delay)
                when = utcnow() + timedelta(seconds=delay)
                await asyncio.to_thread(
                    self._mark, row_id, attempts, status="pending", error=error, retry_at=when
                )
                return "retry"
            log.error("outbox %s %s failed for good: %s", kind, row_id, error)
            await asyncio.to_thread(self._mark, row_id, attempts, status="failed", error=error)
            return "failed"
        await asyncio.to_thread(self._mark, row_id, attempts, status="sent", error=None)
        return "sent"

    async def run_once(self, now: datetime | None = None) -> dict[str, int]:
        """One pass: claim due rows and deliver them; returns counts by outcome."""
        claimed = await asyncio.to_thread(self._claim, now or utcnow())
        outcome: dict[str, int] = {}
        if not claimed:
            return outcome
        held = {row_id: attempts for row_id, _kind, _payload, attempts in claimed}
        keeper = asyncio.create_task(self._keep_leases(held))
        try:
            for row_id, kind, payload, attempts in claimed:
                result = await self._deliver(row_id, kind, payload, attempts)
                held.pop(row_id, None)
                outcome[result] = outcome.get(result, 0) + 1
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        return outcome

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; a failing pass is logged, never fatal."""
        while not stop.is_set():
            busy = False
            try:
                busy = bool(await self.run_once())
            except Exception:
                log.exception("outbox pass failed; retrying")
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.policy.poll_s)

    def requeue_failed(self) -> int:
        """Put every ``failed`` row back to ``pending`` (an admin fixed the cause)."""
        with self._db.session() as session:
            result = session.execute(
                update(m.Outbox)
                .where(m.Outbox.status == "failed")
                .values(status="pending", attempts=0, next_attempt_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)
