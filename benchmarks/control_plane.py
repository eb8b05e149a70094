"""The control plane at a studio's size: every call's latency against a real `reelsync server run`
over HTTPS, on SQLite and PostgreSQL, with a long history (not part of the tests).

    python benchmarks/control_plane.py [--jobs 100000] [--big-tasks 100000]
        [--database sqlite,postgres] [--clients 1,16] [--rounds 30] [--submit-s 20]
        [--accsyn-keepalive | --accsyn-one-tls-context] [--client-processes] [--workers N]
        [--calls 'accsyn find(,GET /metrics'] [--keep DIR]
    python benchmarks/control_plane.py --growth 1000,10000,100000,1000000 --database postgres \
        --clients 1 --rounds 20

The history is written straight into the database with bulk inserts (COPY on PostgreSQL, with
the job and task tables' plain indexes built after the load; the server's own triggers keep the
running totals): ``--jobs`` jobs of 1-8 tasks over the last two years, ~1,000 of them
live (waiting, running, paused), 5 queues, 20 employees, plus one job of ``--big-tasks`` tasks.
Then the calls below run from 1 and 16 client threads (each its own HTTPS connection, the
official accsyn client for the accsyn calls), ``--rounds`` times each per client, and the script
prints p50/p95/p99 in ms, errors and HTTP 5xx. ``--submit-s`` then has 8 clients submit ten-file
jobs (POST /api/v1/jobs) while one client times the admin job list. PostgreSQL is
127.0.0.1:5432 (trust auth, as the tests use; REELSYNC_TEST_PG_URL overrides).

``--keep DIR`` keeps the server's data directory, its database and what the calls need in DIR
(one database and one size): the first run loads the history, the next ones start a server on it
again (``PYTHONPATH=<another tree>/src`` in front runs that tree's server on the same history,
for an A/B). Drop it with ``dropdb`` (its name is in DIR/world.json) and ``rm -r DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import random
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import accsyn_api.session as accsyn_module  # noqa: E402

# The accsyn client turns the root logger on at INFO when imported: every library's INFO lines
# (alembic's plugins as it loads, each HTTP request) would fill stderr; this script prints its
# own figures.
logging.getLogger().setLevel(logging.WARNING)

import requests  # noqa: E402
import requests.adapters  # noqa: E402
from accsyn_api.session import Session as AccsynSession  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from reelsync.db import Database  # noqa: E402
from reelsync.db import models as m  # noqa: E402
from reelsync.db.bulk import bulk_insert  # noqa: E402
from reelsync.services import apikeys, queues, sites, users, volumes  # noqa: E402
from reelsync.services.auth import authenticate  # noqa: E402
from reelsync.services.paging import job_cursor  # noqa: E402
from support.postgres import PG_ADMIN_URL, _libpq, fresh_database  # noqa: E402
from support.servers import (  # noqa: E402
    RunningServer,
    child_env,
    reelsync_cmd,
    running_server,
    wait_healthy,
)

LIVE = 1000
EMPLOYEES = 20
QUEUES = ("high", "medium", "low", "proj001", "proj002")
_JOB_COLUMNS = (
    "id", "name", "type", "user_id", "queue_id", "status", "source", "destination",
    "source_site_id", "destination_site_id", "progress", "size", "bytes_done", "speed",
    "speed_sampled_bytes", "task_count", "next_uri", "settings", "metadata", "created",
    "modified", "finished",
)  # fmt: skip
_TASK_COLUMNS = (
    "id", "job_id", "uri", "source_volume_id", "source_path", "destination_volume_id",
    "destination_path", "size", "priority", "status", "tries", "dispatches", "bytes_done",
    "created", "modified", "finished",
)  # fmt: skip


# -- the history ---------------------------------------------------------------------------------


@dataclass
class World:
    server: RunningServer
    admin_key: str
    employee: str  # e-mail
    employee_key: str
    big_job: str
    deep_uri: str
    deep_cursor: str
    old_name: str
    sample_job: str
    jobs: int = 0
    tasks: int = 0


_WORLD_FIELDS = (
    "admin_key", "employee", "employee_key", "big_job", "deep_uri", "deep_cursor", "old_name",
    "sample_job", "jobs", "tasks",
)  # fmt: skip


def _hex() -> str:
    return uuid.uuid4().hex[:24]


_PLAIN_INDEXES = text(
    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
    " AND tablename IN ('job', 'task') AND indexname NOT IN (SELECT conname FROM pg_constraint)"
)


@contextlib.contextmanager
def _indexes_built_after(db: Database) -> Iterator[None]:
    """On PostgreSQL, the job and task tables' plain indexes (not those of a key or unique
    constraint) are dropped for the bulk load and built again at the end: one sort per index
    instead of millions of insertions into it (the history of 1,000,000 jobs loads ~2x faster).
    The triggers and constraints stay on."""
    if db.is_sqlite:
        yield
        return
    with db.engine.begin() as conn:
        indexes = conn.execute(_PLAIN_INDEXES).all()
        for name, _ in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
    yield
    with db.engine.begin() as conn:
        conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        for _, definition in indexes:
            conn.execute(text(definition))


def load_history(server: RunningServer, n_jobs: int, big_tasks: int, seed: int = 7) -> World:
    db = Database(server.database_url)
    try:
        with _indexes_built_after(db):
            world = _load_history(db, server, n_jobs, big_tasks, seed)
        _analyze(db)
        return world
    finally:
        db.dispose()


def _load_history(
    db: Database, server: RunningServer, n_jobs: int, big_tasks: int, seed: int
) -> World:
    rng = random.Random(seed)
    admin = authenticate(db, server.api_key)
    london = sites.create_site(db, admin, code="london")
    hq = next(s for s in sites.list_sites(db, admin) if s.main)
    volume = volumes.create_volume(
        db, admin, code="projects", paths={"hq": "/mnt/projects", "london": "/data/projects"}
    )
    for code in QUEUES:
        with contextlib.suppress(Exception):  # high/medium/low are seeded
            queues.create_queue(db, admin, code=code, priority=rng.randint(100, 900))
    queue_ids = [q.id for q in queues.list_queues(db, admin)]
    people = []
    for i in range(EMPLOYEES):
        user = users.create_user(db, admin, email=f"artist{i:02d}@acme.test", role="employee")
        people.append(user)
    _, employee_key = apikeys.create_api_key(db, admin, people[0].email)
    owners = [admin.user_id] + [p.id for p in people]
    now = datetime.now(UTC)
    start = now - timedelta(days=730)
    step = (now - start) / max(n_jobs, 1)
    live_from = n_jobs - LIVE
    jobs: list[tuple[Any, ...]] = []
    tasks: list[tuple[Any, ...]] = []
    stamps: list[tuple[datetime, str]] = []
    names: list[str] = []

    def flush() -> None:
        with db.session() as s:
            if jobs:
                bulk_insert(s, m.Job.__table__, _JOB_COLUMNS, jobs)
            if tasks:
                bulk_insert(s, m.Task.__table__, _TASK_COLUMNS, tasks)
        jobs.clear()
        tasks.clear()

    total_tasks = 0
    for n in range(n_jobs):
        created = start + step * n
        job_id = _hex()
        live = n >= live_from
        status = (
            rng.choice(["waiting", "running", "running", "paused"])
            if live
            else rng.choices(["done", "failed", "aborted"], [95, 3, 2])[0]
        )
        ended = status in ("done", "failed", "aborted")
        up = rng.random() < 0.5
        src, dst = (hq, london) if up else (london, hq)
        project = rng.randint(1, 40)
        way = "upload" if up else "download"
        name = f"proj{project:03d} {way} {dst.code} {created:%Y-%m-%d} {n}"
        count = rng.randint(1, 8)
        size = count * 50_000_000
        jobs.append(
            (
                job_id, name, "transfer", rng.choice(owners), rng.choice(queue_ids), status,
                f"site={src.code}", f"site={dst.code}", src.id, dst.id,
                100.0 if status == "done" else 0.0, size, size if status == "done" else 0,
                0.0, 0, count, count, {}, {}, created, created,
                created + timedelta(minutes=20) if ended else None,
            )
        )  # fmt: skip
        task_status = {"done": "done", "failed": "failed", "aborted": "excluded"}.get(
            status, "queued"
        )
        for i in range(count):
            path = f"proj{project:03d}/sc{n % 90:04d}/sh{i:04d}/plate.{n:07d}.exr"
            tasks.append(
                (
                    str(uuid.uuid4()), job_id, str(i), volume.id, path, volume.id, path,
                    50_000_000, 500, task_status, 1 if ended else 0, 1 if ended else 0,
                    50_000_000 if task_status == "done" else 0, created, created,
                    created + timedelta(minutes=20) if ended else None,
                )
            )  # fmt: skip
        total_tasks += count
        stamps.append((created, job_id))
        names.append(name)
        if len(tasks) >= 50_000:
            flush()
    flush()
    # the big job: live, its tasks queued
    big = _hex()
    created = now - timedelta(minutes=5)
    jobs.append(
        (
            big, "proj001 download london big", "transfer", admin.user_id, queue_ids[0],
            "waiting", f"site={hq.code}", f"site={london.code}", hq.id, london.id, 0.0,
            big_tasks * 1_000_000, 0, 0.0, 0, big_tasks, big_tasks, {}, {}, created,
            created, None,
        )
    )  # fmt: skip
    for i in range(big_tasks):
        path = f"proj001/big/f{i:07d}.exr"
        tasks.append(
            (
                str(uuid.uuid4()), big, str(i), volume.id, path, volume.id, path, 1_000_000,
                500, "queued", 0, 0, 0, created, created, None,
            )
        )  # fmt: skip
        if len(tasks) >= 50_000:
            flush()
    flush()
    stamps.sort(reverse=True)
    deep = stamps[int(len(stamps) * 0.9)] if stamps else (now, big)
    return World(
        server=server,
        admin_key=server.api_key,
        employee=people[0].email,
        employee_key=employee_key,
        big_job=big,
        deep_uri=str(int(big_tasks * 0.99)),
        deep_cursor=job_cursor(*deep),
        old_name=names[len(names) // 3] if names else "none",
        sample_job=stamps[len(stamps) // 2][1] if stamps else big,
        jobs=n_jobs + 1,
        tasks=total_tasks + big_tasks,
    )


def _analyze(db: Database) -> None:
    with db.engine.connect() as conn:  # what autovacuum / PRAGMA optimize do in the field
        if db.is_sqlite:
            conn.execute(text("PRAGMA optimize"))
        else:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


# -- the calls ---------------------------------------------------------------------------------


class _OneTlsContext(requests.adapters.HTTPAdapter):
    """Connections made with one TLS context (no verification, as the accsyn client asks), made
    once: ``requests.get(..., verify=False)`` lets urllib3 make a context per connection and
    load the system's CA store into it (~20 ms of the client's CPU per call)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        kwargs["ssl_context"] = context
        super().init_poolmanager(*args, **kwargs)


