"""The accsyn query language (spec section 2): parse, print and evaluate find() expressions.

``parse_query("Job WHERE code='proj001' AND (status=waiting OR status=paused)")`` gives a
:class:`Query`; :func:`evaluate` tests it against a record case-insensitively; :func:`to_text`
prints it back. Malformed text raises :class:`reelsync.errors.QuerySyntaxError`.
"""

from __future__ import annotations

from reelsync.domain.query.evaluate import (
    LOOKUP_ATTRS,
    Resolver,
    evaluate,
    referenced_attrs,
    resolve_path,
)
from reelsync.domain.query.nodes import (
    And,
    Comparison,
    Lookup,
    Node,
    Op,
    Or,
    Query,
    Scalar,
    Value,
    to_text,
)
from reelsync.domain.query.parser import (
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_LIST_VALUES,
    MAX_QUERY_LENGTH,
    parse_condition,
    parse_query,
)

__all__ = [
    "LOOKUP_ATTRS",
    "MAX_COMPARISONS",
    "MAX_DEPTH",
    "MAX_LIST_VALUES",
    "MAX_QUERY_LENGTH",
    "And",
    "Comparison",
    "Lookup",
    "Node",
    "Op",
    "Or",
    "Query",
    "Resolver",
    "Scalar",
    "Value",
    "evaluate",
    "parse_condition",
    "parse_query",
    "referenced_attrs",
    "resolve_path",
    "to_text",
]
