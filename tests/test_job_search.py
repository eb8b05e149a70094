"""Job lists and accsyn finds at scale: the SQL translation of queries agrees with the Python
evaluation, pages go by key, the lists are served by indexes, and reads take no write lock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import InternalError

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.query import evaluate, parse_query
from reelsync.domain.records import Actor, Role
from reelsync.errors import UnavailableError, ValidationError
from reelsync.scheduler.reports import _unsized_task_query
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.handlers.queues import matching_queue_records, queue_records
from reelsync.server.accsyn.jobrows import wire_jobs
from reelsync.server.accsyn.selection import _public, _resolve, matching
from reelsync.server.accsyn.shapes import Parties, job_record
from reelsync.server.accsyn.wire import dumps, parse_envelope
from reelsync.services import jobquery, jobs, notes, queues, sites, tasks, users, volumes
from reelsync.services.bootstrap import init_workspace
from reelsync.services.jobquery import job_condition
from reelsync.services.notes import NoteKind


@pytest.fixture
def world(database: Database, admin: Actor) -> dict[str, Any]:
    return _build_world(database, admin)


@pytest.fixture(scope="module")
def read_only_world(module_database: Database) -> tuple[Database, dict[str, Any]]:
    """The world once per backend, for the tests that only read it (the queries)."""
    made = init_workspace(module_database, "acmepost", "admin@acmepost.com", admin_name="Admin")
    admin = Actor(user_id=made.admin.id, email=made.admin.email, role=made.admin.role)
    return module_database, _build_world(module_database, admin)


def _build_world(database: Database, admin: Actor) -> dict[str, Any]:
    sites.create_site(database, admin, code="london")
    volumes.create_volume(
        database, admin, code="projects", paths={"hq": "/mnt/projects", "london": "/data/projects"}
    )
    queues.create_queue(database, admin, code="proj001", priority=900)
    emp = users.create_user(database, admin, email="coord@acmepost.com", role="employee")
    employee = Actor(emp.id, emp.email, emp.role)
    made = []
    for n in range(14):
        payload: dict[str, Any] = {
            "name": [f"Plates_{n}", "proj001 download london", "grade*final"][n % 3],
            "tasks": [
                {
                    "source": f"share=projects/proj001/sh{n:03d}/f{i}.exr",
                    "destination": "site=london",
                }
                for i in range(1 + n % 4)
            ],
        }
        if n % 2:
            payload["queue"] = "proj001"
        made.append(jobs.submit_job(database, admin, payload))
    with database.session() as s:  # a spread of statuses and sizes, as history has
        for n, job in enumerate(made):
            status = ["done", "waiting", "running", "aborted", "failed", "paused", "done"][n % 7]
            s.execute(
                update(m.Job)
                .where(m.Job.id == job.id)
                .values(status=status, size=None if n % 5 == 0 else n * 1000, progress=n * 7.5)
            )
    return {"admin": admin, "employee": employee, "jobs": [j.id for j in made]}


QUERIES = [
    'Transfer WHERE name="plates_3"',
    "Transfer WHERE name='PLATES_3'",
    "Job WHERE code='plates*'",
    "Job WHERE name='grade*final'",
    "Job WHERE name contains 'download'",
    "Job WHERE name not contains 'download'",
    "job WHERE status=running",
    "job WHERE status!=done",
    "job WHERE status in (running, paused, failed)",
    "job WHERE status not in done, aborted",
    "Job WHERE queue=proj001",
    "Job WHERE parent!=proj001",
    "Job WHERE user=admin@acmepost.com",
    "Job WHERE user!=coord@acmepost.com",
    "Job WHERE destination=london AND queue=proj001",
    "Job WHERE source='site=hq'",
    "Job WHERE source=acmepost",
    "Job WHERE destination!=acmepost",
    "Job WHERE destination=site:london",
    "Job WHERE destination_hr='site=london'",
    "Job WHERE queue.code=proj001",
    "Job WHERE user.email=admin@acmepost.com",
    "Job WHERE creator_hr=admin@acmepost.com",
    "Job WHERE size>5000",
    "Job WHERE size<=5000 OR status=failed",
    "Job WHERE size=null",
    "Job WHERE size!=null",
    "Job WHERE size=abc",
    "Job WHERE progress>=45.0",
    "Job WHERE tasks=3",
    "Job WHERE type=1",
    "Job WHERE type=2",
    "Job WHERE created>2000-01-01",
    "Job WHERE created<2000-01-01",
    "Job WHERE finished=null",
    "Job WHERE name matches '^Plates_1'",
    "Job WHERE metadata.x=1 OR status=paused",
    "Job WHERE (status=done OR status=failed) AND name='proj001*'",
    "Plates_3",
]


@pytest.mark.parametrize("query", QUERIES)
def test_sql_translation_agrees_with_python(
    read_only_world: tuple[Database, dict[str, Any]], query: str
) -> None:
    database, world = read_only_world
    parsed = parse_query(query)
    everything = list(jobs.scan_jobs(database, world["admin"], jobs.JobFilter()))
    assert len(everything) == 14
    hq = next(s.id for s in sites.list_sites(database, world["admin"]) if s.main)
    record_parties = Parties(main_site_id=hq, workspace_code="acmepost")

    def matches(job: Any) -> bool:
        return evaluate(parsed, job_record(job, record_parties), resolve=_resolve)

    expected = [j.id for j in everything if matches(j)]
    translated = jobquery.job_query(parsed.where, jobquery.Parties("acmepost", hq))
    said = translated.where
    assert str(said) == str(job_condition(parsed.where, jobquery.Parties("acmepost", hq)))
    narrowed = list(jobs.scan_jobs(database, world["admin"], jobs.JobFilter(where=said), batch=3))
    assert expected or "type=2" in query or "<2000" in query or "abc" in query
    # SQL never loses a match, and what it lets through is re-checked
    assert [j.id for j in narrowed if matches(j)] == expected
    if "matches" not in query and "metadata" not in query:
        assert [j.id for j in narrowed] == expected  # said exactly in SQL
    # an exact translation is trusted (finds skip the Python evaluation): only what SQL cannot
    # say (patterns, free metadata) or widens (dates ordered by whole days) is not exact
    inexact = ("matches", "metadata", "created>", "created<")
    assert translated.exact is not any(word in query for word in inexact), query


def test_wire_rows_are_the_records_answered(database: Database, world: dict[str, Any]) -> None:
    """A find answered as read (an exact query) makes the records in the wire shape from the
    rows (datetimes and JSON as text from the database): the same JSON, keys in the same order,
    as the records made from :class:`Job` with the helper keys dropped, whatever the values."""
    ids = world["jobs"]
    edges: list[dict[str, Any]] = [
        {"meta": {"shot": "sh010", "frames": [1001, 1100], "nested": {"ok": True}}},
        {"settings": {"compression": "on"}, "meta": {"big": 2**70, "f": 1.5, "s": "naïve"}},
        {"meta": None, "settings": None},  # JSON null (not SQL NULL): read as {}
        {"finished": datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)},  # cut, not rounded
        {"created": datetime(1999, 1, 2, 3, 4, 5, tzinfo=UTC), "modifier_id": "f" * 24},
    ]
    with database.session() as s:
        for job_id, values in zip(ids, edges, strict=False):
            s.execute(update(m.Job).where(m.Job.id == job_id).values(**values))
    if database.is_sqlite:  # SQLite keeps what Python's json wrote, NaN included
        with database.session() as s:
            s.execute(
                text("UPDATE job SET metadata = :meta WHERE id = :id"),
                {"meta": '{"x": NaN, "y": [Infinity, 1]}', "id": ids[1]},
            )
    hq = next(x.id for x in sites.list_sites(database, world["admin"]) if x.main)
    record_parties = Parties(main_site_id=hq, workspace_code="acmepost")
    for actor in (world["admin"], world["employee"]):
        for finished in (True, False):
            wanted = jobs.JobFilter(finished=None if finished else False)
            made = [
                _public(job_record(j, record_parties))
                for j in jobs.scan_jobs(database, actor, wanted)
            ]
            read = list(wire_jobs(database, actor, finished=finished, batch=4))
            assert [list(r) for r in read] == [list(r) for r in made]
            assert _pairs(dumps({"result": read})) == _pairs(dumps({"result": made}))
    assert len(list(wire_jobs(database, world["admin"], finished=True))) == 14


@pytest.mark.parametrize(
    "query",
    [
        "status=running",
        "code=proj001",
        "proj001",
        "priority>500",
        "description=rush",
        "description contains 'ru' OR code=high",
        "metadata.client=acme",
        "modifier!=null",
        "status=waiting AND name=proj001",
        None,
    ],
)
def test_queues_matched_before_their_notes_are_read(
    database: Database, world: dict[str, Any], query: str | None
) -> None:
    """A find of jobs also matches the queues; their notes are read only for the queues it
    selects (unless the query compares notes): the same records as matching every queue with
    its notes."""
    admin = world["admin"]
    proj001 = queues.get_queue(database, admin, "proj001")
    notes.write_notes(
        database, admin, NoteKind.QUEUE, proj001.id, description="rush", metadata={"client": "acme"}
    )
    envelope = parse_envelope({"uri": "job/find", "query": query})
    call = Call(database, admin, envelope, "GET", "job", "find", "acmepost")
    expected = list(matching(envelope, queue_records(call)))
    assert matching_queue_records(call) == expected
    assert expected or query == "status=running"


def test_queues_matched_as_they_are_now(database: Database, world: dict[str, Any]) -> None:
    """The queues a job find matches come from the catalog: a change is seen by the next find,
    in list_queues' order."""
    admin = world["admin"]
    envelope = parse_envelope({"uri": "job/find", "query": "status=paused"})
    call = Call(database, admin, envelope, "GET", "job", "find", "acmepost")
    assert matching_queue_records(call) == []
    queues.update_queue(database, admin, "proj001", paused=True, priority=10)
    found = matching_queue_records(call)
    assert [(r["code"], r["priority"]) for r in found] == [("proj001", 10)]
    assert [q.id for q in queues.kept_queues(database, admin)] == [
        q.id for q in queues.list_queues(database, admin)
    ]


