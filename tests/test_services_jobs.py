from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.domain.records import Actor
from reelsync.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    NotSupportedError,
    PathError,
    PermissionDeniedError,
    ValidationError,
)
from reelsync.services import acls, catalog, jobs, queues, sites, tasks, users, volumes


@pytest.fixture
def studio(database: Database, admin: Actor) -> dict[str, Actor]:
    sites.create_site(database, admin, code="london")
    volumes.create_volume(
        database, admin, code="projects", paths={"hq": "/mnt/projects", "london": "/data/projects"}
    )
    volumes.create_volume(database, admin, code="scratch", paths={"hq": "/mnt/scratch"})
    emp = users.create_user(database, admin, email="coord@acmepost.com", role="employee")
    std = users.create_user(database, admin, email="std@acmepost.com")
    acls.grant(
        database, admin, user=emp.id, volume="projects", path="proj001", read=True, write=True
    )
    return {
        "admin": admin,
        "employee": Actor(emp.id, emp.email, emp.role),
        "standard": Actor(std.id, std.email, std.role),
    }


def _counts(db: Database) -> tuple[int, int]:
    with db.session() as s:
        return (
            s.scalar(select(func.count()).select_from(m.Job)) or 0,
            s.scalar(select(func.count()).select_from(m.Task)) or 0,
        )


def _paths(db: Database, actor: Actor, job_id: str) -> list[tuple[str, str, str, str, str]]:
    page = tasks.list_tasks(db, actor, job_id)
    return [
        (t.uri, t.source_volume, t.source_path, t.destination_volume, t.destination_path)
        for t in page.items
    ]


def test_form_a_mirrors_to_a_site(database: Database, studio: dict[str, Actor]) -> None:
    job = jobs.submit_job(
        database,
        studio["employee"],
        {
            "source": "share=projects/proj001/sc0010/sh0010/scans",
            "destination": "site=london",
        },
    )
    assert (job.status, job.source, job.destination, job.queue, job.tasks) == (
        "waiting",
        "site=hq",
        "site=london",
        "medium",
        1,
    )
    assert job.name == "scans"
    assert job.user == "coord@acmepost.com"
    assert _paths(database, studio["admin"], job.id) == [
        ("0", "projects", "proj001/sc0010/sh0010/scans", "projects", "proj001/sc0010/sh0010/scans")
    ]


def test_form_b_and_c_paths_and_trailing_slash(
    database: Database, studio: dict[str, Actor]
) -> None:
    admin = studio["admin"]
    job = jobs.submit_job(
        database,
        admin,
        {
            "name": "b",
            "queue": "High",
            "destination": "site=london",
            "tasks": [
                "proj001/a.exr",  # relative: default volume, mirrored
                {
                    "source": "volume=projects/proj001/b.exr",
                    "dest": "site=london:volume=projects/in/",
                },
                {
                    "source": "/mnt/projects/proj001/c.exr",
                    "destination": "site=london:/data/projects/renamed.exr",
                },
                {"source": "volume=(default)/proj001/a.exr"},  # duplicate of the first: dropped
                {
                    "source": "acmepost:volume=scratch/x",
                    "destination": "site=london:volume=projects/",
                },
            ],
        },
    )
    assert job.queue == "high"
    assert job.tasks == 4
    assert _paths(database, admin, job.id) == [
        ("0", "projects", "proj001/a.exr", "projects", "proj001/a.exr"),
        ("1", "projects", "proj001/b.exr", "projects", "in/b.exr"),
        ("2", "projects", "proj001/c.exr", "projects", "renamed.exr"),
        ("3", "scratch", "x", "projects", "x"),
    ]
    mirrored = jobs.submit_job(
        database,
        admin,
        {
            "mirror_paths": True,
            "tasks": {
                "7": {"source": "proj001/d", "destination": "site=london:volume=projects/backup/"},
                "x": {"source": "proj001/e", "destination": "site=london"},
            },
        },
    )
    assert _paths(database, admin, mirrored.id) == [
        ("7", "projects", "proj001/d", "projects", "backup/proj001/d"),
        ("x", "projects", "proj001/e", "projects", "proj001/e"),
    ]
    added = tasks.add_tasks(database, admin, mirrored.id, ["proj001/f"])
    assert [t.uri for t in added] == ["8"]  # continues after the numeric uris


