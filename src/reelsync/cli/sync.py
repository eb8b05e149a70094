"""``reelsync sync``: push shot folders to a site (or pull them back with --upload), one job per
project, direction, site and day; with --wait, a live progress bar until the job ends."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import click

from reelsync.cli.connection import Connection, session_of
from reelsync.cli.crud import json_option, wait_options
from reelsync.cli.output import echo_json, say
from reelsync.errors import TransferError
from reelsync.sync.quantities import human_size
from reelsync.sync.sitesync import Direction, SyncedJob, SyncRequest, submit_sync

if TYPE_CHECKING:  # following the jobs loads when --wait follows them (_FOLLOW)
    from reelsync.client import Session
    from reelsync.client.early import EarlyRequest
    from reelsync.sync.jobview import JobView

#: What following the jobs needs (the bars: rich), loaded while the source agent sizes the paths.
_FOLLOW = ("reelsync.sync.watch", "reelsync.sync.bars", "reelsync.cli.job")

__all__ = ["sync"]


@click.command("sync")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--site", help="The site to sync with (default: the only site besides the main one).")
@click.option("--upload", is_flag=True, help="Pull from the site to the main site (default: push).")
@click.option("--queue", help="Queue CODE (default: the project's queue, else the default queue).")
@click.option("--volume", default="projects", show_default=True, help="Volume the paths are in.")
@wait_options
@json_option
@click.pass_context
def sync(
    ctx: click.Context,
    paths: tuple[str, ...],
    site: str | None,
    upload: bool,
    queue: str | None,
    volume: str,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Sync PATH... (relative to the volume, e.g. proj001/sc0010/sh0010/scans) with a site."""
    direction = Direction.UPLOAD if upload else Direction.DOWNLOAD
    bars = wait and not as_json
    request = SyncRequest.of(paths, site, direction, queue, volume=volume)
    early = _send_early(ctx, request)  # the server starts on it while the client loads
    session = session_of(ctx)
    result = submit_sync(
        session,
        paths,
        site,
        direction,
        queue,
        volume=volume,
        meanwhile=(lambda: _ready_to_follow(session, bars=bars)) if wait else None,
        request=request,
        sent=early.answer if early is not None else None,
    )
    for note in result.notes:
        say(f"note: {note}")
    for warning in result.warnings:
        say(f"warning: {warning}")
    if not as_json:
        for job in result.jobs:
            say(
                f"{job.action} job {job.name!r} ({job.id}) in queue {job.queue}: "
                f"{len(job.paths)} path(s), {human_size(job.size)} "
                f"{job.source_site} -> {job.destination_site}"
            )
    if not wait:
        if as_json:
            echo_json(result.to_dict())
        return
    from reelsync.sync.watch import watch_jobs

    views = watch_jobs(
        session,
        [j.id for j in result.jobs],
        show=bars,
        timeout_s=timeout,
        details=as_json,  # a person is told "all files synced": a done job needs no counts
        known={j.id: j.job for j in result.jobs},  # each read just after its submit
    )
    if as_json:
        echo_json({**result.to_dict(), "final": [v.to_dict() for v in views]})
    failed = _judged(session, result.jobs, views)
    if not failed:
        if not as_json:
            say("all files synced")
        return
    if not as_json:
        from reelsync.cli.job import print_job

        for view in failed:
            print_job(view, stderr=True)
    raise TransferError("; ".join(_failure_line(v) for v in failed))


def _send_early(ctx: click.Context, request: SyncRequest) -> EarlyRequest | None:
    """``POST /syncs`` sent now, before the client's async core (asyncio, httpcore's backend) is
    loaded: the server checks, sizes and submits while this process loads the rest. Not with a
    transport of the tests' (the session's own requests go there), nor without an API key (the
    session says so)."""
    conn = ctx.find_object(Connection)
    if conn is None or conn.transport is not None:
        return None
    config = conn.config()
    if not config.api_key:
        return None
    from reelsync.client.early import EarlyRequest

    return EarlyRequest(
        config, "POST", "/syncs", json_body=dict(request.body), headers=dict(request.headers)
    )


def _ready_to_follow(session: Session, *, bars: bool) -> None:
    """While the server works on the submit, get ready to follow the jobs instead of after it:
    the session's connection opened (``GET /health``: its TLS handshake and the loading of its
    async backend, which the follow's long-poll then reuses) and, for a person (``bars``), the
    progress bars loaded (rich, ~30 ms of imports)."""
    warm = session.start("GET", "/health", auth=False)
    if bars:
        for module in _FOLLOW:
            importlib.import_module(module)
    with contextlib.suppress(Exception):  # only a warm-up: the follow says what is wrong
        warm.result()


def _judged(session: Session, jobs: Sequence[SyncedJob], views: Sequence[JobView]) -> list[JobView]:
    """The jobs that failed what THIS sync asked for: aborted, or with failed tasks among its
    paths (the day's job may hold other syncs' earlier failures: those are only noted)."""
    from reelsync.sync.jobview import failed_within

    failed = []
    for job, view in zip(jobs, views, strict=True):
        if view.status == "done":
            continue
        if view.status != "failed":
            failed.append(view)
            continue
        mine = failed_within(session, view.id, job.paths)
        if mine:
            failed.append(replace(view, failed=tuple(mine)))
        else:
            say(
                f"note: job {view.name!r} has failed files from earlier syncs; "
                "every file this sync asked for is there"
            )
    return failed


def _failure_line(view: JobView) -> str:
    line = f"job {view.name!r} {view.status}"
    if view.failed:
        shown = ", ".join(f"{t.source}: {t.last_error}" for t in view.failed[:3])
        more = f" (+{len(view.failed) - 3} more)" if len(view.failed) > 3 else ""
        line += f": {len(view.failed)} task(s) failed - {shown}{more}"
    return line