class _Wire(threading.local):
    """What the accsyn client sends, timed: the client calls ``requests.get/post/...`` (a new
    TLS connection per call); with ``--accsyn-keepalive`` each thread keeps one session open, as
    any HTTP client would; with ``--accsyn-one-tls-context`` each call still opens and closes its
    own connection (``Connection: close``: the server sees what the official client makes it do)
    but the client makes its TLS context once. The time spent on the wire is recorded apart from
    the client's own decoding of the answer."""

    keepalive = False
    one_tls_context = False

    def __init__(self) -> None:
        self.session = requests.Session()
        self.closing: requests.Session | None = None  # made at the first call that needs it
        self.last_ms = 0.0

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            if self.keepalive:
                return getattr(self.session, method)(*args, **kwargs)
            if self.one_tls_context:
                if self.closing is None:
                    self.closing = requests.Session()
                    self.closing.mount("https://", _OneTlsContext())
                kwargs["headers"] = {**(kwargs.get("headers") or {}), "Connection": "close"}
                return getattr(self.closing, method)(*args, **kwargs)
            return getattr(requests, method)(*args, **kwargs)
        finally:
            self.last_ms = (time.perf_counter() - start) * 1000

    def get(self, *a: Any, **k: Any) -> Any:
        return self._call("get", *a, **k)

    def put(self, *a: Any, **k: Any) -> Any:
        return self._call("put", *a, **k)

    def post(self, *a: Any, **k: Any) -> Any:
        return self._call("post", *a, **k)

    def delete(self, *a: Any, **k: Any) -> Any:
        return self._call("delete", *a, **k)

    def __getattr__(self, name: str) -> Any:
        return getattr(requests, name)


