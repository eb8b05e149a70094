"""Time listing the tasks of a 10,000-task job (not part of the tests).

    python benchmarks/list_tasks.py [--tasks 10000] [--repeat 3]

On a SQLite file and on PostgreSQL (127.0.0.1:5432, as the tests use): the service
``reelsync.services.tasks.list_tasks`` (one page of 10,000), the accsyn handler behind
``find("Task WHERE job.id=<id> AND status!=excluded")`` and the wire encoding of its answer.
Prints the best of ``--repeat`` runs.

Measured 2026-11-27 on the shared 2-core box (load ~4), 10,000 tasks, seconds, SQLite / PostgreSQL:
before (ORM objects, job row locked, count every call): service 0.72 / 0.78, accsyn find
1.36 / 1.28, encode 0.29 / 0.18; after: service 0.14 / 0.20, accsyn find 0.36 / 0.28,
encode 0.10 / 0.13 (5.7 MB answer).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import _pg_url, pg_create_database, pg_drop_database  # noqa: E402
from reelsync.db import Database, upgrade_to_head  # noqa: E402
from reelsync.domain.records import Actor  # noqa: E402
from reelsync.server.accsyn.call import Call  # noqa: E402
from reelsync.server.accsyn.handlers import tasks as task_handlers  # noqa: E402
from reelsync.server.accsyn.wire import Envelope, dumps  # noqa: E402
from reelsync.services import jobs, sites, tasks, volumes  # noqa: E402
from reelsync.services.bootstrap import init_workspace  # noqa: E402


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(url: str, label: str, n: int, repeat: int) -> None:
    upgrade_to_head(url)
    db = Database(url)
    try:
        init = init_workspace(db, "acmepost", "admin@acmepost.com", admin_name="Admin")
        admin = Actor(user_id=init.admin.id, email=init.admin.email, role=init.admin.role)
        sites.create_site(db, admin, code="london")
        volumes.create_volume(
            db, admin, code="projects", paths={"hq": "/mnt/projects", "london": "/data/projects"}
        )
        job = jobs.submit_job(
            db,
            admin,
            {
                "name": "bench",
                "destination": "site=london",
                "tasks": [f"proj001/sc{i // 1000:04d}/frame.{i:07d}.exr" for i in range(n)],
            },
        )
        env = Envelope(
            uri="task",
            workspace="acmepost",
            data=None,
            query=f"Task WHERE job.id={job.id} AND status!=excluded",
            id=None,
            session=None,
            eid=None,
            ident=None,
        )
        call = Call(db, admin, env, "GET", "task", "find", "acmepost")
        service = _best(lambda: tasks.list_tasks(db, admin, job.id, limit=n), repeat)
        handler = _best(lambda: task_handlers.find(call), repeat)
        answer = task_handlers.find(call)
        assert len(answer) == n
        encode = _best(lambda: dumps({"result": answer}), repeat)
        size = len(dumps({"result": answer}))
        print(
            f"{label:10} {n} tasks: service {service:.3f} s, accsyn find {handler:.3f} s, "
            f"encode {encode:.3f} s ({size / 1e6:.1f} MB)"
        )
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "sqlite", args.tasks, args.repeat)
    name = pg_create_database()
    try:
        run(_pg_url(name), "postgresql", args.tasks, args.repeat)
    finally:
        pg_drop_database(name)


if __name__ == "__main__":
    main()