@pytest.mark.parametrize(
    ("payload", "error", "words"),
    [
        ({"source": "volume=nope/a", "destination": "site=london"}, NotFoundError, "no volume"),
        ({"source": "proj001/a", "destination": "site=paris"}, NotFoundError, "no site"),
        ({"source": "proj001/../etc/passwd", "destination": "site=london"}, PathError, ".."),
        ({"source": "/etc/passwd", "destination": "site=london"}, PathError, "not inside"),
        (
            {"source": "volume=scratch/a", "destination": "site=london"},
            ValidationError,
            "no path at site london",
        ),
        (
            {"source": "proj001/a", "destination": "site=london", "queue": "nope"},
            NotFoundError,
            "no queue",
        ),
        ({"source": "proj001/a"}, ValidationError, "no destination"),
        (
            {
                "tasks": [
                    {"source": "proj001/a", "destination": "site=london"},
                    {"source": "proj001/b", "destination": "site=hq:volume=scratch/"},
                ]
            },
            ValidationError,
            "differs",
        ),
        (
            {"source": "proj001/a", "destination": "site=hq:volume=projects/proj001/a"},
            ValidationError,
            "the same",
        ),
        ({"sources": []}, ValidationError, "unknown job field"),
        ({"tasks": 5}, ValidationError, "tasks must be"),
        (
            {"tasks": [{"source": "a", "destination": "site=london", "tasks": ["b"]}]},
            NotSupportedError,
            "nested",
        ),
        (
            {"source": "lisa@acmepost.com:a", "destination": "site=london"},
            NotSupportedError,
            "not supported",
        ),
        (
            {"source": "proj001/a", "destination": "site=london", "status": "running"},
            ValidationError,
            "waiting or paused",
        ),
        (
            {"tasks": [{"source": "proj001/a", "destination": "site=london", "priority": 0}]},
            ValidationError,
            "priority",
        ),
    ],
)
def test_bad_submits_write_nothing(
    database: Database, studio: dict[str, Actor], payload: dict, error: type, words: str
) -> None:
    before = _counts(database)
    with pytest.raises(error, match=words.replace(".", r"\.")):
        jobs.submit_job(database, studio["admin"], payload)
    assert _counts(database) == before


def test_acl_rules_on_submit(database: Database, studio: dict[str, Actor]) -> None:
    emp = studio["employee"]
    before = _counts(database)
    with pytest.raises(PermissionDeniedError, match="read access"):
        jobs.submit_job(
            database, emp, {"tasks": ["proj001/a", "proj002/b"], "destination": "site=london"}
        )
    with pytest.raises(PermissionDeniedError, match="write access"):
        jobs.submit_job(
            database,
            emp,
            {"source": "proj001/a", "destination": "site=london:volume=projects/other/"},
        )
    with pytest.raises(PermissionDeniedError):
        jobs.submit_job(
            database, studio["standard"], {"source": "proj001/a", "destination": "site=london"}
        )
    assert _counts(database) == before
    job = jobs.submit_job(database, emp, {"source": "proj001/a", "destination": "site=london"})
    with pytest.raises(NotFoundError):
        jobs.get_job(database, studio["standard"], job.id)
    assert jobs.list_jobs(database, studio["standard"]).total == 0
    assert jobs.list_jobs(database, emp).total == 1


