"""The transactional outbox: job events become outbox rows in the transaction that caused them.

Rules:
- :func:`enqueue_job_finished` / :func:`enqueue_job_submitted` run INSIDE the caller's session, so
  the rows commit (or roll back) with the status change. They write one ``mail`` row per event
  (if anyone is to get it), one ``webhook`` row per subscribed webhook and one ``hook`` row when a
  post-done/post-failed hook is set.
- Every row has a unique ``dedupe_key``: ``job:<id>:<event>:<finish-seq>[:webhook:<id>|:hook]``
  where ``finish-seq`` is the job's ``finished`` time in microseconds (set when the job ends,
  cleared when it is revived). A second call for the same finish writes nothing
  (``INSERT .. ON CONFLICT DO NOTHING``); a revived job that finishes again gets new keys.
- The mail payload is a snapshot of the job at that moment; the dispatcher only adds the link.
- Hook command lines are read from queue then workspace settings, NEVER from a job's own settings
  (a job owner must not be able to run commands on the control plane).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from reelsync.db import models as m
from reelsync.db.types import utcnow
from reelsync.domain.ids import new_entity_id
from reelsync.domain.status import JobStatus, TaskStatus
from reelsync.errors import NotFoundError, ValidationError
from reelsync.notify.hooks import HOOK_SETTING_KEYS, HOOK_TIMEOUT_SETTING, parse_hook_timeout
from reelsync.notify.recipients import job_recipients
from reelsync.notify.summary import MAX_FAILURES_LISTED
from reelsync.services import catalog

__all__ = [
    "FINISH_EVENTS",
    "KIND_HOOK",
    "KIND_MAIL",
    "KIND_WEBHOOK",
    "enqueue_job_finished",
    "enqueue_job_submitted",
    "hook_command",
    "job_document",
]

KIND_MAIL = "mail"
KIND_WEBHOOK = "webhook"
KIND_HOOK = "hook"
FINISH_EVENTS = frozenset({JobStatus.DONE, JobStatus.FAILED})


def _insert_once(session: Session, kind: str, dedupe_key: str, payload: Mapping[str, Any]) -> int:
    values = {
        "id": new_entity_id(),
        "kind": kind,
        "payload": dict(payload),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": utcnow(),
        "dedupe_key": dedupe_key,
        "created": utcnow(),
    }
    if session.get_bind().dialect.name == "postgresql":
        stmt: Any = postgresql.insert(m.Outbox).values(values)
    else:
        stmt = sqlite.insert(m.Outbox).values(values)
    stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(m.Outbox.id)
    return len(session.execute(stmt).all())


def job_document(session: Session, job: m.Job) -> dict[str, Any]:
    """The job as the JSON object webhooks and hooks receive (no tasks)."""
    known = catalog.current(session)
    sites = {s.id: s.code for s in known.sites}
    queue = known.queue_code(job.queue_id) or ""
    user = known.emails.get(job.user_id, "")
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "queue": queue,
        "user": user,
        "source": job.source,
        "destination": job.destination,
        "source_site": sites.get(job.source_site_id, ""),
        "destination_site": sites.get(job.destination_site_id, ""),
        "size": job.size,
        "bytes_done": job.bytes_done,
        "progress": job.progress,
        "tasks": job.task_count,
        "created": job.created.isoformat() if job.created else None,
        "finished": job.finished.isoformat() if job.finished else None,
        "metadata": dict(job.meta or {}),
    }


def _summary(session: Session, job: m.Job, doc: Mapping[str, Any]) -> dict[str, Any]:
    counted = session.execute(
        select(
            func.coalesce(func.sum(func.coalesce(m.Task.files, 1)), 0),
            func.coalesce(
                func.sum(func.coalesce(m.Task.files, 1)).filter(
                    m.Task.status == TaskStatus.DONE.value
                ),
                0,
            ),
            func.count().filter(m.Task.status == TaskStatus.FAILED.value),
            func.coalesce(func.sum(m.Task.size), 0),
        ).where(m.Task.job_id == job.id, m.Task.status != TaskStatus.EXCLUDED.value)
    ).one()
    files, done, failed, size = (int(v or 0) for v in counted)
    volumes = dict(session.execute(select(m.Volume.id, m.Volume.code)).all())
    failures = session.execute(
        select(m.Task.source_volume_id, m.Task.source_path, m.Task.last_error)
        .where(m.Task.job_id == job.id, m.Task.status == TaskStatus.FAILED.value)
        .order_by(m.Task.uri)
        .limit(MAX_FAILURES_LISTED)
    ).all()
    return {
        "job_id": job.id,
        "name": job.name,
        "status": job.status,
        "queue": doc["queue"],
        "source_site": doc["source_site"],
        "destination_site": doc["destination_site"],
        "file_count": files,
        "files_done": done,
        "bytes_total": int(job.size if job.size is not None else size),
        "started": doc["created"],
        "finished": doc["finished"],
        "failures": [
            {"path": f"{volumes.get(v, v)}/{p}", "reason": e or "unknown error"}
            for v, p, e in failures
        ],
        "failure_count": failed,
        "creator": doc["user"],
    }


def hook_command(session: Session, queue_id: str, hook: str) -> tuple[str | None, float]:
    """The hook's command line (queue, else workspace setting) and its timeout in seconds."""
    key = HOOK_SETTING_KEYS[hook]
    settings = catalog.current(session).settings
    picked: dict[str, str] = {}
    for scope, target in (("workspace", ""), ("queue", queue_id)):  # queue overrides workspace
        for name in (key, HOOK_TIMEOUT_SETTING):
            value = settings.get((scope, target, name))
            if value is not None:
                picked[name] = value
    command = (picked.get(key) or "").strip() or None
    return command, parse_hook_timeout(picked.get(HOOK_TIMEOUT_SETTING))


