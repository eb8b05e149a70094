"""``find`` over wire records: the envelope's ``id``, ``query``, ``limit``, ``skip`` and
``attributes`` applied to records already scoped to what the caller may see (a list, or a
stream read lazily: it is consumed only up to the page asked for).

Rules: ``id`` (get_entity) selects that one record; ``query`` is parsed with the accsyn query
language (an optional ``<type> WHERE`` prefix is dropped) and evaluated case-insensitively; a
reference attribute (``user``, ``queue``, ``site``, ...) matches by id or by its code/e-mail (its
``_hr`` twin, also as ``queue.code``); an attribute the type does not have is an error;
``attributes`` trims each record but always keeps ``id``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reelsync.domain.query import Query, evaluate, parse_query, referenced_attrs, resolve_path
from reelsync.errors import ValidationError
from reelsync.server.accsyn.catalog import known_attributes
from reelsync.server.accsyn.wire import Envelope

__all__ = ["REFERENCE_ATTRS", "matching", "select"]

#: Attributes holding a reference whose code/e-mail sits in ``<attr>_hr``.
REFERENCE_ATTRS = frozenset(
    {
        "user",
        "queue",
        "site",
        "parent",
        "job",
        "volume",
        "share",
        "entity",
        "target",
        "source",
        "destination",
    }
)


#: ``<reference>.<name>`` compares the referenced entity's code or e-mail (``queue.code=high``,
#: ``user.code=lisa@x.com``); ``<reference>.id`` its id.
_TWIN_NAMES = frozenset({"code", "email", "name"})


def _twins(record: Mapping[str, Any], attr: str) -> list[object]:
    twin = record.get(f"{attr}_code")
    if twin is None:
        return []
    return list(twin) if isinstance(twin, list) else [twin]


def _resolve(record: Mapping[str, Any], attr: str) -> Sequence[object]:
    values = list(resolve_path(record, attr))
    if attr in REFERENCE_ATTRS:
        values += _twins(record, attr)
    head, _, rest = attr.partition(".")
    if not values and head in REFERENCE_ATTRS and rest in _TWIN_NAMES:
        values = _twins(record, head) or [
            v for v in resolve_path(record, f"{head}_hr") if v is not None
        ]
    if attr == "email" and not values:
        values = list(resolve_path(record, "code"))
    return values


def _check_attributes(envelope: Envelope, query: Query) -> None:
    """An attribute the entity type does not have is a mistake (accsyn raises too)."""
    kind = envelope.segments[0] if envelope.segments else ""
    known = known_attributes(kind)
    if known is None:
        return
    for attr in sorted(referenced_attrs(query)):
        head = attr.partition(".")[0]
        if head not in known:
            raise ValidationError(
                f"{kind} has no attribute {head!r}",
                hint=f"list them with find('attributes WHERE entitytype={kind}')",
            )


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{key} must be a whole number >= 0, got {value!r}")
    return value


def _attributes(data: Mapping[str, Any]) -> list[str] | None:
    value = data.get("attributes")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ValidationError("attributes must be a list of names")
    return [a.strip().lower() for a in value if a.strip()]


def matching(
    envelope: Envelope,
    records: Iterable[dict[str, Any]],
    *,
    lookup_attrs: Sequence[str] = ("id", "code", "email"),
) -> Iterable[dict[str, Any]]:
    """The records the event's ``id`` or ``query`` selects, lazily, in order."""
    if envelope.id is not None:
        wanted = envelope.id.lower()
        return (r for r in records if str(r.get("id", "")).lower() == wanted)
    if envelope.query:
        query = parse_query(envelope.query)
        _check_attributes(envelope, query)
        return (
            r for r in records if evaluate(query, r, resolve=_resolve, lookup_attrs=lookup_attrs)
        )
    return records


def select(
    envelope: Envelope,
    records: Iterable[dict[str, Any]],
    *,
    lookup_attrs: Sequence[str] = ("id", "code", "email"),
    matched: bool = False,
    public: bool = False,
) -> list[dict[str, Any]]:
    """The records the event asks for, in order, paged and trimmed. ``matched``: the caller
    already kept only the records the ``query`` selects (see :func:`matching`); the query's
    attributes are still checked. ``public``: the records carry no helper keys (as
    :mod:`reelsync.server.accsyn.jobrows` makes them): they are answered as they are."""
    data = envelope.data_dict
    skip = _int(data, "skip") or 0
    limit = _int(data, "limit")
    if matched and envelope.id is None and envelope.query:
        _check_attributes(envelope, parse_query(envelope.query))
    else:
        records = matching(envelope, records, lookup_attrs=lookup_attrs)
    # lazily: records may be a stream read from the database, stopped once the page is full
    chosen = list(itertools.islice(records, skip, skip + limit if limit else None))
    names = _attributes(data)
    if names:
        keep = {"id", *names}
        chosen = [{k: v for k, v in r.items() if k in keep} for r in chosen]
    return chosen if public else [_public(r) for r in chosen]


#: The helper keys of each record shape seen (its keys in order -> those ending in ``_code``).
_HELPERS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` without its internal helper keys (``<ref>_code``), which never leave the
    server. Records of one type share their keys, so which keys to drop is worked out once per
    shape (a find of 500 jobs spent ~10 % of its time testing every key of every record)."""
    keys = tuple(record)
    helpers = _HELPERS.get(keys)
    if helpers is None:
        if len(_HELPERS) > 1024:  # shapes are few; records with free keys must not grow this
            _HELPERS.clear()
        helpers = _HELPERS[keys] = tuple(k for k in keys if k.endswith("_code"))
    if not helpers:
        return record
    public = dict(record)
    for key in helpers:
        del public[key]
    return public