WIRE = _Wire()
accsyn_module.requests = WIRE  # type: ignore[assignment]


def _https(server: RunningServer, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    # idle connections are dropped before the server's 5 s keep-alive ends them (a request sent
    # on a connection the server is closing fails with "disconnected without a response")
    return httpx.Client(
        base_url=server.url,
        verify=str(server.ca_file),
        headers=headers,
        timeout=120,
        limits=httpx.Limits(keepalive_expiry=4.0),
    )


@dataclass
class Client:
    """One user's connections: an HTTPS client (admin or employee key), a UI cookie, accsyn."""

    world: World
    http: httpx.Client
    employee: httpx.Client
    ui: httpx.Client
    accsyn: AccsynSession

    @classmethod
    def open(cls, world: World, tmp: Path) -> Client:
        server = world.server

        def client(key: str | None) -> httpx.Client:
            return _https(server, key)

        ui = client(None)
        signed = ui.post(
            "/ui/login",
            data={"api_key": world.admin_key, "next": "/ui/"},
            headers={"Origin": server.url},
        )
        if signed.status_code != 303:
            raise SystemExit(f"UI sign-in failed: {signed.status_code} {signed.text[:200]}")
        port = int(server.url.rsplit(":", 1)[1])
        accsyn = AccsynSession(
            workspace=server.workspace,
            username=server.admin,
            api_key=world.admin_key,
            hostname="127.0.0.1",
            port=port,
            path_envfile=str(tmp / "no.env"),
        )
        logging.getLogger("httpx").setLevel(logging.WARNING)  # the accsyn client logs every call
        return cls(world, client(world.admin_key), client(world.employee_key), ui, accsyn)

    def close(self) -> None:
        for c in (self.http, self.employee, self.ui):
            c.close()


def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise CallError(response.status_code, response.text[:200])


class CallError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status


#: The words a call's name must contain one of to be run (``--calls``; empty: every call).
ONLY: tuple[str, ...] = ()


def calls(world: World) -> dict[str, Callable[[Client], None]]:
    table = _calls(world)
    if not ONLY:
        return table
    return {name: call for name, call in table.items() if any(w in name for w in ONLY)}


def _calls(world: World) -> dict[str, Callable[[Client], None]]:
    found_name = f'Transfer WHERE name="{world.old_name}"'

    def find_one(c: Client) -> None:
        if c.accsyn.find_one(found_name) is None:
            raise CallError(0, f"find_one found nothing for {found_name}")

    return {
        "admin job list, page of 50": lambda c: _check(c.http.get("/api/v1/jobs?limit=50")),
        "admin job list, deep page (after=)": lambda c: _check(
            c.http.get("/api/v1/jobs", params={"limit": 50, "after": world.deep_cursor})
        ),
        "employee's own jobs": lambda c: _check(c.employee.get("/api/v1/jobs?limit=50")),
        "a job": lambda c: _check(c.http.get(f"/api/v1/jobs/{world.sample_job}")),
        "big job's tasks, first page": lambda c: _check(
            c.http.get(f"/api/v1/jobs/{world.big_job}/tasks?limit=50")
        ),
        "same, 99% deep (after=)": lambda c: _check(
            c.http.get(
                f"/api/v1/jobs/{world.big_job}/tasks",
                params={"limit": 50, "after": world.deep_uri},
            )
        ),
        'accsyn find("job WHERE status=running")': lambda c: c.accsyn.find(
            "job WHERE status=running"
        ),
        "accsyn find_one(Transfer WHERE name=...)": find_one,
        "GET /metrics": lambda c: _check(c.http.get("/metrics")),
        "web UI jobs page": lambda c: _check(c.ui.get("/ui/")),
    }


@dataclass
class Timings:
    ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, ms: float | None, error: str | None = None) -> None:
        with self.lock:
            if ms is not None:
                self.ms.setdefault(name, []).append(ms)
            if error is not None:
                self.errors.setdefault(name, []).append(error)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def _client_rounds(
    table: dict[str, Callable[[Client], None]], c: Client, index: int, rounds: int, timings: Timings
) -> None:
    names = list(table)
    random.Random(index).shuffle(names)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            try:
                table[name](c)
            except Exception as exc:
                timings.add(name, None, str(exc)[:160])
                continue
            timings.add(name, (time.perf_counter() - start) * 1000)
            if name.startswith("accsyn"):
                timings.add(f"{name}: server and wire only", WIRE.last_ms)


