"""A site sync in one call (``POST /api/v1/syncs``, what ``reelsync sync`` sends): the checks, the
sizing at the source agent and the day's job of each project, made on the server instead of in
some dozen requests from the client (:mod:`reelsync.sync.sitesync` keeps that flow for an older
server). The rules are :mod:`reelsync.domain.syncjob`'s; the errors are the ones the CLI says.

Rules:
- In order, before anything is submitted: the volume, the paths (relative to it), the site (not
  the main site; the volume has a path at both), the queue of each project, an online agent at
  both sites, the caller's read and write access to each path, then each path sized at the source
  agent through the app's file operator, 64 paths a round trip (it must exist; a folder must
  not be empty).
- Finding or creating the day's job of a project is done under a lock on (caller, job name) -
  a process lock, and on PostgreSQL a transaction advisory lock - so two syncs of one project at
  once make one job. The request's idempotency key makes one key per project: a retried request
  appends nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text

from reelsync.db import Database
from reelsync.domain.fileops import FileOp, FileOperator, FileRequest
from reelsync.domain.records import Actor, Job, Volume
from reelsync.domain.status import JobStatus
from reelsync.domain.syncjob import (
    Direction,
    by_project,
    check_may_sync,
    empty_folder_error,
    job_name,
    missing_path_error,
    moved_note,
    project_of,
    project_queue,
    sync_path,
    sync_tasks,
)
from reelsync.errors import (
    NotFoundError,
    PermissionDeniedError,
    ReelsyncError,
    ValidationError,
    error_from_code,
)
from reelsync.services import idempotency, jobs, queues, servers, sites, tasks, volumes
from reelsync.services.acls import AccessRules
from reelsync.services.jobs import SubmitHook

__all__ = ["SyncOutcome", "SyncedJob", "site_sync"]

_ENDED = (JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.ABORTED.value)
_LOCKS = tuple(threading.Lock() for _ in range(64))
_SIZES_PER_CALL = 64  # paths sized in one round trip to the source agent
_SIZING_AT_ONCE = 4  # round trips to it at once


@dataclass(frozen=True, slots=True)
class SyncedJob:
    """One project's day's job as this sync left it (``action``: created, appended, revived)."""

    project: str
    name: str
    action: str
    queue: str
    source_site: str
    destination_site: str
    paths: tuple[str, ...]
    size: int  # bytes of the paths at the source
    job: Job


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    jobs: tuple[SyncedJob, ...]
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Checked:
    volume: Volume
    paths: tuple[str, ...]
    source: str
    destination: str
    remote: str
    queues: Mapping[str, str]
    notes: tuple[str, ...]
    scopes: Mapping[str, str]


def _codes(codes: Sequence[str]) -> str:
    return ", ".join(codes)


def _volume(db: Database, actor: Actor, ref: str) -> Volume:
    try:
        return volumes.get_volume(db, actor, ref)
    except NotFoundError:
        try:
            known = [v.code for v in volumes.list_volumes(db, actor)]
            hint = f"volumes: {_codes(known) or 'none shared with you'}"
        except ReelsyncError:
            hint = None
        raise NotFoundError(f"unknown volume {ref!r}", hint=hint) from None


def _sites(db: Database, actor: Actor, site: str | None) -> tuple[str, str]:
    """(main site code, remote site code), the remote one checked."""
    all_sites = sites.list_sites(db, actor)
    main = next((s for s in all_sites if s.main), None)
    if main is None:
        raise NotFoundError("the workspace has no main site")
    others = [s.code for s in all_sites if not s.main]
    if site is None:
        if len(others) != 1:
            raise ValidationError(
                f"give the site to sync with (one of: {_codes(others) or 'none yet'})"
            )
        return main.code, others[0]
    match = next((s for s in all_sites if site in (s.code, s.id)), None)
    if match is None:
        raise NotFoundError(
            f"unknown site {site!r}", hint=f"sites: {_codes([s.code for s in all_sites])}"
        )
    if match.main:
        raise ValidationError(
            f"{site} is the main site; sync moves files between it and another site"
        )
    if not match.enabled:
        raise ValidationError(f"site {site} is disabled")
    return main.code, match.code


def _queues(
    db: Database, actor: Actor, projects: Sequence[str], queue: str | None
) -> tuple[dict[str, str], list[str]]:
    if queue is not None:
        try:
            code = queues.get_queue(db, actor, queue).code
        except NotFoundError:
            raise NotFoundError(f"unknown queue {queue!r}") from None
        return dict.fromkeys(projects, code), []
    rows = [(q.code, q.default) for q in queues.list_queues(db, actor)]
    chosen: dict[str, str] = {}
    notes: list[str] = []
    for project in projects:
        chosen[project], note = project_queue(project, rows)
        if note:
            notes.append(note)
    return chosen, notes


def _scopes(db: Database, actor: Actor, volume: Volume, paths: Sequence[str]) -> dict[str, str]:
    """Each path's read scope at the source, once the caller may read and write it."""
    if not actor.is_admin:
        check_may_sync(actor.email, actor.role.value)
    with db.reader() as session:
        rules = AccessRules(session, actor)
        for path in paths:
            for need in ("read", "write"):
                if not rules.allows(volume.id, path, **{need: True}):
                    raise PermissionDeniedError(
                        f"{actor.email} has no {need} access to {volume.code}/{path}",
                        hint="ask an admin for a grant",
                    )
        return {p: rules.check(volume.id, volume.code, p, read=True) for p in paths}


