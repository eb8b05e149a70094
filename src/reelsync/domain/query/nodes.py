"""The syntax tree of an accsyn query, and its canonical text.

Rules: nodes are frozen, slotted and compared by value; :func:`to_text` prints a node so that
parsing the text gives back an equal node (strings are always double-quoted, numbers and booleans
bare, ``null`` for None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "And",
    "Comparison",
    "Lookup",
    "Node",
    "Op",
    "Or",
    "Query",
    "Scalar",
    "Value",
    "to_text",
]

#: A value in a query after coercion: bare ``true``/``false`` => bool, bare numbers => int/float,
#: bare ``null`` => None, everything else (and anything quoted) => str.
Scalar = str | int | float | bool | None

_INT_RE = re.compile(r"^[+-]?[0-9]+$")
_FLOAT_RE = re.compile(r"^[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))([eE][+-]?[0-9]+)?$")


class Op(StrEnum):
    EQ = "="
    NE = "!="
    LT = "<"
    GT = ">"
    LE = "<="
    GE = ">="
    IN = "in"
    NOT_IN = "not in"
    CONTAINS = "contains"
    NOT_CONTAINS = "not contains"
    MATCHES = "matches"
    NOT_MATCHES = "not matches"

    @property
    def is_negated(self) -> bool:
        return self in (Op.NE, Op.NOT_IN, Op.NOT_CONTAINS, Op.NOT_MATCHES)


@dataclass(frozen=True, slots=True)
class Value:
    """A value as written: its text and whether it was quoted (quoted values are never coerced)."""

    text: str
    quoted: bool = False

    @property
    def scalar(self) -> Scalar:
        if self.quoted:
            return self.text
        low = self.text.lower()
        if low == "true":
            return True
        if low == "false":
            return False
        if low == "null":
            return None
        if _INT_RE.match(self.text):
            return int(self.text)
        if _FLOAT_RE.match(self.text):
            return float(self.text)
        return self.text

    @classmethod
    def of(cls, value: Scalar) -> Value:
        """The value a program means: strings quoted, the rest bare."""
        if isinstance(value, str):
            return cls(value, quoted=True)
        if value is None:
            return cls("null")
        if isinstance(value, bool):
            return cls("true" if value else "false")
        return cls(repr(value))


@dataclass(frozen=True, slots=True)
class Comparison:
    """``attr OP value``; ``values`` has one item except for ``in``/``not in``."""

    attr: str
    op: Op
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Lookup:
    """A bare value with no operator: find by id, code or e-mail."""

    value: str


Node = Comparison | And | Or | Lookup


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: the optional leading ``<type> WHERE`` and the condition."""

    entitytype: str | None
    where: Node


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _value_text(value: Value) -> str:
    return _quote(value.text) if value.quoted else value.text


def _node_text(node: Node, parent: str) -> str:
    if isinstance(node, Comparison):
        if node.op in (Op.IN, Op.NOT_IN):
            # parenthesised: a lone quoted "a,b" without them would read as two items
            values = "(" + ", ".join(_value_text(v) for v in node.values) + ")"
        else:
            values = _value_text(node.values[0])
        return f"{node.attr} {node.op.value} {values}"
    if isinstance(node, Lookup):
        return _quote(node.value)
    if isinstance(node, And):
        text = " AND ".join(_node_text(item, "and") for item in node.items)
        return f"({text})" if parent == "and" else text
    text = " OR ".join(_node_text(item, "or") for item in node.items)
    return f"({text})" if parent in ("and", "or") else text


def to_text(query: Query | Node) -> str:
    """The canonical text of a query or condition; ``parse_query(to_text(q)) == q``."""
    if isinstance(query, Query):
        body = _node_text(query.where, "")
        return f"{query.entitytype} WHERE {body}" if query.entitytype else body
    return _node_text(query, "")