def _webhook_rows(
    session: Session, event: str, base_key: str, doc: Mapping[str, Any], created: str
) -> int:
    written = 0
    for hook in catalog.current(session).webhooks:
        if event not in hook.events:
            continue
        delivery = f"{base_key}:webhook:{hook.id}"
        body = {"event": event, "delivery": delivery, "created": created, "job": dict(doc)}
        payload = {"webhook_id": hook.id, "event": event, "delivery": delivery, "body": body}
        written += _insert_once(session, KIND_WEBHOOK, delivery, payload)
    return written


def _job(session: Session, job_id: str) -> m.Job:
    job = session.get(m.Job, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id!r}")
    return job


def enqueue_job_finished(session: Session, job_id: str, status: JobStatus | str) -> int:
    """Write the outbox rows of a job that reached done or failed; returns rows written (0 when
    this finish was already enqueued). Call it in the transaction that changed the status."""
    event = JobStatus(status)
    if event not in FINISH_EVENTS:
        raise ValidationError(f"job events are sent for done or failed, not {event.value}")
    session.flush()
    job = _job(session, job_id)
    finished = job.finished or utcnow()
    seq = int(finished.timestamp() * 1_000_000)
    base_key = f"job:{job.id}:{event.value}:{seq}"
    doc = job_document(session, job)
    doc["status"] = event.value
    written = 0
    to = job_recipients(session, job, event.value)
    if to:
        reply_to = job.settings.get("email_reply_to") if job.settings else None
        summary = _summary(session, job, doc)
        summary["status"] = event.value
        mail = {"to": list(to), "summary": summary, "reply_to": reply_to}
        written += _insert_once(session, KIND_MAIL, f"{base_key}:mail", mail)
    written += _webhook_rows(session, f"job.{event.value}", base_key, doc, finished.isoformat())
    hook_name = f"post-{event.value}"
    command, timeout_s = hook_command(session, job.queue_id, hook_name)
    if command:
        payload = {"hook": hook_name, "command": command, "timeout_s": timeout_s, "job_id": job.id}
        written += _insert_once(session, KIND_HOOK, f"{base_key}:hook", payload)
    return written


def enqueue_job_submitted(session: Session, job_id: str) -> int:
    """Write the ``job.submitted`` webhook rows of a new job (once per job)."""
    session.flush()
    if not any("job.submitted" in hook.events for hook in catalog.current(session).webhooks):
        return 0  # no webhook wants it: the job's document is not even made
    job = _job(session, job_id)
    base_key = f"job:{job.id}:submitted"
    doc = job_document(session, job)
    return _webhook_rows(session, "job.submitted", base_key, doc, utcnow().isoformat())