def test_append_duplicates_and_revive(database: Database, studio: dict[str, Actor]) -> None:
    admin = studio["admin"]
    job = jobs.submit_job(
        database, admin, {"tasks": ["proj001/a", "proj001/b"], "destination": "site=london"}
    )
    added = tasks.add_tasks(database, admin, job.id, [{"source": "proj001/c"}])
    assert [t.uri for t in added] == ["2"]
    with pytest.raises(ConflictError, match="already has a task"):
        tasks.add_tasks(database, admin, job.id, ["proj001/d", "proj001/a"], allow_duplicates=False)
    assert jobs.get_job(database, admin, job.id).tasks == 3  # nothing written
    edited = tasks.update_tasks(
        database,
        admin,
        job.id,
        [
            {"uri": "0", "status": "done"},
            {"uri": "1", "status": "done"},
            {"id": added[0].id, "status": "done", "priority": 900, "metadata": {"k": "v"}},
        ],
    )
    assert [t.status for t in edited] == ["done", "done", "done"]
    assert edited[2].priority == 900
    assert edited[2].metadata == {"k": "v"}
    done = jobs.get_job(database, admin, job.id)
    assert done.status == "done"
    assert done.finished is not None
    assert done.progress == 100.0
    again = tasks.add_tasks(database, admin, job.id, ["proj001/a"])
    assert [t.uri for t in again] == ["0"]
    assert again[0].status == "queued"
    revived = jobs.get_job(database, admin, job.id)
    assert revived.status in ("waiting", "running")
    assert revived.finished is None
    # append:true finds the caller's latest job with the same parties
    appended = jobs.submit_job(
        database, admin, {"append": True, "source": "proj001/z", "destination": "site=london"}
    )
    assert appended.id == job.id
    assert appended.tasks == 4
    # with a name: the job of that name, though a newer one has the same parties
    named = jobs.submit_job(
        database, admin, {"name": "Daily", "source": "proj001/n1", "destination": "site=london"}
    )
    newer = jobs.submit_job(database, admin, {"source": "proj001/n2", "destination": "site=london"})
    by_name = {"name": "daily", "append": True, "destination": "site=london"}
    assert jobs.submit_job(database, admin, {**by_name, "source": "proj001/n3"}).id == named.id
    assert jobs.submit_job(database, admin, {**by_name, "source": "proj001/n4"}).tasks == 3
    fresh = jobs.submit_job(database, admin, {**by_name, "name": "Other", "source": "proj001/n5"})
    assert fresh.id not in (named.id, newer.id, job.id)
    assert fresh.name == "Other"


def test_task_edits_follow_the_status_machine(database: Database, studio: dict[str, Actor]) -> None:
    admin = studio["admin"]
    job = jobs.submit_job(
        database,
        admin,
        {"tasks": ["proj001/a", "proj001/b", "proj001/c"], "destination": "site=london"},
    )
    with pytest.raises(InvalidTransitionError):
        tasks.update_tasks(database, admin, job.id, [{"uri": "0", "status": "executing"}])
    with pytest.raises(NotFoundError):
        tasks.update_tasks(database, admin, job.id, [{"uri": "9", "status": "done"}])
    with pytest.raises(ValidationError):
        tasks.update_tasks(database, admin, job.id, [{"uri": "0", "path": "x"}])
    tasks.update_tasks(
        database,
        admin,
        job.id,
        [
            {"uri": "2", "status": "onhold"},
            {"uri": "0", "status": "done"},
            {"uri": "1", "status": "excluded"},
        ],
    )
    assert jobs.get_job(database, admin, job.id).status == "paused"  # only on-hold tasks left
    # queued again, the held task resumes the job that paused for it (it used to stay paused)
    tasks.update_tasks(database, admin, job.id, [{"uri": "2", "status": "queued"}])
    assert jobs.get_job(database, admin, job.id).status in ("waiting", "running")
    tasks.update_tasks(database, admin, job.id, [{"uri": "2", "status": "onhold"}])
    assert jobs.get_job(database, admin, job.id).status == "paused"
    tasks.update_tasks(database, admin, job.id, [{"uri": "2", "status": "excluded"}])
    assert jobs.get_job(database, admin, job.id).status == "done"
    page = tasks.list_tasks(database, admin, job.id, status="excluded", limit=1)
    assert (page.total, len(page.items)) == (2, 1)
    assert tasks.get_task(database, admin, job.id, "0").status == "done"


def test_a_job_paused_by_its_holds_resumes_for_new_work(
    database: Database, studio: dict[str, Actor]
) -> None:
    # A job whose only tasks left are on hold reads paused (rollup); a task queued again or added
    # resumes it, as either revives an ended job. A job the user paused keeps its pause.
    admin = studio["admin"]
    job = jobs.submit_job(
        database, admin, {"tasks": ["proj001/a", "proj001/b"], "destination": "site=london"}
    )
    tasks.update_tasks(
        database, admin, job.id, [{"uri": "0", "status": "done"}, {"uri": "1", "status": "onhold"}]
    )
    assert jobs.get_job(database, admin, job.id).status == "paused"
    tasks.update_tasks(database, admin, job.id, [{"uri": "1", "status": "queued"}])
    assert jobs.get_job(database, admin, job.id).status in ("waiting", "running")
    tasks.update_tasks(database, admin, job.id, [{"uri": "1", "status": "onhold"}])
    assert jobs.get_job(database, admin, job.id).status == "paused"
    tasks.add_tasks(database, admin, job.id, ["proj001/c"])
    assert jobs.get_job(database, admin, job.id).status in ("waiting", "running")
    # the user's pause, with work left: neither a re-queued task nor an append lifts it
    assert jobs.update_job(database, admin, job.id, status="paused").status == "paused"
    tasks.update_tasks(database, admin, job.id, [{"uri": "1", "status": "queued"}])
    tasks.add_tasks(database, admin, job.id, ["proj001/d"])
    assert jobs.get_job(database, admin, job.id).status == "paused"


