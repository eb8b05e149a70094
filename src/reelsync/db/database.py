"""The database handle: one engine, sessions, and the schema upgrade.

Rules: SQLite runs in WAL mode with foreign keys on, a busy timeout, and ``BEGIN IMMEDIATE`` for
every transaction that may write (a deferred transaction that later writes can fail at once with
"database is locked" in WAL mode); :meth:`Database.reader` transactions only read: on SQLite a
deferred ``BEGIN`` under ``PRAGMA query_only`` (WAL readers run beside the one writer, never
queueing on its lock), on PostgreSQL ``READ ONLY``, so a write there fails loudly in every test.
PostgreSQL is reached through ``postgresql+psycopg://``; its pool keeps up to
:data:`POOL_SIZE` connections (one per request thread: a connection closed on its return and
opened again for the next request costs PostgreSQL a backend each time), and a connection is
pinged when it is handed out only if it sat unused for :data:`PING_AFTER_IDLE_S` (a ping per
checkout was one more round trip on every transaction). The schema is made and upgraded only by
Alembic (:func:`upgrade_to_head`), never by ``create_all``. A SQLite
file holds every secret's hash and the whole workspace: it and its ``-wal``/``-shm`` files are
made (and kept) readable by their owner only (0600; SQLite gives the side files the main file's
mode). :meth:`Database.transaction` makes several service calls one transaction: every
:meth:`~Database.session` and :meth:`~Database.reader` opened inside it (same thread or task)
joins it, so they commit together or not at all. :meth:`Database.snapshot` does the same for
reads: every :meth:`~Database.reader` inside it joins one read-only transaction (one snapshot,
one ``BEGIN``/``COMMIT`` for a page that reads several things); a :meth:`~Database.session` or
:meth:`~Database.transaction` inside it is an error. JSON columns are read by orjson.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DataError, DisconnectionError, OperationalError
from sqlalchemy.exc import IntegrityError as DbIntegrityError
from sqlalchemy.orm import Session, sessionmaker

from reelsync.errors import (
    ConfigError,
    ConflictError,
    InternalError,
    UnavailableError,
    ValidationError,
)

__all__ = [
    "MIGRATIONS_DIR",
    "PING_AFTER_IDLE_S",
    "POOL_BUDGET",
    "POOL_SIZE",
    "READ_ONLY_OPTION",
    "Database",
    "pool_size_for",
    "upgrade_to_head",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: The execution option marking a read-only transaction (see :meth:`Database.reader`).
READ_ONLY_OPTION = _READ_ONLY = "reelsync_read_only"
#: PostgreSQL connections kept open per process: the web server's request threads (40) each
#: hold at most one, so a burst never closes what it opened (the pool kept 5 before)
POOL_SIZE = 40
#: PostgreSQL connections the worker processes of one control plane keep open between them (its
#: default ``max_connections`` is 100, some reserved): each of N workers keeps ``80 // N``, from 5
#: to :data:`POOL_SIZE` (:func:`pool_size_for`); ``[server] db_pool_size`` overrides it
POOL_BUDGET = 80
#: a PostgreSQL connection unused for longer is pinged when handed out (a restarted database
#: or a dropped link is found there, not in the request's first statement)
PING_AFTER_IDLE_S = 2.0
_IDLE_SINCE = "reelsync_idle_since"
#: how long :meth:`Database.dispose` waits for connections still checked out
_DISPOSE_WAIT_S = 10.0
_DISPOSE_POLL_S = 0.01


_LONG_NUMBER = re.compile(r"[0-9]{19}")
_LONG_NUMBER_BYTES = re.compile(rb"[0-9]{19}")


def _json_loads(data: str | bytes | memoryview) -> Any:
    """A JSON column's value, read by orjson (a job has two; reading the ~500 running jobs took
    17 % less CPU than with :mod:`json`). A text with a number of 19 digits or more goes to
    :mod:`json`, which keeps an integer past 64 bits exact (orjson would make it a float)."""
    if isinstance(data, str):
        long = _LONG_NUMBER.search(data) is not None
    else:
        long = _LONG_NUMBER_BYTES.search(data) is not None
    if not long:
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(data)
    return json.loads(bytes(data) if isinstance(data, memoryview) else data)


def _check_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"bad database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported database {backend!r}; use sqlite:/// or postgresql+psycopg://"
        )
    if backend == "postgresql" and parsed.drivername != "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False)
    return url


def _private_sqlite_file(path: Path) -> None:
    """Make ``path`` (and its folder) if missing, owner-only; tighten what is already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)
        except FileNotFoundError:
            continue
        except PermissionError:  # not ours (a read-only copy): leave it as it is
            continue


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_READ_ONLY):
            conn.exec_driver_sql("PRAGMA query_only=1")
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("PRAGMA query_only=0")
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _postgresql_setup(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return  # opened just now, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            # the pool drops this connection (and those older than it) and hands out another
            raise DisconnectionError(f"a pooled connection is gone: {exc}") from exc


#: The transaction opened by :meth:`Database.transaction` (or, read-only, :meth:`Database.snapshot`)
#: in this context: its database, its session, whether it only reads.
_JOINED: ContextVar[tuple[Database, Session, bool] | None] = ContextVar("db_joined", default=None)


def pool_size_for(processes: int) -> int:
    """PostgreSQL connections each of ``processes`` workers keeps (see :data:`POOL_BUDGET`)."""
    return max(5, min(POOL_SIZE, POOL_BUDGET // max(1, processes)))


class Database:
    """An engine and its session factory. Make one per process and pass it down. ``pool_size``:
    PostgreSQL connections kept open (10 more may open for a burst and close after it)."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = POOL_SIZE) -> None:
        self.url = _check_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "future": True, "json_deserializer": _json_loads}
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                _private_sqlite_file(Path(database).expanduser())
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 10
        self.engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine)
        else:
            _postgresql_setup(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        read_only: dict[str, Any] = {_READ_ONLY: True}
        if self.dialect == "postgresql":  # BEGIN READ ONLY: one round trip, not BEGIN + SET
            read_only["postgresql_readonly"] = True
        self._readers = sessionmaker(
            self.engine.execution_options(**read_only), expire_on_commit=False
        )

    @property
    def session_factory(self) -> sessionmaker[Session]:
        """The sessionmaker behind :meth:`session` (a target for ORM event listeners)."""
        return self._sessions

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error.

        A constraint the services did not foresee (a race between two writers) becomes a
        :class:`ConflictError`; a value the database refuses (NUL in text, integer overflow) a
        :class:`ValidationError`; a database that cannot be reached an :class:`UnavailableError`.
        """
        joined = self._joined(write=True)
        if joined is not None:
            yield joined
            joined.flush()
            return
        with self._translated(self._sessions) as session:
            yield session

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only session in one transaction (one consistent snapshot). On SQLite it does
        not take the write lock, so reads run beside the writer; a write in it is an error.
        Inside :meth:`transaction` it is that transaction (which sees its own writes)."""
        joined = self._joined()
        if joined is not None:
            yield joined
            return
        with self._translated(self._readers) as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One write transaction around several service calls (a create and its notes): each
        :meth:`session`/:meth:`reader` inside joins it; all commit at the end or none does. Nested,
        it joins the one already open."""
        joined = self._joined(write=True)
        if joined is not None:
            yield joined
            return
        with self._translated(self._sessions) as session:
            token = _JOINED.set((self, session, False))
            try:
                yield session
            finally:
                _JOINED.reset(token)

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """One read-only transaction around several service calls that only read (a web page's
        list and its filter choices): each :meth:`reader` inside joins it. Inside
        :meth:`transaction` (or another snapshot) it joins the one already open."""
        joined = self._joined()
        if joined is not None:
            yield joined
            return
        with self._translated(self._readers) as session:
            token = _JOINED.set((self, session, True))
            try:
                yield session
            finally:
                _JOINED.reset(token)

    def _joined(self, *, write: bool = False) -> Session | None:
        current = _JOINED.get()
        if current is None or current[0] is not self:
            return None
        if write and current[2]:
            raise InternalError("a write inside Database.snapshot (it only reads)")
        return current[1]

    @contextmanager
    def _translated(self, factory: sessionmaker[Session]) -> Iterator[Session]:
        try:
            with factory.begin() as session:
                yield session
        except DbIntegrityError as exc:
            raise ConflictError(
                "the change conflicts with existing data (another request changed it first)",
                hint="reload and try again",
            ) from exc
        except DataError as exc:
            raise ValidationError(
                "a value cannot be stored (too large a number, or a NUL character in a text)"
            ) from exc
        except OperationalError as exc:
            raise UnavailableError(f"the database is unavailable: {exc.orig}") from exc

    def upgrade(self) -> None:
        """Create or upgrade the schema to the newest revision."""
        upgrade_to_head(self.url, engine=self.engine)

    def dispose(self, *, wait_s: float = _DISPOSE_WAIT_S) -> None:
        """Close the pool's connections. A connection still checked out (a request's thread
        finishing its transaction after the request was dropped or the server began to stop) is
        waited for, at most ``wait_s``, then closed with the others: disposed at once, the pool
        would forget it, and it would stay open until the garbage collector found it."""
        pool = self.engine.pool
        checked_out = getattr(pool, "checkedout", None)  # a queue pool's (all but :memory:)
        if checked_out is not None:
            deadline = time.monotonic() + wait_s
            while checked_out() > 0 and time.monotonic() < deadline:
                time.sleep(_DISPOSE_POLL_S)
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = url
    return config


def upgrade_to_head(url: str, *, engine: Engine | None = None) -> None:
    """Run every Alembic migration up to the newest (idempotent)."""
    own = engine is None
    engine = engine or Database(url).engine
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise UnavailableError(f"cannot reach the database to upgrade it: {exc.orig}") from exc
    finally:
        if own:
            engine.dispose()
