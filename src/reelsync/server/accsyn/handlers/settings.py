"""The ``setting`` event: GET (one value, or all as a dict), PUT (set), DELETE.

Scopes: ``workspace`` (no id), ``volume``/``share`` (id = volume), ``queue``, ``job``/``transfer``
(id = job; a queue id with entitytype ``job`` means that queue, as accsyn's queues are jobs),
``user`` (id or e-mail; none = the caller's own), ``site`` (id or code), ``server``/``client``
(id).
3.0 sends ``{scope, name, ident, value}`` instead of ``{entitytype, name, value}`` + ``id``.
"""

from __future__ import annotations

from typing import Any

from reelsync.domain.ids import is_entity_id
from reelsync.domain.records import SettingScope
from reelsync.errors import NotFoundError, NotSupportedError, ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import flag, text_field
from reelsync.services import queues, settings

__all__: list[str] = []

_SCOPES = {
    "workspace": SettingScope.WORKSPACE,
    "volume": SettingScope.VOLUME,
    "share": SettingScope.VOLUME,
    "queue": SettingScope.QUEUE,
    "job": SettingScope.JOB,
    "transfer": SettingScope.JOB,
    "user": SettingScope.USER,
    "site": SettingScope.SITE,
    "server": SettingScope.SERVER,
    "client": SettingScope.SERVER,
}


def _scope(call: Call) -> tuple[SettingScope, str | None]:
    data = call.data
    kind = (text_field(data, "entitytype") or text_field(data, "scope") or "workspace").lower()
    if kind not in _SCOPES:
        if kind in ("folder", "home"):
            raise NotSupportedError(f"{kind} settings are not supported by reelsync")
        raise ValidationError(
            f"unknown settings scope {kind!r};"
            " use workspace, volume, queue, job, user, site or server"
        )
    scope = _SCOPES[kind]
    ref = call.envelope.id or text_field(data, "ident")
    if scope is SettingScope.WORKSPACE:
        return scope, None
    if scope is SettingScope.USER:
        return scope, ref.strip() if ref else None  # no id: the caller's own
    if not ref:
        raise ValidationError(f"{kind} settings need the {kind}'s id (entityid)")
    if scope is SettingScope.JOB and is_entity_id(ref.lower()):
        try:
            queue = queues.get_queue(call.db, call.actor, ref.lower())
        except NotFoundError:
            pass
        else:
            return SettingScope.QUEUE, queue.id
    return scope, ref.strip()


@route("GET", ("setting",), "")
def get(call: Call) -> Any:
    scope, ref = _scope(call)
    name = text_field(call.data, "name")
    if name:
        return settings.get_setting(call.db, call.actor, scope=scope, key=name, target=ref)
    upstream = bool(flag(call.data, "upstream"))
    return settings.list_settings(call.db, call.actor, scope=scope, target=ref, inherited=upstream)


@route("PUT", ("setting",), "")
def put(call: Call) -> bool:
    scope, ref = _scope(call)
    name = text_field(call.data, "name", required=True) or ""
    value = call.data.get("value")
    if value is None or isinstance(value, dict | list):
        raise ValidationError("a setting's value must be a string (JSON-encode objects first)")
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    settings.set_setting(call.db, call.actor, scope=scope, key=name, value=text, target=ref)
    return True


@route("DELETE", ("setting",), "")
def delete(call: Call) -> bool:
    scope, ref = _scope(call)
    name = text_field(call.data, "name", required=True) or ""
    # accsyn answers true for a key that was never set: the setting is gone either way.
    settings.delete_setting(call.db, call.actor, scope=scope, key=name, target=ref, missing_ok=True)
    return True