def test_job_status_writes(database: Database, studio: dict[str, Actor]) -> None:
    admin = studio["admin"]
    job = jobs.submit_job(
        database, admin, {"source": "proj001/a", "destination": "site=london", "status": "paused"}
    )
    assert job.status == "paused"
    assert jobs.update_job(database, admin, job.id, status="waiting").status == "waiting"
    with pytest.raises(InvalidTransitionError):
        jobs.update_job(database, admin, job.id, status="running")
    with pytest.raises(ValidationError):
        jobs.update_job(database, admin, job.id, status="sleeping")
    with pytest.raises(ConflictError):
        jobs.delete_job(database, admin, job.id)
    aborted = jobs.update_job(
        database, admin, job.id, status="aborted", name="renamed", queue="low"
    )
    assert (aborted.status, aborted.name, aborted.queue) == ("aborted", "renamed", "low")
    assert aborted.finished is not None
    assert jobs.list_jobs(database, admin, finished=False).total == 0
    assert jobs.list_jobs(database, admin, finished=True, status="aborted").total == 1
    resumed = jobs.update_job(database, admin, job.id, status="waiting")
    assert resumed.status == "waiting"
    assert resumed.finished is None
    finished = jobs.update_job(database, admin, job.id, status="done")
    assert finished.status == "done"
    assert tasks.list_tasks(database, admin, job.id).items[0].status == "excluded"
    jobs.delete_job(database, admin, job.id)
    assert _counts(database) == (0, 0)


def test_list_jobs_filters_and_paging(database: Database, studio: dict[str, Actor]) -> None:
    admin = studio["admin"]
    ids = [
        jobs.submit_job(
            database,
            admin,
            {
                "name": f"j{i}",
                "source": f"proj001/{i}",
                "destination": "site=london",
                "queue": "high" if i % 2 else "low",
            },
        ).id
        for i in range(5)
    ]
    page = jobs.list_jobs(database, admin, limit=2, offset=1)
    assert page.total == 5
    assert len(page.items) == 2
    assert {j.id for j in jobs.list_jobs(database, admin, queue="High").items} == {ids[1], ids[3]}
    assert jobs.list_jobs(database, admin, user="admin@acmepost.com").total == 5
    assert jobs.list_jobs(database, admin, name="J3").items[0].id == ids[3]
    with pytest.raises(ValidationError):
        jobs.list_jobs(database, admin, limit=0)


def test_many_task_edits_in_one_call(database: Database, studio: dict[str, Actor]) -> None:
    admin = studio["admin"]
    n = 3000
    job = jobs.submit_job(
        database,
        admin,
        {"tasks": [f"proj001/f{i}" for i in range(n)], "destination": "site=london"},
    )
    edited = tasks.update_tasks(
        database, admin, job.id, [{"uri": str(i), "status": "excluded"} for i in range(n)]
    )
    assert len(edited) == n
    assert jobs.get_job(database, admin, job.id).status == "done"


def test_list_tasks_pages_totals_and_status_filters(
    database: Database, studio: dict[str, Actor]
) -> None:
    admin, standard = studio["admin"], studio["standard"]
    names = [f"proj001/f{i:02d}" for i in range(12)]
    job = jobs.submit_job(database, admin, {"tasks": names, "destination": "site=london"})
    tasks.update_tasks(database, admin, job.id, [{"uri": "3", "status": "excluded"}])
    expected = {t.id: t for t in tasks.add_tasks(database, admin, job.id, ["proj001/extra"])}
    # Every page reports the whole total, whether or not the page itself tells it.
    for limit, offset, uris in [
        (5, 0, ["0", "1", "2", "3", "4"]),
        (5, 10, ["10", "11", "12"]),
        (13, 0, [str(i) for i in range(13)]),
        (5, 13, []),
        (5, 40, []),
    ]:
        page = tasks.list_tasks(database, admin, job.id, limit=limit, offset=offset)
        assert [t.uri for t in page.items] == uris
        assert page.total == 13
    kept = tasks.list_tasks(database, admin, job.id, status="!excluded", limit=20)
    assert kept.total == 12
    assert "3" not in [t.uri for t in kept.items]
    assert tasks.list_tasks(database, admin, job.id, status="excluded,done").total == 1
    empty = tasks.list_tasks(database, admin, job.id, status="done")
    assert (empty.total, empty.items) == (0, [])
    # The listed record is the same one the other services return.
    listed = tasks.list_tasks(database, admin, job.id, offset=12).items[0]
    assert listed == expected[listed.id]
    assert listed.source_volume == "projects"
    assert listed.source_path == "proj001/extra"
    with pytest.raises(NotFoundError):
        tasks.list_tasks(database, standard, job.id)
    with pytest.raises(ValidationError):
        tasks.list_tasks(database, admin, job.id, status="nonsense")


