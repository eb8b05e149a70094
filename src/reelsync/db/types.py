"""Column types that behave the same on SQLite and PostgreSQL.

Rules: datetimes go in as aware UTC and come out as aware UTC (SQLite keeps no zone, so naive values
read back are UTC by construction); JSON is JSONB on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

__all__ = ["JSONType", "UTCDateTime", "json_text", "utc_text", "utcnow"]

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class _UtcText(FunctionElement[str]):
    """See :func:`utc_text`."""

    type = Text()
    name = "utc_text"
    inherit_cache = True


@compiles(_UtcText, "postgresql")
def _utc_text_pg(element: _UtcText, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    # to_char cuts the fraction (never rounds), as isoformat(timespec="seconds") does
    return f"""to_char(({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')"""


@compiles(_UtcText, "sqlite")
def _utc_text_sqlite(element: _UtcText, compiler: SQLCompiler, **kw: Any) -> str:
    # stored as naive UTC text "YYYY-MM-DD HH:MM:SS[.ffffff]": cut, not parsed (SQLite's date
    # functions round to the millisecond, which can carry a .9995 into the next second)
    column = compiler.process(element.clauses, **kw)
    return f"(substr({column}, 1, 10) || 'T' || substr({column}, 12, 8))"


def utc_text(column: ColumnElement[datetime] | Any) -> ColumnElement[str]:
    """A :class:`UTCDateTime` column as naive UTC ISO text to the second
    (``2026-12-06T08:56:10``; NULL stays NULL), written by the database: a long list read for a
    JSON answer makes no datetime object per value."""
    return _UtcText(column)


class _JsonText(FunctionElement[str]):
    """See :func:`json_text`."""

    type = Text()
    name = "json_text"
    inherit_cache = True


@compiles(_JsonText, "postgresql")
def _json_text_pg(element: _JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS TEXT)"


@compiles(_JsonText, "sqlite")
def _json_text_sqlite(element: _JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))  # kept as its JSON text


def json_text(column: ColumnElement[Any] | Any) -> ColumnElement[str]:
    """A :data:`JSONType` column as its JSON text (NULL stays NULL), not parsed: for an answer
    that only passes it on (``orjson.Fragment``)."""
    return _JsonText(column)
