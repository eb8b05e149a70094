"""``reelsync job submit|list|show|pause|resume|abort|retry`` through click's runner against the
real control-plane app (in process, on SQLite and PostgreSQL); no agent runs, so jobs stay put
unless the CLI moves them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from reelsync.cli import cli
from reelsync.cli.connection import Connection
from reelsync.client import Session
from reelsync.db import Database
from reelsync.services.bootstrap import InitResult
from reelsync.sync.jobview import view_of
from sync_world import INPROC_URL, World, build_world, inproc_server, inproc_session


@pytest.fixture
def app_transport(database: Database, tmp_path: Path) -> Iterator[httpx.ASGITransport]:
    with inproc_server(database, tmp_path) as (transport, _url):
        yield transport


@pytest.fixture
def admin_session(app_transport: httpx.ASGITransport, workspace: InitResult) -> Iterator[Session]:
    with inproc_session(app_transport, workspace.api_key) as session:
        yield session


@pytest.fixture
def world(admin_session: Session, tmp_path: Path) -> World:
    return build_world(admin_session, tmp_path / "studio")


def run(transport: httpx.ASGITransport, key: str, *args: str) -> Result:
    conn = Connection(url=INPROC_URL, transport=transport)
    return CliRunner().invoke(
        cli,
        list(args),
        obj=conn,
        env={"REELSYNC_API_KEY": key, "REELSYNC_URL": INPROC_URL, "COLUMNS": "200"},
    )


def submit(session: Session, name: str, paths: list[str]) -> dict[str, Any]:
    return session.submit_job(
        {
            "name": name,
            "queue": "proj001",
            "tasks": [
                {"source": f"share=projects/{p}", "destination": "site=london"} for p in paths
            ],
        }
    )


def test_list_show_pause_resume_abort_retry(
    app_transport: httpx.ASGITransport, admin_session: Session, world: World
) -> None:
    key = world.operator_key
    with inproc_session(app_transport, key) as op:
        job = submit(op, "proj001 download london 2026-11-27", ["proj001/a", "proj001/b"])
    listed = run(app_transport, key, "job", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [j["id"] for j in json.loads(listed.stdout)] == [job["id"]]
    table = run(app_transport, key, "job", "list")
    assert "proj001 download london" in table.stdout
    assert "waiting" in table.stdout

    shown = run(app_transport, key, "job", "show", "proj001 download london 2026-11-27", "--json")
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.stdout)
    assert view["id"] == job["id"]
    assert view["status"] == "waiting"
    assert view["task_counts"] == {"queued": 2}
    assert view["failed_tasks"] == []
    # no agent runs here: the view says what the queued tasks wait for
    assert view["notes"] == [
        "waiting for an agent at site hq: none is online (none enrolled)",
        "waiting for an agent at site london: none is online (none enrolled)",
    ]
    human = run(app_transport, key, "job", "show", job["id"])
    assert "2 queued" in human.stdout
    assert "site=london" in human.stdout
    assert "note: waiting for an agent at site london" in human.stdout

    paused = run(app_transport, key, "job", "pause", job["id"])
    assert paused.exit_code == 0, paused.output
    assert "now paused" in paused.stderr
    assert admin_session.get_entity("job", job["id"])["status"] == "paused"
    held = json.loads(run(app_transport, key, "job", "show", job["id"], "--json").stdout)
    assert held["notes"] == ["the job is paused: reelsync job resume starts it again"]

    resumed = run(app_transport, key, "job", "resume", job["id"], "--json")
    assert json.loads(resumed.stdout)["status"] == "waiting"

    # Resuming a job that is not paused, or retrying one with nothing failed: one line, no change.
    again = run(app_transport, key, "job", "resume", job["id"])
    assert again.exit_code == 2
    assert again.stderr.strip().splitlines() == [
        f"error: job {job['name']!r} is waiting, not paused (retry re-runs a failed or aborted job)"
    ]
    nothing = run(app_transport, key, "job", "retry", job["id"])
    assert nothing.exit_code == 2
    assert "nothing to retry" in nothing.stderr
    assert len(nothing.stderr.splitlines()) == 1

    # One task fails (as an agent would report it); show lists it; retry re-queues it.
    admin_session.update("task", job["id"], [{"uri": "1", "status": "failed"}])
    failed = json.loads(run(app_transport, key, "job", "show", job["id"], "--json").stdout)
    assert failed["task_counts"] == {"queued": 1, "failed": 1}
    assert [t["uri"] for t in failed["failed_tasks"]] == ["1"]
    assert failed["failed_tasks"][0]["source"] == "projects/proj001/b"
    retried = run(app_transport, key, "job", "retry", job["id"])
    assert retried.exit_code == 0, retried.output
    counts = json.loads(run(app_transport, key, "job", "show", job["id"], "--json").stdout)
    assert counts["task_counts"] == {"queued": 2}

    aborted = run(app_transport, key, "job", "abort", job["id"], "--json")
    assert json.loads(aborted.stdout)["status"] == "aborted"
    assert run(app_transport, key, "job", "list", "--active", "--json").stdout.strip() == "[]"
    revived = run(app_transport, key, "job", "retry", job["id"], "--json")
    assert json.loads(revived.stdout)["status"] == "waiting"


def test_submit_a_job_file_and_its_mistakes(
    app_transport: httpx.ASGITransport, world: World, tmp_path: Path
) -> None:
    key = world.operator_key
    spec = tmp_path / "job.json"
    spec.write_text(
        json.dumps(
            {
                "name": "plates for london",
                "destination": "site=london",
                "tasks": ["share=projects/proj001/a", "share=projects/proj001/b"],
            }
        )
    )
    done = run(app_transport, key, "job", "submit", str(spec), "--queue", "proj001", "--json")
    assert done.exit_code == 0, done.output
    created = json.loads(done.stdout)
    assert (created["name"], created["status"]) == ("plates for london", "waiting")
    shown = json.loads(run(app_transport, key, "job", "show", created["id"], "--json").stdout)
    assert shown["queue"] == "proj001"
    assert shown["task_counts"] == {"queued": 2}
    human = run(app_transport, key, "job", "submit", str(spec), "--name", "again")
    assert human.exit_code == 0, human.output
    assert "submitted job 'again'" in human.stderr

    # Every mistake is one line, exit 2, and nothing more is submitted.
    broken = tmp_path / "broken.json"
    for text, message in (
        ('{"name": "x", "tasks": [', "is not valid JSON"),
        ('["share=projects/proj001/a"]', "must hold one JSON object"),
        ('{"tasks": ["share=projects/proj001/a"], "sources": 1}', "unknown job field"),
        ('{"destination": "site=paris", "tasks": ["share=projects/proj001/a"]}', "paris"),
    ):
        broken.write_text(text)
        result = run(app_transport, key, "job", "submit", str(broken))
        assert result.exit_code == 2, (text, result.output)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr, (text, result.stderr)
    missing = run(app_transport, key, "job", "submit", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2
    assert "No such file or directory" in missing.stderr
    listed = json.loads(run(app_transport, key, "job", "list", "--json").stdout)
    assert sorted(j["name"] for j in listed) == ["again", "plates for london"]


def test_unknown_job_is_one_clear_line(app_transport: httpx.ASGITransport, world: World) -> None:
    for ref in ("no such job", "f" * 24):
        result = run(app_transport, world.operator_key, "job", "show", ref)
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("error: no job")


def test_operator_does_not_see_other_users_jobs(
    app_transport: httpx.ASGITransport, admin_session: Session, world: World
) -> None:
    job = submit(admin_session, "admin's own", ["proj001/a"])
    result = run(app_transport, world.operator_key, "job", "abort", job["id"])
    assert result.exit_code == 2
    assert "no job" in result.stderr
    shown = run(app_transport, world.operator_key, "job", "show", job["id"])
    assert shown.exit_code == 2
    assert "no job" in shown.stderr
    assert admin_session.get_entity("job", job["id"])["status"] == "waiting"


def test_eta_only_while_running() -> None:
    base = {"id": "a" * 24, "size": 1000, "bytes_done": 250, "speed": 50.0}
    assert view_of({**base, "status": "running"}, {}, ()).eta_s == 15.0
    assert view_of({**base, "status": "paused"}, {}, ()).eta_s is None
    assert view_of({**base, "status": "running", "size": None}, {}, ()).eta_s is None
    assert view_of({**base, "status": "running", "speed": 0}, {}, ()).eta_s is None
    assert view_of({**base, "status": "running", "etr": 7}, {}, ()).eta_s == 7.0


def test_speed_only_while_running() -> None:
    base = {"id": "a" * 24, "size": 1000, "bytes_done": 250, "speed": 50.0}
    assert view_of({**base, "status": "running"}, {}, ()).current_speed == 50.0
    for status in ("paused", "waiting", "done"):  # the last speed measured is no speed now
        assert view_of({**base, "status": status}, {}, ()).current_speed is None


def test_submit_warns_when_a_destination_path_names_a_site(
    app_transport: httpx.ASGITransport, world: World, tmp_path: Path
) -> None:
    """``"destination": "london"`` is a path at the main site (accsyn's reading): the job is
    made, and the CLI says so with the way to send it to london."""
    spec = tmp_path / "job.json"
    spec.write_text(
        json.dumps({"name": "to london?", "destination": "london", "tasks": ["proj001/a"]})
    )
    done = run(app_transport, world.operator_key, "job", "submit", str(spec))
    assert done.exit_code == 0, done.output
    [warning] = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert 'destination "london" is a path in the default volume at hq' in warning
    assert 'write "site=london"' in warning