def test_an_image_sequence_is_one_task_per_frame(
    database: Database, studio: dict[str, Actor]
) -> None:
    job = jobs.submit_job(
        database,
        studio["employee"],
        {
            "name": "plates",
            "tasks": [
                {
                    "source": "share=projects/proj001/sh0010/plate.%04d.exr[1001-1003]",
                    "destination": "site=london",
                },
                {
                    "source": "share=projects/proj001/sh0010/plate.####.exr[1004,1004]",
                    "destination": "site=london:volume=projects/proj001/in/comp.%04d.exr",
                },
            ],
        },
    )
    assert job.tasks == 4
    plate = "proj001/sh0010/plate.{}.exr"
    assert _paths(database, studio["admin"], job.id) == [
        ("0", "projects", plate.format(1001), "projects", plate.format(1001)),
        ("1", "projects", plate.format(1002), "projects", plate.format(1002)),
        ("2", "projects", plate.format(1003), "projects", plate.format(1003)),
        ("3", "projects", plate.format(1004), "projects", "proj001/in/comp.1004.exr"),
    ]
    before = _counts(database)
    with pytest.raises(ValidationError, match="no frame range"):
        jobs.submit_job(
            database,
            studio["employee"],
            {"source": "share=projects/proj001/plate.%04d.exr", "destination": "site=london"},
        )
    assert _counts(database) == before


def test_a_repeated_idempotency_key_returns_the_first_job(
    database: Database, studio: dict[str, Actor]
) -> None:
    emp, admin = studio["employee"], studio["admin"]
    spec = {"source": "share=projects/proj001/a", "destination": "site=london"}
    first = jobs.submit_job(database, emp, spec, idempotency_key="tool-run-1")
    counts = _counts(database)
    again = jobs.submit_job(database, emp, spec, idempotency_key="tool-run-1")
    assert again.id == first.id
    assert _counts(database) == counts  # no second job, no second task
    # the key is the user's own: another user's same key makes their own job
    other = jobs.submit_job(database, admin, spec, idempotency_key="tool-run-1")
    assert other.id != first.id
    # an append with a key appends once
    more = {**spec, "source": "share=projects/proj001/b", "append": True}
    appended = jobs.submit_job(database, emp, more, idempotency_key="tool-run-2")
    replay = jobs.submit_job(database, emp, more, idempotency_key="tool-run-2")
    assert appended.id == replay.id == first.id
    assert jobs.get_job(database, emp, first.id).tasks == 2
    with pytest.raises(ValidationError, match="idempotency key"):
        jobs.submit_job(database, emp, spec, idempotency_key=" ")
    with pytest.raises(ValidationError, match="idempotency key"):
        jobs.submit_job(database, emp, spec, idempotency_key="k" * 256)