def _check(
    db: Database,
    actor: Actor,
    paths: Sequence[str],
    site: str | None,
    way: Direction,
    queue: str | None,
    volume_ref: str,
) -> _Checked:
    """Everything before the sizing, in the CLI's order (so the same mistake says the same)."""
    if not paths:
        raise ValidationError("give at least one path, like proj001/sc0010/sh0010/scans")
    vol = _volume(db, actor, volume_ref)
    rels = tuple(dict.fromkeys(sync_path(p, vol.code, vol.paths.values()) for p in paths))
    main, remote = _sites(db, actor, site)
    missing = [s for s in (main, remote) if s not in vol.paths]
    if missing:
        raise ValidationError(
            f"volume {vol.code} has no path at site {missing[0]}",
            hint=f"set one: reelsync volume update {vol.code} --path {missing[0]}=/PATH",
        )
    source, destination = (main, remote) if way is Direction.DOWNLOAD else (remote, main)
    projects = list(dict.fromkeys(project_of(p) for p in rels))
    chosen, notes = _queues(db, actor, projects, queue)
    servers.require_online(db, actor, source, destination)
    scopes = _scopes(db, actor, vol, rels)
    return _Checked(vol, rels, source, destination, remote, chosen, tuple(notes), scopes)


async def _size(operator: FileOperator, checked: _Checked) -> dict[str, int]:
    """Each path's size at the source (a folder: its files' total), counted by the agent there:
    ``_SIZES_PER_CALL`` paths per round trip to it (``sizes``), a few round trips at once; an
    agent older than ``sizes`` is asked path by path. One after the other, a sync of 100 shots
    waited ~4.5 s for its round trips. Every round trip is waited for, so the error said is the
    one of the first path (in the order given) that has one."""
    vol, site = checked.volume, checked.source
    parts = [
        checked.paths[i : i + _SIZES_PER_CALL]
        for i in range(0, len(checked.paths), _SIZES_PER_CALL)
    ]
    limit = asyncio.Semaphore(_SIZING_AT_ONCE)

    async def part(paths: Sequence[str]) -> list[int | ReelsyncError]:
        request = FileRequest(
            op=FileOp.SIZES, volume_id=vol.id, volume_code=vol.code, path=paths[0],
            site_code=site, paths=tuple(paths), scopes=tuple(checked.scopes[p] for p in paths),
        )  # fmt: skip
        async with limit:
            try:
                answer = await operator.run(request)
            except ValidationError as exc:
                if not exc.message.startswith("unknown file operation"):
                    raise
                answer = None  # an agent older than ``sizes``
            except NotFoundError:  # the volume at the agent, say: each path says which
                answer = None
        if answer is None:
            return [await _size_one(operator, checked, path, limit) for path in paths]
        if not isinstance(answer, list) or len(answer) != len(paths):
            raise ValidationError(f"the agent at {site} answered sizes with {answer!r:.200}")
        return [_sized(site, vol.code, p, a) for p, a in zip(paths, answer, strict=True)]

    answers = await asyncio.gather(*(part(paths) for paths in parts), return_exceptions=True)
    sizes: dict[str, int] = {}
    for paths, answer in zip(parts, answers, strict=True):  # in order: the first error is said
        if isinstance(answer, BaseException):
            raise answer
        for path, size in zip(paths, answer, strict=True):
            if isinstance(size, ReelsyncError):
                raise size
            sizes[path] = size
    return sizes


def _sized(site: str, volume: str, path: str, answer: Any) -> int | ReelsyncError:
    """One path's entry of a ``sizes`` answer: its size, or the error to say for it."""
    if not isinstance(answer, Mapping):
        return ValidationError(f"the agent at {site} answered sizes of {path} with {answer!r}")
    error = answer.get("error")
    if isinstance(error, Mapping):
        if error.get("code") == NotFoundError.code:
            return missing_path_error(path, site, volume)
        return error_from_code(str(error.get("code")), str(error.get("message")), remote=False)
    size, files = answer.get("size"), answer.get("files")
    if not isinstance(size, int) or isinstance(size, bool) or not isinstance(files, int):
        return ValidationError(f"the agent at {site} answered sizes of {path} with {answer!r}")
    if files == 0:
        return empty_folder_error(path, site)
    return size


