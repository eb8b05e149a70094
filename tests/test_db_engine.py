"""The engine's settings: PostgreSQL's pool keeps a burst's connections (as many as the server's
workers share: ``db_pool_size``) and replaces a connection that died while idle before a
transaction uses it; JSON columns are read exactly (both backends)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import cast, event, literal, literal_column, select, text, type_coerce

import reelsync.db.database as database_module
from reelsync.config import load_server_config
from reelsync.db import Database, pool_size_for
from reelsync.db.types import JSONType
from reelsync.errors import ConfigError

#: the pool is PostgreSQL's: these tests run on that backend alone
_POSTGRES_ONLY = pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)


@pytest.fixture
def pg(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


def _opened(db: Database) -> list[Any]:
    opened: list[Any] = []
    event.listen(db.engine, "connect", lambda conn, _record: opened.append(conn))
    return opened


@pytest.mark.postgres
@_POSTGRES_ONLY
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


def test_the_workers_share_a_budget_of_kept_connections(tmp_path: Path) -> None:
    # PostgreSQL's default max_connections is 100: the workers of one server keep 80 between them
    assert [pool_size_for(n) for n in (1, 2, 4, 8, 32)] == [40, 40, 20, 10, 5]
    assert load_server_config(tmp_path, {}).db_pool_size is None  # the share above
    (tmp_path / "server.toml").write_text("[server]\ndb_pool_size = 12\n")
    assert load_server_config(tmp_path, {}).db_pool_size == 12
    assert load_server_config(tmp_path, {"REELSYNC_DB_POOL_SIZE": "3"}).db_pool_size == 3
    with pytest.raises(ConfigError, match="db_pool_size"):
        load_server_config(tmp_path, {"REELSYNC_DB_POOL_SIZE": "0"})


@pytest.mark.postgres
@_POSTGRES_ONLY
def test_a_smaller_pool_keeps_only_its_size(database_url: str) -> None:
    db = Database(database_url, pool_size=3)
    try:
        opened = _opened(db)
        burst = 6
        inside = threading.Barrier(burst)

        def read() -> None:
            with db.reader() as session:
                session.execute(text("SELECT 1"))
                inside.wait(timeout=30)

        threads = [threading.Thread(target=read) for _ in range(burst)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(opened) == burst  # a burst past the pool still gets its connections
        assert db.engine.pool.checkedin() == 3  # ... and the pool keeps only its size
    finally:
        db.dispose()


@pytest.mark.postgres
@_POSTGRES_ONLY
def test_dispose_waits_for_a_connection_still_checked_out(pg: Database) -> None:
    # a request's thread still in its transaction when the server stops (or a test's fixture
    # drops the database): dispose closes that connection too, once it is back, instead of
    # forgetting it open (psycopg's "deleted while still open" when the collector finds it)
    pool = pg.engine.pool
    counted = pool.checkedout  # type: ignore[attr-defined]
    holding, polled = threading.Event(), threading.Event()

    def checkedout() -> int:
        polled.set()  # dispose has begun
        return int(counted())

    pool.checkedout = checkedout  # type: ignore[attr-defined]
    driver: list[Any] = []

    def request() -> None:
        with pg.reader() as session:
            session.execute(text("SELECT 1"))
            driver.append(session.connection().connection.driver_connection)
            holding.set()
            polled.wait()

    thread = threading.Thread(target=request)
    thread.start()
    holding.wait()
    pg.dispose()
    polled.set()  # (a dispose that did not wait never asked: let the request end)
    thread.join()
    assert driver[0].closed


@pytest.mark.postgres
@_POSTGRES_ONLY
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
