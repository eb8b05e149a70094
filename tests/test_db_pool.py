"""The PostgreSQL connection pool: a burst keeps its connections, and a connection that died
while idle is replaced before a transaction uses it (real PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text

import reelsync.db.database as database_module
from reelsync.db import Database

pytestmark = pytest.mark.postgres


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
