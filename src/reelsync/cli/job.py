"""``reelsync job``: submit, watch and steer transfer jobs (submit, list, show, pause, resume,
abort, retry).

A job is named by its id or its name (the newest job with that name). Status changes go through
the server's status machine: pause holds the job, resume and retry set it waiting again (retry
re-queues its failed tasks), abort stops it for good."""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

import click

from reelsync.cli.connection import pass_session
from reelsync.cli.crud import json_option, wait_options
from reelsync.cli.output import cell, echo_json, print_rows, print_table, say
from reelsync.client import Entity, Session
from reelsync.domain.status import JOB_ACTIVE
from reelsync.errors import InvalidTransitionError, TransferError, ValidationError
from reelsync.sync.jobview import JobView, find_job, job_view
from reelsync.sync.quantities import human_duration, human_size, human_speed
from reelsync.sync.watch import watch_jobs

if TYPE_CHECKING:  # rich loads when a job is printed
    from rich.console import Console

__all__ = ["job"]

_LIST_COLUMNS = ["id", "name", "status", "queue", "progress", "size", "speed", "user", "created"]


@click.group()
def job() -> None:
    """Transfer jobs: submit, list, show, pause, resume, abort, retry."""


def _row(entity: Entity) -> Entity:
    return {
        **entity,
        "progress": f"{float(entity.get('progress') or 0):.0f}%",
        "size": human_size(entity.get("size")),
        "speed": (
            human_speed(float(entity["speed"]))
            if entity.get("speed") and entity.get("status") == "running"
            else ""
        ),
    }


