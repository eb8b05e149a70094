"""Who gets the mail of a job event, from the settings (accsyn spec section 3, "E-mail").

Rules:
- What an admin set wins over what a job's owner sets on the job: ``email_enabled`` is the queue's
  own value, else the workspace's, and only where neither is set the job's (false/0/no/off:
  nobody); the job's own ``email_job_<event>_recipients`` may name only users of the workspace;
  the job's own ``email_exclude`` removes only the creator and the job's own recipients, never
  the queue's or volumes' (the queue's or workspace's ``email_exclude`` removes anybody).
- Done/failed: the job's creator, plus ``email_job_<event>_recipients`` of the job's queue (the
  queue's own value, else the workspace's) and of every volume the job reads or writes (each
  volume's own value). Submitted: only ``email_job_submit_recipients`` (off unless set).
- Removed: addresses in ``email_exclude`` (effective), disabled users, and users who opted out
  with the USER-scoped setting ``email_opt_out`` = true (row ``scope='user'``, ``target_id`` =
  user id; written by ``services.users.update_preferences`` behind ``PATCH
  /api/v1/users/{ref}/preferences`` and ``reelsync user opt-out``, or by :func:`set_opt_out`).
  Only the user is removed: the queue's and volumes' other recipients still get the mail.
- Lists are comma, semicolon or whitespace separated; addresses are compared lower-cased.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import delete, select, union
from sqlalchemy.orm import Session

from reelsync.db import models as m
from reelsync.services.users import EMAIL_OPT_OUT_KEY

__all__ = [
    "OPT_OUT_KEY",
    "USER_SCOPE",
    "is_true",
    "job_recipients",
    "job_settings",
    "opted_out",
    "set_opt_out",
    "split_addresses",
]

OPT_OUT_KEY = EMAIL_OPT_OUT_KEY
USER_SCOPE = "user"
_SPLIT = re.compile(r"[,;\s]+")
_EVENT_KEYS = {
    "done": "email_job_done_recipients",
    "failed": "email_job_failed_recipients",
    "submitted": "email_job_submit_recipients",
}


def is_true(value: str | None, *, default: bool = False) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in ("false", "0", "no", "off")


def split_addresses(value: str | None) -> list[str]:
    return [a.lower() for a in _SPLIT.split(value or "") if "@" in a]


def _scope(session: Session, scope: str, target_id: str) -> dict[str, str]:
    rows = session.execute(
        select(m.Setting.key, m.Setting.value).where(
            m.Setting.scope == scope, m.Setting.target_id == target_id
        )
    )
    return dict(rows.all())


def job_settings(session: Session, job: m.Job) -> dict[str, str]:
    """Effective settings at the job: workspace < queue < job."""
    merged = _scope(session, "workspace", "")
    merged.update(_scope(session, "queue", job.queue_id))
    merged.update(job.settings or {})
    return merged


def _job_volume_ids(session: Session, job_id: str) -> list[str]:
    src = select(m.Task.source_volume_id.label("v")).where(m.Task.job_id == job_id)
    dst = select(m.Task.destination_volume_id.label("v")).where(m.Task.job_id == job_id)
    return [str(v) for v in session.scalars(select(union(src, dst).subquery().c.v))]


def opted_out(session: Session, emails: Iterable[str]) -> set[str]:
    """The addresses (lower-cased) of disabled users and users who opted out."""
    wanted = {e.lower() for e in emails}
    if not wanted:
        return set()
    users = session.execute(
        select(m.User.id, m.User.email, m.User.enabled).where(m.User.email.in_(wanted))
    ).all()
    out = {email.lower() for _, email, enabled in users if not enabled}
    ids = {uid: email.lower() for uid, email, _ in users}
    if ids:
        rows = session.execute(
            select(m.Setting.target_id, m.Setting.value).where(
                m.Setting.scope == USER_SCOPE,
                m.Setting.key == OPT_OUT_KEY,
                m.Setting.target_id.in_(list(ids)),
            )
        )
        out |= {ids[uid] for uid, value in rows.all() if is_true(value)}
    return out


def _users_among(session: Session, emails: list[str]) -> list[str]:
    """The addresses of ``emails`` that belong to users of the workspace, in order."""
    if not emails:
        return []
    known = set(session.scalars(select(m.User.email).where(m.User.email.in_(emails))))
    return [e for e in emails if e in {k.lower() for k in known}]


def job_recipients(session: Session, job: m.Job, event: str) -> tuple[str, ...]:
    """Recipients of ``event`` (done | failed | submitted) for ``job``, in a stable order."""
    workspace = _scope(session, "workspace", "")
    queue = _scope(session, "queue", job.queue_id)
    own = dict(job.settings or {})
    enabled = queue.get("email_enabled", workspace.get("email_enabled"))
    if enabled is None:
        enabled = own.get("email_enabled")
    if not is_true(enabled, default=True):
        return ()
    key = _EVENT_KEYS[event]
    admins: list[str] = []  # what an admin configured: the job's owner cannot remove it
    creators: list[str] = []
    if event in ("done", "failed"):
        creator = session.scalar(select(m.User.email).where(m.User.id == job.user_id))
        if creator:
            creators.append(creator.lower())
    queue_scoped = queue.get(key)
    if queue_scoped is None:
        queue_scoped = workspace.get(key)
    admins += split_addresses(queue_scoped)
    owners = creators + _users_among(session, split_addresses(own.get(key)))
    for volume_id in sorted(_job_volume_ids(session, job.id)):
        admins += split_addresses(_scope(session, "volume", volume_id).get(key))
    admin_exclude = queue.get("email_exclude", workspace.get("email_exclude"))
    excluded = set(split_addresses(admin_exclude)) | opted_out(session, admins + owners)
    owner_excluded = set(split_addresses(own.get("email_exclude")))
    unique: list[str] = []
    for address in creators + admins + owners:
        if address in excluded or address in unique:
            continue
        if address in owner_excluded and address not in admins:
            continue
        unique.append(address)
    return tuple(unique)


def set_opt_out(session: Session, user_id: str, opt_out: bool) -> None:
    """Record (or clear) a user's opt-out from job e-mails."""
    session.execute(
        delete(m.Setting).where(
            m.Setting.scope == USER_SCOPE,
            m.Setting.target_id == user_id,
            m.Setting.key == OPT_OUT_KEY,
        )
    )
    if opt_out:
        session.add(m.Setting(scope=USER_SCOPE, target_id=user_id, key=OPT_OUT_KEY, value="true"))
