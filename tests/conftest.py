"""Shared fixtures. Every database test runs twice: on a SQLite file and on PostgreSQL.

- ``database_url``: a fresh, EMPTY database (no schema) on each backend; PostgreSQL databases are
  created under a unique name on 127.0.0.1:5432 as user postgres (``REELSYNC_TEST_PG_URL``
  overrides the server) and dropped afterwards.
- ``database``: a :class:`reelsync.db.Database` with the schema at head (copied from a template
  migrated once per session, so tests stay fast).
- ``workspace``: ``database`` after ``init_workspace`` (workspace ``acmepost``, admin
  ``admin@acmepost.com``); ``admin``: that admin's Actor.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from reelsync.db import Database, upgrade_to_head
from reelsync.domain.records import Actor
from reelsync.services.bootstrap import InitResult, init_workspace

#: accsyn's own client tests, vendored unchanged: run by test_accsyn_upstream.py in their own venv.
collect_ignore = ["accsyn_upstream"]

PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def pg_server_url() -> str:
    return os.environ.get("REELSYNC_TEST_PG_URL", PG_DEFAULT_URL)


def _pg_url(name: str) -> str:
    return make_url(pg_server_url()).set(database=name).render_as_string(hide_password=False)


def _pg_admin() -> psycopg.Connection[tuple[object, ...]]:
    url = make_url(pg_server_url())
    try:
        return psycopg.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password,
            dbname=url.database or "postgres",
            autocommit=True,
        )
    except psycopg.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL is needed for the database tests ({pg_server_url()}): {exc}")


def pg_create_database(template: str | None = None) -> str:
    name = f"reelsync_test_{uuid.uuid4().hex[:16]}"
    with _pg_admin() as conn:
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def pg_drop_database(name: str) -> None:
    with _pg_admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(db_backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on the parametrised backend."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'reelsync.db'}"
        return
    name = pg_create_database()
    try:
        yield _pg_url(name)
    finally:
        pg_drop_database(name)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade_to_head(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str]:
    name = pg_create_database()
    try:
        upgrade_to_head(_pg_url(name))
        yield name
    finally:
        pg_drop_database(name)


@pytest.fixture
def database(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A Database with the schema at head, on the parametrised backend."""
    if db_backend == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        target = tmp_path / "reelsync.db"
        shutil.copyfile(template, target)
        db = Database(f"sqlite:///{target}")
        try:
            yield db
        finally:
            db.dispose()
        return
    name = pg_create_database(template=request.getfixturevalue("_pg_template"))
    db = Database(_pg_url(name))
    try:
        yield db
    finally:
        db.dispose()
        pg_drop_database(name)


@pytest.fixture
def workspace(database: Database) -> InitResult:
    return init_workspace(database, "acmepost", "admin@acmepost.com", admin_name="Admin")


@pytest.fixture
def admin(workspace: InitResult) -> Actor:
    return Actor(user_id=workspace.admin.id, email=workspace.admin.email, role=workspace.admin.role)


pytest_plugins = ["support.fixtures"]