def _pairs(body: bytes) -> Any:
    """``body`` decoded with every object as its list of (key, value): order counts."""
    return json.loads(body, object_pairs_hook=list)


def test_job_pages_by_key(database: Database, world: dict[str, Any]) -> None:
    admin = world["admin"]
    whole = jobs.list_jobs(database, admin, limit=100)
    assert whole.total == 14
    assert whole.next is None
    seen: list[str] = []
    after = None
    while True:
        page = jobs.list_jobs(database, admin, limit=4, after=after)
        assert page.total == 14
        seen += [j.id for j in page.items]
        if page.next is None:
            break
        after = page.next
    assert seen == [j.id for j in whole.items]
    assert [j.id for j in jobs.list_jobs(database, admin, limit=4, offset=4).items] == seen[4:8]
    live = jobs.list_jobs(database, admin, finished=False, limit=100)
    assert {j.status for j in live.items} <= {"waiting", "running", "failed", "paused"}
    assert live.total == len(live.items) == 8
    # the employee sees only their own (none)
    assert jobs.list_jobs(database, world["employee"]).total == 0
    with pytest.raises(ValidationError, match="not a page cursor"):
        jobs.list_jobs(database, admin, after="yesterday")


def test_task_pages_by_key(database: Database, world: dict[str, Any]) -> None:
    admin = world["admin"]
    job = jobs.submit_job(
        database,
        admin,
        {
            "tasks": [
                {"source": f"share=projects/proj001/big/f{i}.exr", "destination": "site=london"}
                for i in range(123)
            ]
        },
    )
    whole = tasks.list_tasks(database, admin, job.id, limit=1000)
    uris = [t.uri for t in whole.items]
    assert uris[:12] == [str(i) for i in range(12)]
    assert len(uris) == 123
    assert whole.total == 123
    seen: list[str] = []
    after = None
    while True:
        page = tasks.list_tasks(database, admin, job.id, limit=7, after=after)
        assert page.total == 123
        seen += [t.uri for t in page.items]
        if page.next is None:
            break
        after = page.next
    assert seen == uris
    skipped = tasks.list_tasks(database, admin, job.id, limit=5, after="9", offset=2)
    assert [t.uri for t in skipped.items] == ["12", "13", "14", "15", "16"]
    queued = tasks.list_tasks(database, admin, job.id, status="queued", limit=50)
    assert queued.total == 123
    assert len(queued.items) == 50