def test_deleting_a_user_aborts_and_hands_over_their_jobs(
    database: Database, studio: dict[str, Actor]
) -> None:
    from reelsync.services import audit

    employee, admin = studio["employee"], studio["admin"]
    spec = {"source": "share=projects/proj001/a.exr", "destination": "site=london"}
    live = jobs.submit_job(database, employee, {**spec, "name": "live"})
    ended = jobs.submit_job(database, employee, {**spec, "name": "ended"})
    jobs.update_job(database, employee, ended.id, status="aborted")
    with pytest.raises(PermissionDeniedError):
        jobs.delete_user_and_jobs(database, employee, employee.user_id)
    with pytest.raises(ConflictError, match="yourself"):
        jobs.delete_user_and_jobs(database, admin, admin.user_id)
    assert jobs.delete_user_and_jobs(database, admin, employee.email) == [live.id]
    with pytest.raises(NotFoundError):
        users.get_user(database, admin, employee.user_id)
    for job_id in (live.id, ended.id):
        job = jobs.get_job(database, admin, job_id)
        assert (job.status, job.user_id, job.modifier_id) == (
            "aborted",
            admin.user_id,
            admin.user_id,
        )
    [event] = audit.list_events(database, admin)
    assert (event.action, event.entity_id, event.actor) == (
        "user.deleted",
        employee.user_id,
        admin.email,
    )
    assert event.detail["email"] == employee.email
    assert sorted(event.detail["jobs"]) == sorted([live.id, ended.id])
    assert event.detail["aborted"] == [live.id]
    with pytest.raises(PermissionDeniedError):
        audit.list_events(database, studio["standard"])


def test_a_failed_job_is_not_finished_and_not_active(
    database: Database, studio: dict[str, Actor]
) -> None:
    """``finished=False`` keeps accsyn's meaning (a failed job can be retried: not finished);
    ``active`` is the web UI's Active and ``job list --active`` (a failed job has ended)."""
    admin = studio["admin"]
    failed = jobs.submit_job(database, admin, {"source": "proj001/f", "destination": "site=london"})
    waiting = jobs.submit_job(
        database, admin, {"source": "proj001/w", "destination": "site=london"}
    )
    with database.session() as session:
        session.get(m.Job, failed.id).status = "failed"  # as the rollup leaves a job that failed
    unfinished = {j.id for j in jobs.list_jobs(database, admin, finished=False).items}
    assert {failed.id, waiting.id} <= unfinished
    active = {j.id for j in jobs.list_jobs(database, admin, active=True).items}
    assert waiting.id in active
    assert failed.id not in active
    ended = {j.id for j in jobs.list_jobs(database, admin, active=False).items}
    assert failed.id in ended
    assert waiting.id not in ended


def _statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    engines = {id(db.engine): db.engine}
    with db.reader() as session:  # the readers' engine, when it is another one
        engines[id(session.get_bind().engine)] = session.get_bind().engine
    for engine in engines.values():
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        for engine in engines.values():
            event.remove(engine, "before_cursor_execute", count)


def _ten_files(n: int) -> dict[str, Any]:
    return {
        "name": f"ten {n}",
        "tasks": [
            {"source": f"share=projects/proj001/j{n}/f{i}.exr", "destination": "site=london"}
            for i in range(10)
        ],
    }


def test_a_submit_costs_a_few_statements_whatever_the_configuration(
    database: Database, studio: dict[str, Actor]
) -> None:
    """What every submit reads and an admin rarely changes (queues, sites, volumes, grants,
    settings, webhooks) comes from the catalog: a ten-file submit in one request is the check
    of the catalog's generation, the job's INSERT and its tasks' bulk insert."""
    employee = studio["employee"]
    jobs.submit_job(database, employee, _ten_files(0))  # the catalog is read once
    with catalog.request_scope(), contextmanager(_statements)(database) as seen:
        job = jobs.submit_job(database, employee, _ten_files(1))
    assert (job.tasks, job.status, job.queue) == (10, "waiting", "medium")
    writes = [s for s in seen if s in ("INSERT", "UPDATE", "DELETE", "COPY")]
    reads = [s for s in seen if s == "SELECT"]
    assert len(reads) <= 1, seen  # the generation
    assert len(writes) <= 2, seen  # the job, its tasks (PostgreSQL: COPY, not seen here)


def test_a_change_made_by_another_process_is_seen_by_the_next_request(
    database: Database, studio: dict[str, Actor]
) -> None:
    employee, admin = studio["employee"], studio["admin"]
    jobs.submit_job(database, employee, _ten_files(0))
    other = Database(database.url)  # another worker or replica on the same database
    try:
        queues.create_queue(other, admin, code="rush", priority=900)
        acls.grant(
            other, admin, user=employee.user_id, volume="projects", path="proj001", write=False
        )
    finally:
        other.dispose()
    with catalog.request_scope(), pytest.raises(PermissionDeniedError):
        jobs.submit_job(database, employee, _ten_files(1))
    with catalog.request_scope():
        job = jobs.submit_job(database, admin, {**_ten_files(2), "queue": "rush"})
    assert job.queue == "rush"
