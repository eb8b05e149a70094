"""Evaluate a parsed query against one record (a dict of wire fields).

Rules: every comparison is case-insensitive; an attribute may resolve to several candidate values
(a reference matches by id or by e-mail/code) and a positive operator holds when any candidate
holds, its negation (``!=``, ``not in``, ...) when none does, so a missing attribute fails ``=``
and passes ``!=``. ``*`` in an ``=`` value is a wildcard for strings; numbers compare as numbers
and booleans as ``true``/``false``; datetimes compare by their ISO text; a list value ``contains``
an item it holds; ``matches`` is a regular expression searched in the text, run by RE2 in time
linear in the text (:mod:`reelsync.domain.regex`).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reelsync.domain.query.nodes import And, Comparison, Lookup, Node, Op, Or, Query, Value
from reelsync.domain.regex import Pattern, PatternError, compile_pattern

__all__ = ["LOOKUP_ATTRS", "Resolver", "evaluate", "referenced_attrs", "resolve_path"]

#: Resolves an attribute (lower-case, maybe dotted) of a record to its candidate values.
Resolver = Callable[[Mapping[str, Any], str], Sequence[object]]

#: The attributes a lone value (no operator) is looked up in.
LOOKUP_ATTRS = ("id", "code", "email")

_POSITIVE = {
    Op.NE: Op.EQ,
    Op.NOT_IN: Op.IN,
    Op.NOT_CONTAINS: Op.CONTAINS,
    Op.NOT_MATCHES: Op.MATCHES,
}


_MISSING = object()


def _get(record: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """``record[key]``; attribute names arrive lower-cased, so a lower-cased key matches too."""
    value = record.get(key, _MISSING)
    if value is _MISSING:
        value = record.get(key.lower(), _MISSING)
    return (False, None) if value is _MISSING else (True, value)


def resolve_path(record: Mapping[str, Any], attr: str) -> Sequence[object]:
    """The value at ``attr``: a key, else a dotted walk through nested objects; a string met
    where an object was expected is a reference, so ``job.id`` on ``{"job": "<id>"}`` is the id."""
    found, value = _get(record, attr)
    if found:
        return [value]
    parts = attr.split(".")
    current: Any = record
    for index, part in enumerate(parts):
        if isinstance(current, Mapping):
            found, current = _get(current, part)
            if not found:
                return []
        elif isinstance(current, str) and part == "id" and index == len(parts) - 1:
            return [current]
        else:
            return []
    return [current]


def _text(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(timespec="seconds")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return None if number != number else number  # NaN never compares


@functools.lru_cache(maxsize=512)
def _wildcard(pattern: str) -> re.Pattern[str]:
    body = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def _regex(pattern: str) -> Pattern:
    try:
        return compile_pattern(pattern)
    except PatternError:  # the parser refused it already; a hand-built node never matches
        return _NEVER


_NEVER = compile_pattern("[^\\x00-\\x{10FFFF}]")


def _text_equal(text: str, value: Value) -> bool:
    pattern = value.text.casefold()
    if "*" in pattern:
        return _wildcard(pattern).fullmatch(text.casefold()) is not None
    return text.casefold() == pattern


def _equal(actual: object, value: Value) -> bool:
    if isinstance(actual, str):
        return _text_equal(actual, value)
    if isinstance(actual, list | tuple | set | frozenset):
        return any(_equal(item, value) for item in actual)
    if actual is None:
        return value.scalar is None
    if isinstance(actual, bool):
        return _text(actual) == value.text.lower()
    if isinstance(actual, int | float):
        number = _number(value.text)
        return number is not None and actual == number
    return _text_equal(_text(actual), value)


def _ordered(actual: object, value: Value, op: Op) -> bool:
    if actual is None or isinstance(actual, list | tuple | set | frozenset | Mapping):
        return False
    left: Any
    right: Any
    number = _number(value.text)
    if isinstance(actual, int | float) and not isinstance(actual, bool) and number is not None:
        left, right = actual, number
    else:
        left, right = _text(actual).casefold(), value.text.casefold()
    if op is Op.LT:
        return bool(left < right)
    if op is Op.GT:
        return bool(left > right)
    if op is Op.LE:
        return bool(left <= right)
    return bool(left >= right)


def _contains(actual: object, value: Value) -> bool:
    if actual is None:
        return False
    if isinstance(actual, list | tuple | set | frozenset):
        return any(_equal(item, value) for item in actual)
    if isinstance(actual, Mapping):
        return any(isinstance(k, str) and k.casefold() == value.text.casefold() for k in actual)
    return value.text.casefold() in _text(actual).casefold()


def _holds(op: Op, actual: object, values: tuple[Value, ...]) -> bool:
    if op is Op.EQ:
        return _equal(actual, values[0])
    if op is Op.IN:
        return any(_equal(actual, v) for v in values)
    if op is Op.CONTAINS:
        return _contains(actual, values[0])
    if op is Op.MATCHES:
        if actual is None:
            return False
        if isinstance(actual, list | tuple | set | frozenset):
            return any(_regex(values[0].text).found(_text(item)) for item in actual)
        return _regex(values[0].text).found(_text(actual))
    return _ordered(actual, values[0], op)


def _compare(node: Comparison, record: Mapping[str, Any], resolve: Resolver) -> bool:
    candidates = resolve(record, node.attr)
    positive = _POSITIVE.get(node.op)
    if positive is not None:
        return not any(_holds(positive, c, node.values) for c in candidates)
    return any(_holds(node.op, c, node.values) for c in candidates)


def evaluate(
    query: Query | Node,
    record: Mapping[str, Any],
    *,
    resolve: Resolver = resolve_path,
    lookup_attrs: Sequence[str] = LOOKUP_ATTRS,
) -> bool:
    """True when ``record`` satisfies the query (its ``<type> WHERE`` part is not checked)."""
    node = query.where if isinstance(query, Query) else query
    if isinstance(node, Comparison):
        return _compare(node, record, resolve)
    if isinstance(node, And):
        return all(
            evaluate(n, record, resolve=resolve, lookup_attrs=lookup_attrs) for n in node.items
        )
    if isinstance(node, Or):
        return any(
            evaluate(n, record, resolve=resolve, lookup_attrs=lookup_attrs) for n in node.items
        )
    wanted = Value(node.value, quoted=True)
    return any(_equal(c, wanted) for attr in lookup_attrs for c in resolve(record, attr))


def referenced_attrs(query: Query | Node) -> frozenset[str]:
    """The attribute names a query compares (a lone lookup value references none)."""
    node = query.where if isinstance(query, Query) else query
    if isinstance(node, Comparison):
        return frozenset({node.attr})
    if isinstance(node, Lookup):
        return frozenset()
    found: set[str] = set()
    for item in node.items:
        found |= referenced_attrs(item)
    return frozenset(found)