async def _size_one(
    operator: FileOperator, checked: _Checked, path: str, limit: asyncio.Semaphore
) -> int | ReelsyncError:
    """One path's size with ``getsize`` (an agent older than ``sizes``)."""
    vol, site = checked.volume, checked.source

    def op(kind: FileOp, *, recursive: bool = False) -> FileRequest:
        return FileRequest(
            op=kind, volume_id=vol.id, volume_code=vol.code, path=path, recursive=recursive,
            files_only=recursive, site_code=site, scope=checked.scopes[path],
        )  # fmt: skip

    async with limit:
        try:
            size = await operator.run(op(FileOp.GETSIZE))
        except NotFoundError:  # the path, or the volume at the agent: say which
            if await operator.run(op(FileOp.EXISTS)) is not True:
                return missing_path_error(path, site, vol.code)
            raise
        if not isinstance(size, int) or isinstance(size, bool):
            return ValidationError(f"the agent at {site} answered getsize {path} with {size!r}")
        if size == 0:  # an empty file, a folder of empty files, or an empty folder
            listed = await operator.run(op(FileOp.LS, recursive=True))
            if not any(isinstance(e, Mapping) and e.get("type") == 1 for e in listed or ()):
                return empty_folder_error(path, site)
        return size


@contextmanager
def _job_lock(db: Database, actor: Actor, name: str) -> Iterator[None]:
    """Held while the day's job ``name`` of ``actor`` is found or created (one job, not two)."""
    digest = hashlib.sha256(f"{actor.user_id}\0{name.lower()}".encode()).digest()
    with _LOCKS[digest[0] % len(_LOCKS)]:
        if db.dialect != "postgresql":
            yield
            return
        with db.session() as session:  # other servers: the lock lasts this transaction
            key = int.from_bytes(digest[:8], "big", signed=True)
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            yield


def _project_key(key: str | None, project: str) -> str | None:
    if key is None:
        return None
    return "sync:" + hashlib.sha256(f"{key}\0{project}".encode()).hexdigest()


def _submit(
    db: Database,
    actor: Actor,
    name: str,
    queue: str,
    entries: list[dict[str, Any]],
    *,
    move: bool,
    key: str | None,
    hook: SubmitHook | None,
    notes: list[str],
) -> tuple[str, Job]:
    """(action, job) of one project: the day's job appended to, else created."""
    if key is not None:
        earlier = jobs.replayed_job(db, actor, key)
        if earlier is not None:  # the same request again: its first answer did this
            return "appended", earlier
    with _job_lock(db, actor, name):
        found = jobs.list_jobs(db, actor, name=name, user=actor.user_id, limit=1).items
        if not found:
            payload = {"name": name, "queue": queue, "tasks": entries}
            return "created", jobs.submit_job(db, actor, payload, hook=hook, idempotency_key=key)
    job = found[0]
    if move and job.queue.lower() != queue.lower():
        jobs.update_job(db, actor, job.id, queue=queue)
        notes.append(moved_note(name, job.queue, queue))
    tasks.add_tasks(db, actor, job.id, entries, idempotency_key=key)
    action = "revived" if job.status in _ENDED else "appended"
    return action, jobs.get_job(db, actor, job.id)


def _submit_all(
    db: Database,
    actor: Actor,
    checked: _Checked,
    sizes: Mapping[str, int],
    way: Direction,
    *,
    queue: str | None,
    key: str | None,
    hook: SubmitHook | None,
    today: date | None,
) -> SyncOutcome:
    notes = list(checked.notes)
    warnings: list[str] = []
    day = today or date.today()
    code = checked.volume.code
    made = []
    for project, mine in by_project(checked.paths).items():
        entries = sync_tasks(code, checked.source, checked.destination, sizes, mine)
        name = job_name(project, way, checked.remote, day)
        action, job = _submit(
            db, actor, name, checked.queues[project], entries,
            move=queue is not None, key=_project_key(key, project), hook=hook, notes=notes,
        )  # fmt: skip
        if job.status == JobStatus.PAUSED.value:
            notes.append(f"job {name!r} is paused; resume it with: reelsync job resume {job.id}")
        warnings.extend(job.warnings)
        made.append(
            SyncedJob(
                project=project,
                name=name,
                action=action,
                queue=job.queue or checked.queues[project],
                source_site=checked.source,
                destination_site=checked.destination,
                paths=tuple(mine),
                size=sum(sizes[p] for p in mine),
                job=job,
            )
        )
    return SyncOutcome(jobs=tuple(made), notes=tuple(notes), warnings=tuple(warnings))


async def site_sync(
    db: Database,
    actor: Actor,
    operator: FileOperator,
    paths: Sequence[str],
    site: str | None,
    direction: str = Direction.DOWNLOAD.value,
    queue: str | None = None,
    *,
    volume: str = "projects",
    idempotency_key: str | None = None,
    hook: SubmitHook | None = None,
    today: date | None = None,
) -> SyncOutcome:
    """Sync ``paths`` (relative to ``volume``) between the main site and ``site``: checked, sized
    at the source agent, then each project's day's job found and appended to, else created."""
    try:
        way = Direction(str(direction).lower())
    except ValueError:
        raise ValidationError(f"direction must be download or upload, not {direction!r}") from None
    key = idempotency.clean_key(idempotency_key)
    checked = await asyncio.to_thread(_check, db, actor, paths, site, way, queue, volume)
    sizes = await _size(operator, checked)
    return await asyncio.to_thread(
        lambda: _submit_all(
            db, actor, checked, sizes, way, queue=queue, key=key, hook=hook, today=today
        )
    )
