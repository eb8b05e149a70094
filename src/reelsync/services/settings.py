"""Settings: string key/values, scoped workspace > volume | queue > job, inherited downwards.

Rules: workspace, volume and queue settings live in the ``setting`` table (``target_id`` "" for the
workspace); a job's own settings live on the job (``job.settings``, also given at submit). The
effective value at a scope is the nearest one up its chain: job > its queue > workspace, volume >
workspace, queue > workspace, site > workspace, server > its site > workspace. Only an admin
writes workspace, volume, queue, site and server settings; a job's
owner (or an admin) writes the job's. ``user`` settings are a user's own preferences (such as
``email_opt_out``), not inherited: users read and write their own (target defaults to the caller),
admins anyone's. Keys are lower-cased ``[a-z0-9_.-]``; values are strings. Only admins read the
``hook_*`` settings (the command lines the server runs): others never see them.
"""

from __future__ import annotations

import re

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor, Setting, SettingScope
from reelsync.errors import NotFoundError, PermissionDeniedError, ValidationError
from reelsync.services.acls import AccessRules
from reelsync.services.auth import require_admin
from reelsync.services.jobs import get_job_row
from reelsync.services.queues import get_queue_row
from reelsync.services.servers import get_server_row
from reelsync.services.sites import get_site_row
from reelsync.services.users import get_user_row
from reelsync.services.volumes import get_volume_row

__all__ = [
    "ADMIN_ONLY_PREFIX",
    "delete_setting",
    "effective_settings",
    "get_setting",
    "list_settings",
    "parse_scope",
    "set_setting",
]

#: settings only admins read (the hooks' command lines)
ADMIN_ONLY_PREFIX = "hook_"
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")


def parse_scope(value: object) -> SettingScope:
    try:
        return SettingScope(str(value).strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in SettingScope)
        raise ValidationError(f"unknown setting scope {value!r}; expected one of {names}") from None


def _key(value: object) -> str:
    key = str(value).strip().lower() if isinstance(value, str) else ""
    if not _KEY_RE.match(key):
        raise ValidationError(f"bad setting key {value!r}: use letters, digits, '_', '.', '-'")
    return key


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValidationError(f"a setting value must be a string, got {value!r}")


def _target(
    session: Session, actor: Actor, scope: SettingScope, target: str | None, *, write: bool
) -> str:
    """The target's id ("" for the workspace), after the permission check."""
    if scope is SettingScope.WORKSPACE:
        if write:
            require_admin(actor, "change workspace settings")
        return ""
    if scope is SettingScope.USER:
        user = get_user_row(session, target) if target else None
        user_id = user.id if user is not None else actor.user_id
        if user_id != actor.user_id and not actor.is_admin:
            raise PermissionDeniedError("only an admin may read or change another user's settings")
        return user_id
    if not target:
        raise ValidationError(f"{scope.value} settings need a target (id or code)")
    if scope is SettingScope.JOB:
        return get_job_row(session, actor, target).id
    if write:
        require_admin(actor, f"change {scope.value} settings")
    if scope is SettingScope.QUEUE:
        return get_queue_row(session, target).id
    if scope is SettingScope.SITE:
        return get_site_row(session, target).id
    if scope is SettingScope.SERVER:
        return get_server_row(session, target.strip().lower()).id
    volume = get_volume_row(session, target)
    if not actor.is_admin and volume.id not in AccessRules(session, actor).visible_volumes():
        raise NotFoundError(f"no volume {target!r}")
    return volume.id


def _table(session: Session, scope: SettingScope, target_id: str) -> dict[str, str]:
    rows = session.execute(
        select(m.Setting.key, m.Setting.value).where(
            m.Setting.scope == scope.value, m.Setting.target_id == target_id
        )
    )
    return {row[0]: row[1] for row in rows.all()}


def _own(session: Session, scope: SettingScope, target_id: str) -> dict[str, str]:
    if scope is SettingScope.JOB:
        job = session.get(m.Job, target_id)
        return dict(job.settings or {}) if job is not None else {}
    return _table(session, scope, target_id)


def effective_settings(session: Session, scope: SettingScope, target_id: str) -> dict[str, str]:
    """The merged settings at a scope, nearest first (no permission check: for the scheduler)."""
    merged = _table(session, SettingScope.WORKSPACE, "")
    if scope is SettingScope.JOB:
        job = session.get(m.Job, target_id)
        if job is not None:
            merged.update(_table(session, SettingScope.QUEUE, job.queue_id))
            merged.update(job.settings or {})
        return merged
    if scope is SettingScope.USER:
        return _table(session, scope, target_id)
    if scope is SettingScope.SERVER:
        server = session.get(m.Server, target_id)
        if server is not None:
            merged.update(_table(session, SettingScope.SITE, server.site_id))
    if scope is not SettingScope.WORKSPACE:
        merged.update(_table(session, scope, target_id))
    return merged


def list_settings(
    db: Database,
    actor: Actor,
    *,
    scope: str | SettingScope,
    target: str | None = None,
    inherited: bool = False,
) -> dict[str, str]:
    """A scope's own settings, or (``inherited``) the effective ones."""
    kind = parse_scope(scope)
    with db.reader() as session:
        target_id = _target(session, actor, kind, target, write=False)
        found = (effective_settings if inherited else _own)(session, kind, target_id)
    if actor.is_admin:
        return found
    return {k: v for k, v in found.items() if not k.startswith(ADMIN_ONLY_PREFIX)}


def get_setting(
    db: Database, actor: Actor, *, scope: str | SettingScope, key: str, target: str | None = None
) -> str | None:
    """The effective value of ``key`` at a scope (inherited), or None."""
    return list_settings(db, actor, scope=scope, target=target, inherited=True).get(_key(key))


def set_setting(
    db: Database,
    actor: Actor,
    *,
    scope: str | SettingScope,
    key: str,
    value: object,
    target: str | None = None,
) -> Setting:
    kind = parse_scope(scope)
    name, text = _key(key), _value(value)
    with db.session() as session:
        target_id = _target(session, actor, kind, target, write=True)
        if kind is SettingScope.JOB:
            job = session.get(m.Job, target_id)
            assert job is not None
            job.settings = {**(job.settings or {}), name: text}
        else:
            row = session.scalar(
                select(m.Setting).where(
                    m.Setting.scope == kind.value,
                    m.Setting.target_id == target_id,
                    m.Setting.key == name,
                )
            )
            if row is None:
                session.add(m.Setting(scope=kind.value, target_id=target_id, key=name, value=text))
            else:
                row.value = text
        return Setting(scope=kind, target_id=target_id or None, key=name, value=text)


def delete_setting(
    db: Database,
    actor: Actor,
    *,
    scope: str | SettingScope,
    key: str,
    target: str | None = None,
    missing_ok: bool = False,
) -> bool:
    """Remove a setting; False if it was not set (NotFoundError unless ``missing_ok``)."""
    kind = parse_scope(scope)
    name = _key(key)
    with db.session() as session:
        target_id = _target(session, actor, kind, target, write=True)
        if kind is SettingScope.JOB:
            job = session.get(m.Job, target_id)
            assert job is not None
            if name not in (job.settings or {}):
                if missing_ok:
                    return False
                raise NotFoundError(f"the job has no setting {name!r}")
            job.settings = {k: v for k, v in job.settings.items() if k != name}
            return True
        result = session.execute(
            delete(m.Setting).where(
                m.Setting.scope == kind.value,
                m.Setting.target_id == target_id,
                m.Setting.key == name,
            )
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            if missing_ok:
                return False
            raise NotFoundError(f"no {kind.value} setting {name!r}")
        return True
