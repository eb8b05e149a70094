"""Shared fixtures. Every database test runs twice: on a SQLite file and on PostgreSQL.

- ``database_url``: a fresh, EMPTY database (no schema) on each backend; PostgreSQL databases are
  created under a unique name on 127.0.0.1:5432 as user postgres (``REELSYNC_TEST_PG_URL``
  overrides the server) and dropped afterwards.
- ``database``: a :class:`reelsync.db.Database` with the schema at head (copied from a template
  migrated once per session, so tests stay fast). On PostgreSQL the copies are made ahead and
  dropped behind by two threads of the session (:class:`_PgCopies`), so a test never waits for
  ``DROP DATABASE``, nor for ``CREATE DATABASE`` unless the copies are behind.
- ``module_database``: the same, one per test module and backend, for tests that only read it.
- ``workspace``: ``database`` after ``init_workspace`` (workspace ``acmepost``, admin
  ``admin@acmepost.com``); ``admin``: that admin's Actor.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
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


class _PgCopies:
    """Copies of the template database, made ahead (``ahead`` at most) by one thread and dropped
    behind by another, so that ``take`` rarely waits. Only the first thread copies the template
    (PostgreSQL refuses a copy while another session is connected to it). A failed copy is
    raised by the ``take`` waiting for it, a failed drop by ``close``; the threads go on."""

    def __init__(self, template: str, ahead: int = 2) -> None:
        self._template = template
        self._ahead = ahead
        self._ready: deque[str] = deque()
        self._dead: deque[str] = deque()
        self._wanted = 0  # takers waiting
        self._error: BaseException | None = None
        self._drop_error: BaseException | None = None
        self._closing = False
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._copy_ahead, name="pg-copies", daemon=True),
            threading.Thread(target=self._drop_behind, name="pg-drops", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def take(self) -> str:
        with self._cond:
            self._wanted += 1
            self._cond.notify_all()
            try:
                while not self._ready and self._error is None:
                    self._cond.wait()
                if self._error is not None:
                    error, self._error = self._error, None
                    raise RuntimeError("copying the template database failed") from error
                return self._ready.popleft()
            finally:
                self._wanted -= 1
                self._cond.notify_all()

    def discard(self, name: str) -> None:
        with self._cond:
            self._dead.append(name)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        for name in self._ready:
            pg_drop_database(name)
        if self._error is not None:
            raise RuntimeError("copying the template database failed") from self._error
        if self._drop_error is not None:
            raise RuntimeError("dropping a test database failed") from self._drop_error

    def _copy_ahead(self) -> None:
        while True:
            with self._cond:
                while not self._closing and (
                    self._error is not None or len(self._ready) >= max(self._ahead, self._wanted)
                ):
                    self._cond.wait()
                if self._closing:
                    return
            try:
                made = pg_create_database(template=self._template)
            except BaseException as exc:  # handed to the test that takes next
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                continue
            with self._cond:
                self._ready.append(made)
                self._cond.notify_all()

    def _drop_behind(self) -> None:
        while True:
            with self._cond:
                while not self._dead and not self._closing:
                    self._cond.wait()
                if not self._dead:
                    return  # closing, and nothing left to drop
                name = self._dead.popleft()
            try:
                pg_drop_database(name)
            except BaseException as exc:  # raised by close
                self._drop_error = exc


@pytest.fixture(scope="session")
def _pg_copies(_pg_template: str) -> Iterator[_PgCopies]:
    copies = _PgCopies(_pg_template)
    try:
        yield copies
    finally:
        copies.close()


@contextmanager
def _migrated_database(
    backend: str, directory: Path, request: pytest.FixtureRequest
) -> Iterator[Database]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        target = directory / "reelsync.db"
        shutil.copyfile(template, target)
        db = Database(f"sqlite:///{target}")
        try:
            yield db
        finally:
            db.dispose()
        return
    copies: _PgCopies = request.getfixturevalue("_pg_copies")
    name = copies.take()
    db = Database(_pg_url(name))
    try:
        yield db
    finally:
        db.dispose()
        copies.discard(name)


@pytest.fixture
def database(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A Database with the schema at head, on the parametrised backend."""
    with _migrated_database(db_backend, tmp_path, request) as db:
        yield db


@pytest.fixture(scope="module", params=BACKENDS)
def module_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """``database`` shared by the tests of a module that only read it (they say so)."""
    with _migrated_database(request.param, tmp_path_factory.mktemp("db"), request) as db:
        yield db


@pytest.fixture
def workspace(database: Database) -> InitResult:
    return init_workspace(database, "acmepost", "admin@acmepost.com", admin_name="Admin")


@pytest.fixture
def admin(workspace: InitResult) -> Actor:
    return Actor(user_id=workspace.admin.id, email=workspace.admin.email, role=workspace.admin.role)


pytest_plugins = ["support.fixtures"]