def test_reads_cannot_write(database: Database, world: dict[str, Any]) -> None:
    # SQLite: "attempt to write a readonly database"; PostgreSQL: a read-only transaction
    with pytest.raises((UnavailableError, InternalError)), database.reader() as s:
        s.execute(update(m.Job).values(name="x"))
    with database.session() as s:  # a write session afterwards writes as before
        s.execute(update(m.Job).where(m.Job.id == world["jobs"][0]).values(name="renamed"))
    assert jobs.get_job(database, world["admin"], world["jobs"][0]).name == "renamed"


def _plan(database: Database, sql: str) -> str:
    with database.reader() as s:
        return "\n".join(str(r[-1]) for r in s.execute(text("EXPLAIN QUERY PLAN " + sql)))


def test_sqlite_lists_are_served_by_indexes(tmp_path: Any) -> None:
    from reelsync.db import upgrade_to_head

    url = f"sqlite:///{tmp_path / 'plan.db'}"
    upgrade_to_head(url)
    database = Database(url)
    admin = Actor("a" * 24, "a@x", Role.ADMIN)
    try:

        def plan(wanted: jobs.JobFilter, after: Any = None) -> str:
            with database.reader() as s:
                query = jobs._select_jobs(jobs._conditions(s, admin, wanted), after).limit(50)
                sql = str(query.compile(database.engine, compile_kwargs={"literal_binds": True}))
            return _plan(database, sql)

        assert "USING INDEX ix_job_created" in plan(jobs.JobFilter())
        assert "ix_job_live" in plan(jobs.JobFilter(finished=False))
        assert "ix_job_status_created" in plan(jobs.JobFilter(status="running"))
        named = plan(jobs.JobFilter(where=job_condition(parse_query("name='x'").where)))
        assert "ix_job_name_lower" in named
        for wanted in (jobs.JobFilter(), jobs.JobFilter(finished=False)):
            assert "TEMP B-TREE" not in plan(wanted)
        tasks_sql = (
            "SELECT id FROM task WHERE job_id = 'x' AND length(uri) = 3 AND uri > '100'"
            " ORDER BY uri LIMIT 200"
        )
        longer_sql = (
            "SELECT id FROM task WHERE job_id = 'x' AND length(uri) > 3"
            " ORDER BY length(uri), uri LIMIT 200"
        )
        for sql in (tasks_sql, longer_sql):
            task_plan = _plan(database, sql)
            assert "ix_task_job_order" in task_plan
            assert "TEMP B-TREE" not in task_plan
        # the progress rule's question on every report: a lookup, not a walk of the job
        unsized = _unsized_task_query("x")
        unsized_sql = str(unsized.compile(database.engine, compile_kwargs={"literal_binds": True}))
        assert "USING INDEX ix_task_unsized" in _plan(database, unsized_sql)
    finally:
        database.dispose()