def run_reads(
    world: World, n_clients: int, rounds: int, tmp: Path, *, processes: bool = False
) -> Timings:
    """Every call ``rounds`` times from each of ``n_clients`` clients at once: threads of this
    process, or with ``processes`` one process each (16 threads share one interpreter lock, so
    a thread's timing also holds the time it waited for the others' decoding)."""
    if processes and n_clients > 1:
        return _run_reads_in_processes(world, n_clients, rounds, tmp)
    timings = Timings()
    table = calls(world)
    clients = [Client.open(world, tmp) for _ in range(n_clients)]
    for c in clients:  # warm: connections open, caches as in a running studio
        for fn in table.values():
            fn(c)
    barrier = threading.Barrier(n_clients)

    def work(c: Client, index: int) -> None:
        barrier.wait()
        _client_rounds(table, c, index, rounds, timings)

    threads = [threading.Thread(target=work, args=(c, i)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    return timings


def _run_reads_in_processes(world: World, n_clients: int, rounds: int, tmp: Path) -> Timings:
    context = multiprocessing.get_context("fork")  # the children inherit the world as it is
    barrier = context.Barrier(n_clients)
    results: multiprocessing.Queue[tuple[dict[str, list[float]], dict[str, list[str]]]]
    results = context.Queue()

    def work(index: int) -> None:
        mine = Timings()
        try:
            table = calls(world)
            c = Client.open(world, tmp)
            for fn in table.values():  # warm
                fn(c)
            barrier.wait()
            _client_rounds(table, c, index, rounds, mine)
            c.close()
        finally:
            results.put((mine.ms, mine.errors))

    children = [context.Process(target=work, args=(i,)) for i in range(n_clients)]
    for child in children:
        child.start()
    timings = Timings()
    for _ in children:
        ms, errors = results.get(timeout=3600)
        for name, values in ms.items():
            timings.ms.setdefault(name, []).extend(values)
        for name, texts in errors.items():
            timings.errors.setdefault(name, []).extend(texts)
    for child in children:
        child.join()
    return timings


def run_submits(world: World, seconds: float, writers: int = 8) -> dict[str, Any]:
    server = world.server
    stop = time.monotonic() + seconds
    made = [0] * writers
    failures: list[str] = []
    reads: list[float] = []

    def submit(index: int) -> None:
        with _https(server, world.admin_key) as http:
            n = 0
            while time.monotonic() < stop:
                body = {
                    "name": f"submit-bench {index}-{n}",
                    "queue": "proj001",
                    "tasks": [
                        {
                            "source": f"share=projects/bench/w{index}/j{n}/f{i}.exr",
                            "destination": "site=london",
                        }
                        for i in range(10)
                    ],
                }
                r = http.post("/api/v1/jobs", json=body)
                if r.status_code == 201:
                    made[index] += 1
                else:
                    failures.append(f"{r.status_code} {r.text[:120]}")
                n += 1

    def read() -> None:
        with _https(server, world.admin_key) as http:
            while time.monotonic() < stop:
                start = time.perf_counter()
                _check(http.get("/api/v1/jobs?limit=50"))
                reads.append((time.perf_counter() - start) * 1000)

    started = time.monotonic()
    threads = [threading.Thread(target=submit, args=(i,)) for i in range(writers)]
    threads.append(threading.Thread(target=read))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return {
        "jobs_per_s": sum(made) / elapsed,
        "jobs": sum(made),
        "failures": failures[:5],
        "failed": len(failures),
        "read_p50": _pct(reads, 50) if reads else None,
        "read_p99": _pct(reads, 99) if reads else None,
        "reads": len(reads),
    }


# -- the report --------------------------------------------------------------------------------


def _row(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{_pct(values, 50):,.0f}/{_pct(values, 95):,.0f}/{_pct(values, 99):,.0f}"


@contextlib.contextmanager
def database_for(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
    else:
        with fresh_database() as url:
            yield url


@contextlib.contextmanager
def kept_world(
    keep: Path, kind: str, n_jobs: int, big_tasks: int, extra_args: tuple[str, ...]
) -> Iterator[tuple[World, float | None]]:
    """A server on the history kept in ``keep`` (loaded there by the first run); yields the world
    and the load's seconds (None when the history was already there)."""
    saved = keep / "world.json"
    if saved.exists():
        info = json.loads(saved.read_text())
        if (info["kind"], info["n_jobs"], info["big_tasks"]) != (kind, n_jobs, big_tasks):
            raise SystemExit(f"{keep} holds {info['kind']} {info['n_jobs']} jobs: another --keep")
        base = keep / "server"
        server = RunningServer(
            url=info["url"],
            api_key=info["admin_key"],
            admin=info["admin"],
            workspace=info["workspace"],
            data_dir=base / "data",
            ca_file=Path(info["ca_file"]),
            database_url=info["database_url"],
            home=base / "home",
            process=None,  # type: ignore[arg-type]  # started below
            log_file=base / f"server-{int(time.time())}.log",
        )
        server._stopped = True
        with server.log_file.open("wb") as log:
            server.process = subprocess.Popen(
                reelsync_cmd("server", "run", "--data-dir", str(server.data_dir), *extra_args),
                env=child_env(server.home),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server._stopped = False
        try:
            wait_healthy(server)
            world = World(server=server, **{k: info[k] for k in _WORLD_FIELDS})
            yield world, None
        finally:
            server.stop()
        return
    keep.mkdir(parents=True, exist_ok=True)
    url = None
    if kind != "sqlite":
        name = f"rs_keep_{secrets.token_hex(4)}"
        with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with running_server(keep / "server", database_url=url, extra_args=extra_args) as server:
        started = time.monotonic()
        world = load_history(server, n_jobs, big_tasks)
        loaded = time.monotonic() - started
        info = {k: getattr(world, k) for k in _WORLD_FIELDS}
        info.update(
            kind=kind, n_jobs=n_jobs, big_tasks=big_tasks, url=server.url, admin=server.admin,
            workspace=server.workspace, ca_file=str(server.ca_file),
            database_url=server.database_url,
        )  # fmt: skip
        saved.write_text(json.dumps(info, indent=1))
        yield world, loaded


_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (the server's workers), from /proc."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])))
    return sum(t for p, (ppid, t) in stats.items() if p == pid or ppid == pid) * _TICK_S


@dataclass
class CpuShare:
    """Where the CPU went during a run: the server's processes, the clients', the wall time."""

    server_s: float
    client_s: float
    wall_s: float
    load: float

    def __str__(self) -> str:
        return (
            f"{self.wall_s:.1f} s wall, server CPU {self.server_s:.1f} s, clients' CPU"
            f" {self.client_s:.1f} s, load average {self.load:.1f}"
        )


@contextlib.contextmanager
def cpu_share(server: RunningServer) -> Iterator[list[CpuShare]]:
    """Measure the block: the server's CPU, this process's and its reaped children's (the
    client processes), the wall time."""
    out: list[CpuShare] = []
    load = os.getloadavg()[0]
    server0, mine0, wall0 = process_tree_cpu_s(server.process.pid), os.times(), time.monotonic()
    yield out
    mine = os.times()
    client = sum(mine[:4]) - sum(mine0[:4])
    out.append(
        CpuShare(
            process_tree_cpu_s(server.process.pid) - server0,
            client,
            time.monotonic() - wall0,
            max(load, os.getloadavg()[0]),
        )
    )


def server_errors(server: RunningServer) -> list[str]:
    lines = server.log_file.read_text(errors="replace").splitlines()
    return [ln for ln in lines if "database is locked" in ln or "Traceback" in ln]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--big-tasks", type=int, default=100_000)
    parser.add_argument("--database", default="sqlite,postgres")
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--submit-s", type=float, default=0.0)
    parser.add_argument("--growth", default="", help="job counts: one history per count")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--calls",
        default="",
        help="only the calls whose name contains one of these words (comma-separated, e.g."
        " 'accsyn find(' for the find of running jobs)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="server run --workers N (default: the server's own: one per core on PostgreSQL)",
    )
    parser.add_argument(
        "--client-processes",
        action="store_true",
        help="each client in a process of its own (default: threads of one process)",
    )
    parser.add_argument(
        "--accsyn-keepalive",
        action="store_true",
        help="the accsyn client keeps its HTTPS connection (it opens one per call otherwise)",
    )
    parser.add_argument(
        "--accsyn-one-tls-context",
        action="store_true",
        help="the accsyn client still opens a connection per call, with one TLS context made"
        " once (it makes one and loads the CA store per call otherwise)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the loaded history (data dir and database) in this directory and reuse it in"
        " the next runs with the same directory (one --database, one size)",
    )
    args = parser.parse_args()
    _Wire.keepalive = args.accsyn_keepalive
    _Wire.one_tls_context = args.accsyn_one_tls_context
    global ONLY
    ONLY = tuple(w.strip() for w in args.calls.split(",") if w.strip())
    sizes = [int(x) for x in args.growth.split(",") if x] or [args.jobs]
    out: dict[str, Any] = {}
    extra = ("--workers", str(args.workers)) if args.workers else ()
    if args.keep and (len(sizes) > 1 or "," in args.database):
        raise SystemExit("--keep holds one history: one --database and one size")
    for kind in args.database.split(","):
        for n_jobs in sizes:
            with contextlib.ExitStack() as stack:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="rs-cp-bench-"))
                if args.keep:
                    world, loaded = stack.enter_context(
                        kept_world(args.keep, kind, n_jobs, args.big_tasks, extra)
                    )
                    server = world.server
                else:
                    url = stack.enter_context(database_for(kind))
                    server = stack.enter_context(
                        running_server(Path(tmp) / "cp", database_url=url, extra_args=extra)
                    )
                    started = time.monotonic()
                    world = load_history(server, n_jobs, args.big_tasks)
                    loaded = time.monotonic() - started
                how = "kept" if loaded is None else f"loaded in {loaded:.0f} s"
                print(
                    f"\n## {kind}: {world.jobs:,} jobs, {world.tasks:,} tasks ({how})",
                    flush=True,
                )
                print("| call | " + " | ".join(f"{c} client(s)" for c in args.clients.split(",")))
                results = {}
                shares = {}
                processes = args.client_processes
                for n_clients in [int(c) for c in args.clients.split(",")]:
                    with cpu_share(server) as share:
                        results[n_clients] = run_reads(
                            world, n_clients, args.rounds, Path(tmp), processes=processes
                        )
                    shares[n_clients] = share[0]
                names = []
                for name in calls(world):
                    names.append(name)
                    if name.startswith("accsyn"):
                        names.append(f"{name}: server and wire only")
                for name in names:
                    cells = []
                    for t in results.values():
                        cell = _row(t.ms.get(name, []))
                        errors = t.errors.get(name, [])
                        if errors:
                            cell += f" ({len(errors)} errors: {errors[0]})"
                        cells.append(cell)
                    print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
                    out.setdefault(f"{kind} {n_jobs}", {})[name] = {
                        str(c): sorted(t.ms.get(name, [])) for c, t in results.items()
                    }
                for n_clients, share in shares.items():
                    print(f"{n_clients} client(s): {share}", flush=True)
                    out.setdefault(f"{kind} {n_jobs}", {})[f"cpu {n_clients}"] = vars(share)
                if args.submit_s:
                    sub = run_submits(world, args.submit_s)
                    print(f"submits, 8 clients, ten-file jobs: {json.dumps(sub)}", flush=True)
                    out.setdefault(f"{kind} {n_jobs}", {})["submits"] = sub
                problems = server_errors(server)
                print(f"server log: {len(problems)} 'database is locked'/traceback lines")
                for line in problems[:5]:
                    print("   ", line[:200])
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
