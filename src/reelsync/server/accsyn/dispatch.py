"""Which handler answers an event: a table keyed by (verb, entity kind, action).

Rules: the uri's first segment is the entity kind (``job``, ``volume``, ...), the rest the action
(``find``, ``task/create``, ``""`` for ``setting``). Kinds reelsync deliberately does not serve,
and delivery/publish/report actions on served kinds, answer NotSupportedError; an unknown
operation on a served kind answers ValidationError naming what exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reelsync.errors import NotSupportedError, ValidationError
from reelsync.server.accsyn.catalog import check_supported

if TYPE_CHECKING:
    from reelsync.server.accsyn.call import Call

__all__ = ["Handler", "lookup", "route", "routes"]

Handler = Callable[["Call"], Any]


@dataclass(frozen=True, slots=True)
class _Key:
    verb: str
    kind: str
    action: str


_ROUTES: dict[_Key, Handler] = {}

_UNSUPPORTED_ACTIONS: dict[str, str] = {
    "recipient": "delivery recipients",
    "recipients": "delivery recipients",
    "report": "reports of this entity type",
    "metrics": "metrics of this entity type (jobs have them)",
    "publish": "publishing",
    "integration": "integrations",
    "api_key": "fetching API keys (reelsync shows a key once, when it is created)",
    "file": "collection files",
}


def route(verb: str, kinds: Iterable[str], action: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``verb kind/action`` on every kind in ``kinds``."""

    def register(handler: Handler) -> Handler:
        for kind in kinds:
            key = _Key(verb.upper(), kind, action)
            if key in _ROUTES:
                raise RuntimeError(f"two accsyn handlers for {key}")
            _ROUTES[key] = handler
        return handler

    return register


def routes() -> list[tuple[str, str]]:
    """Every (verb, uri) served, sorted."""
    return sorted((k.verb, f"{k.kind}/{k.action}".rstrip("/")) for k in _ROUTES)


def lookup(verb: str, segments: tuple[str, ...]) -> tuple[str, str, Handler]:
    """(kind, action, handler) for an event, or a NotSupported/Validation error."""
    if not segments:
        raise ValidationError("the event has an empty uri")
    kind = segments[0]
    action = "/".join(segments[1:])
    handler = _ROUTES.get(_Key(verb, kind, action))
    if handler is not None:
        return kind, action, handler
    check_supported(kind)
    for segment in segments[1:]:
        what = _UNSUPPORTED_ACTIONS.get(segment)
        if what is not None and not (kind == "workspace" and segment == "file"):
            raise NotSupportedError(
                f"{what}: not supported by reelsync ({verb} {'/'.join(segments)})"
            )
    known = sorted({k.action or "(none)" for k in _ROUTES if k.kind == kind and k.verb == verb})
    if not known:
        verbs = sorted({k.verb for k in _ROUTES if k.kind == kind})
        if verbs:
            raise ValidationError(
                f"{verb} is not an operation on {kind!r}; it takes {', '.join(verbs)}"
            )
        raise ValidationError(
            f"unknown entity type {kind!r} in uri {'/'.join(segments)!r}",
            hint="list them with find('entitytypes')",
        )
    raise ValidationError(
        f"unknown operation {verb} {'/'.join(segments)!r}; {kind} supports {', '.join(known)}"
    )
