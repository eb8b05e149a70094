"""The engine's settings: PostgreSQL's pool keeps a burst's connections and replaces a
connection that died while idle before a transaction uses it; JSON columns are read exactly
(both backends)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import cast, event, literal, literal_column, select, text, type_coerce

import reelsync.db.database as database_module
from reelsync.db import Database
from reelsync.db.types import JSONType


@pytest.fixture
def pg(database_url: str, db_backend: str) -> Iterator[Database]:
    if db_backend != "postgresql":
        pytest.skip("the pool is PostgreSQL's")
    db = Database(database_url)
    yield db
    db.dispose()


def _opened(db: Database) -> list[Any]:
    opened: list[Any] = []
    event.listen(db.engine, "connect", lambda conn, _record: opened.append(conn))
    return opened


@pytest.mark.postgres
def test_a_burst_of_transactions_keeps_its_connections(pg: Database) -> None:
    opened = _opened(pg)
    burst = 12  # more than SQLAlchemy's default pool of 5
    inside = threading.Barrier(burst)

    def read() -> None:
        with pg.reader() as session:
            session.execute(text("SELECT 1"))
            inside.wait(timeout=30)  # all open at once

    for _ in range(2):
        threads = [threading.Thread(target=read) for _ in range(burst)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(opened) == burst  # the second burst reused the first one's connections


@pytest.mark.postgres
def test_a_connection_gone_while_idle_is_replaced(
    pg: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg.reader() as session:
        pid = session.scalar(text("SELECT pg_backend_pid()"))
    url = pg.engine.url
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=True
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_S", 0.0)  # idle long enough
    with pg.reader() as session:
        assert session.scalar(text("SELECT pg_backend_pid()")) != pid


def test_json_columns_are_read_exactly(database: Database) -> None:
    big = 2**70  # past 64 bits: read by the json module, not orjson (which makes it a float)
    text_value = f'{{"big": {big}, "n": 1.5, "s": "\u00e9t\u00e9", "list": [1, null, true]}}'

    def column(text_value: str) -> Any:  # a JSON value as the database hands it out
        if database.is_sqlite:
            # SQLite keeps JSON as text: the text itself, read as the JSON type
            return type_coerce(literal_column(f"'{text_value}'"), JSONType)
        return cast(literal(text_value), JSONType)

    with database.reader() as session:
        value = session.scalar(select(column(text_value)))
        empty = session.scalar(select(column("{}")))
    assert value == {"big": big, "n": 1.5, "s": "\u00e9t\u00e9", "list": [1, None, True]}
    assert isinstance(value["big"], int)
    assert empty == {}