@job.command("list")
@click.option("--status", help="Only jobs in these statuses (comma-separated).")
@click.option("--queue", help="Only jobs of this queue.")
@click.option("--user", help="Only jobs of this user (admins).")
@click.option(
    "--active", is_flag=True, help="Only jobs that have not ended (init, waiting, running, paused)."
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
@pass_session
def list_cmd(
    session: Session,
    status: str | None,
    queue: str | None,
    user: str | None,
    active: bool,
    limit: int,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    if active and not status:  # what the web UI lists as Active
        status = ",".join(sorted(s.value for s in JOB_ACTIVE))
    rows = session.find("job", status=status, queue=queue, user=user, limit=limit)
    if as_json:
        echo_json(rows)
    else:
        print_table([_row(r) for r in rows], _LIST_COLUMNS, "jobs")


def _read_spec(spec_file: IO[str]) -> dict[str, Any]:
    name = getattr(spec_file, "name", "the job file")
    try:
        spec = json.loads(spec_file.read())
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError:
        raise ValidationError(f"{name} is not UTF-8 text") from None
    if not isinstance(spec, dict):
        raise ValidationError(
            f"{name} must hold one JSON object (a job), not {type(spec).__name__}"
        )
    return spec


@job.command("submit")
@click.argument("spec_file", metavar="FILE", type=click.File("r", encoding="utf-8"))
@click.option("--queue", help="Queue CODE (overrides the file's).")
@click.option("--name", help="Job name (overrides the file's).")
@wait_options
@json_option
@pass_session
def submit_cmd(
    session: Session,
    spec_file: IO[str],
    queue: str | None,
    name: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Submit the job described in FILE ('-' for stdin): JSON as the API takes it, e.g.
    {"name": "plates", "destination": "site=london",
     "tasks": ["volume=projects/proj001/sc0010/sh0010/scans/plate.0001.exr"]}.
    The server checks it whole; a mistake submits nothing."""
    spec = _read_spec(spec_file)
    if queue:
        spec["queue"] = queue
    if name:
        spec["name"] = name
    created = session.submit_job(spec)
    if not as_json:
        say(
            f"submitted job {created.get('name')!r} ({created.get('id')}) in queue "
            f"{created.get('queue')}: {created.get('status')}"
        )
        for warning in created.get("warnings") or ():
            say(f"warning: {warning}")
    if not wait:
        if as_json:
            echo_json(created)
        return
    (view,) = watch_jobs(session, [str(created["id"])], show=not as_json, timeout_s=timeout)
    if as_json:
        echo_json({**created, "final": view.to_dict()})
    if view.status == "done":
        return
    if not as_json:
        print_job(view, stderr=True)
    raise TransferError(f"job {view.name!r} ended {view.status}")


def print_job(view: JobView, console: Console | None = None, *, stderr: bool = False) -> None:
    """The job as a person reads it: one table, then its failed tasks (on ``console``, else
    stdout, or stderr with ``stderr``)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=stderr, soft_wrap=True, highlight=False)
    table = Table(title=f"job {view.name}", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    counts = ", ".join(f"{n} {status}" for status, n in view.counts.items()) or "none"
    for key, value in (
        ("id", view.id),
        ("status", view.status),
        ("queue", view.queue),
        ("user", view.user),
        ("from", view.source),
        ("to", view.destination),
        ("progress", f"{view.progress:.1f}%"),
        ("size", f"{human_size(view.bytes_done)} of {human_size(view.size)}"),
        ("speed", human_speed(view.current_speed) if view.current_speed else "-"),
        ("eta", human_duration(view.eta_s) if view.eta_s is not None else "-"),
        ("tasks", f"{view.tasks} ({counts})"),
        ("created", cell(view.created)),
        ("finished", cell(view.finished)),
    ):
        table.add_row(key, value)
    console.print(table)
    for note in view.notes:
        console.print(f"note: {note}")
    if view.failed:
        rows = [
            [task.uri, task.source, task.destination, str(task.tries), task.last_error]
            for task in view.failed
        ]
        print_rows(
            console, rows, ("uri", "source", "destination", "tries", "last error"), "failed tasks"
        )


@job.command("show")
@click.argument("ref", metavar="JOB")
@json_option
@pass_session
def show_cmd(session: Session, ref: str, as_json: bool) -> None:
    """Show a job: status, progress, size, speed, ETA, task counts and failed tasks."""
    view = job_view(session, ref)
    if as_json:
        echo_json(view.to_dict())
    else:
        print_job(view)


def _set_status(session: Session, ref: str, status: str, done: str, as_json: bool) -> None:
    entity = find_job(session, ref)
    changed = session.update("job", str(entity["id"]), {"status": status})
    if as_json:
        echo_json(changed)
    else:
        say(
            f"{done} job {changed.get('name')!r} ({changed.get('id')}): now {changed.get('status')}"
        )


@job.command("pause")
@click.argument("ref", metavar="JOB")
@json_option
@pass_session
def pause_cmd(session: Session, ref: str, as_json: bool) -> None:
    """Hold a job: files in flight stop at once (within a second) and no new transfer starts.

    A file cut mid-way keeps its verified chunks at the receiver; resume sends only what is
    missing, and only once."""
    _set_status(session, ref, "paused", "paused", as_json)


@job.command("resume")
@click.argument("ref", metavar="JOB")
@json_option
@pass_session
def resume_cmd(session: Session, ref: str, as_json: bool) -> None:
    """Let a paused job run again."""
    entity = find_job(session, ref)
    if entity.get("status") != "paused":
        raise InvalidTransitionError(
            f"job {entity.get('name')!r} is {entity.get('status')}, not paused",
            hint="retry re-runs a failed or aborted job",
        )
    _set_status(session, str(entity["id"]), "waiting", "resumed", as_json)


@job.command("abort")
@click.argument("ref", metavar="JOB")
@json_option
@pass_session
def abort_cmd(session: Session, ref: str, as_json: bool) -> None:
    """Stop a job for good (retry can start it again)."""
    _set_status(session, ref, "aborted", "aborted", as_json)


@job.command("retry")
@click.argument("ref", metavar="JOB")
@json_option
@pass_session
def retry_cmd(session: Session, ref: str, as_json: bool) -> None:
    """Re-queue a job's failed tasks and run it again (also revives an aborted job)."""
    entity = find_job(session, ref)
    status = entity.get("status")
    if status not in ("failed", "aborted"):
        failed = session.tasks(str(entity["id"]), status="failed", limit=1)
        if not failed:
            raise InvalidTransitionError(
                f"job {entity.get('name')!r} is {status} and has no failed tasks: nothing to retry"
            )
    _set_status(session, str(entity["id"]), "waiting", "retried", as_json)
