"""The site-sync workflow (the seed's script, first-class): push shot folders from the main site to
another site (``download``) or pull them back (``upload``), one job per project, direction, site
and day.

Rules:
- Paths are relative to the volume (``projects``); an absolute path under one of the volume's site
  paths is made relative. The project is the first path component.
- Everything is checked before anything is submitted, and a problem is one clear error: the volume,
  the site (not the main site; the volume has a path there), the queue (``--queue``, else the
  project's own, else the default queue - said in a note), an online agent at both sites, the
  caller's read access at the source and write access at the destination (the server checks again
  at submit), and that each path exists at the source (through the API's file operations).
- Each path is one task, a file or a folder (the sending agent lists a folder when its transfer
  starts; the receiving agent skips files it already has, same size and mtime): no round trip per
  file through the control plane, so a re-sync of an unchanged tree moves no bytes. The source
  agent counts each path's size (``getsize``), sent with the task so the job's size is known at
  submit; an empty folder is an error. Destinations mirror the source paths. The first path's
  ``getsize`` is sent as soon as the source site is known, so the agent walks it while the other
  checks are made (a read; dropped when a check fails, whose error is the one said).
- A project's tasks go to the caller's job named ``<project> <direction> <site> <YYYY-MM-DD>``:
  found (even finished) and appended to - which revives a finished job and re-queues a path
  already in it - else created; the job thus records every path each sync asked for. ``--queue``
  given and the day's job in another queue: the job moves to the queue asked for (said in a note).
- ``--wait`` judges what this sync asked for: failed files of the day's job outside its paths
  (earlier syncs') are noted, not failures (``reelsync.sync.jobview.failed_within``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from reelsync.domain.paths import covers
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
    AgentOfflineError,
    NotFoundError,
    PermissionDeniedError,
    ReelsyncError,
    ValidationError,
)

if TYPE_CHECKING:  # the client (asyncio, httpx) loads when a session is made
    import httpx

    from reelsync.client import Entity, Session

__all__ = [
    "Direction",
    "SyncRequest",
    "SyncResult",
    "SyncedJob",
    "job_name",
    "site_sync",
    "submit_sync",
]

_ENDED = ("done", "failed", "aborted")


@dataclass(frozen=True, slots=True)
class SyncedJob:
    project: str
    name: str
    action: str  # created | appended | revived
    queue: str
    source_site: str
    destination_site: str
    paths: tuple[str, ...]
    size: int = 0  # bytes of the paths at the source, when this sync was submitted
    job: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.job.get("id", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "name": self.name,
            "action": self.action,
            "queue": self.queue,
            "source_site": self.source_site,
            "destination_site": self.destination_site,
            "paths": list(self.paths),
            "size": self.size,
            "job": dict(self.job),
        }


@dataclass(frozen=True, slots=True)
class SyncResult:
    jobs: tuple[SyncedJob, ...]
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # what the server noticed at submit (accepted, maybe not meant)

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobs": [j.to_dict() for j in self.jobs],
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }


def _relative(path: str, volume: Mapping[str, Any]) -> str:
    prefixes: Mapping[str, str] = volume.get("paths") or {}
    return sync_path(path, str(volume.get("code")), prefixes.values())


def _one(session: Session, entitytype: str, ref: str, what: str, known: str = "") -> Entity:
    try:
        return session.get_entity(entitytype, ref)
    except NotFoundError:
        raise NotFoundError(f"unknown {what} {ref!r}", hint=known or None) from None


def _codes(rows: Iterable[Mapping[str, Any]]) -> str:
    return ", ".join(str(r.get("code")) for r in rows)


def _known_volumes(session: Session) -> str:
    """``volumes: projects, finance`` (those the caller may see), for an unknown volume's hint."""
    try:
        return f"volumes: {_codes(session.find('volume')) or 'none shared with you'}"
    except ReelsyncError:
        return ""


def _sites(session: Session, site: str | None) -> tuple[str, str]:
    """(main site code, remote site code), the remote one checked."""
    all_sites = session.find("site")
    main = next((s for s in all_sites if s.get("main")), None)
    if main is None:
        raise NotFoundError("the workspace has no main site")
    others = [s for s in all_sites if not s.get("main")]
    if site is None:
        if len(others) != 1:
            raise ValidationError(
                f"give the site to sync with (one of: {_codes(others) or 'none yet'})"
            )
        return str(main["code"]), str(others[0]["code"])
    match = next((s for s in all_sites if site in (s.get("code"), s.get("id"))), None)
    if match is None:
        raise NotFoundError(f"unknown site {site!r}", hint=f"sites: {_codes(all_sites)}")
    if match.get("main"):
        raise ValidationError(
            f"{site} is the main site; sync moves files between it and another site"
        )
    if match.get("enabled") is False:
        raise ValidationError(f"site {site} is disabled")
    return str(main["code"]), str(match["code"])


def _queues(
    session: Session, projects: Sequence[str], queue: str | None
) -> tuple[dict[str, str], list[str]]:
    """The queue of each project, and the notes to tell the person."""
    if queue is not None:
        code = str(_one(session, "queue", queue, "queue")["code"])
        return dict.fromkeys(projects, code), []
    all_queues = session.find("queue")
    rows = [(str(q.get("code")), bool(q.get("default"))) for q in all_queues]
    chosen: dict[str, str] = {}
    notes: list[str] = []
    for project in projects:
        chosen[project], note = project_queue(project, rows)
        if note:
            notes.append(note)
    return chosen, notes


def _check_agents(session: Session, *sites: str) -> None:
    for code in sites:
        agents = session.find("server", site=code)
        if not any(a.get("status") == "online" for a in agents):
            raise AgentOfflineError.at_site(
                code, [(str(a.get("hostname")), str(a.get("status"))) for a in agents]
            )


def _check_access(
    session: Session, me: Mapping[str, Any], volume: Mapping[str, Any], paths: Sequence[str]
) -> None:
    """The caller's ACLs, as the server applies them (it checks again at submit)."""
    if me.get("role") == "admin":
        return
    check_may_sync(str(me.get("email")), str(me.get("role")))
    grants = [
        g
        for g in session.acls(user=str(me.get("email")))
        if g.get("volume_id") == volume.get("id") or g.get("volume") == volume.get("code")
    ]
    for path in paths:
        rights = [g for g in grants if covers(str(g.get("path") or ""), path)]
        for need in ("read", "write"):
            if not any(g.get(need) for g in rights):
                raise PermissionDeniedError(
                    f"{me.get('email')} has no {need} access to {volume.get('code')}/{path}",
                    hint="ask an admin for a grant",
                )


def _file_op_params(volume: str, path: str, site: str, **extra: str) -> dict[str, Any]:
    return {"volume": volume, "path": path, "site": site, **extra}


def _file_op(
    session: Session,
    op: str,
    volume: str,
    path: str,
    site: str,
    *,
    sent: Future[Any] | None = None,
    **extra: str,
) -> Any:
    """The result of a file operation at ``site`` (``sent``: the same request, already sent)."""
    if sent is not None:
        answer = sent.result()
    else:
        params = _file_op_params(volume, path, site, **extra)
        answer = session.request("GET", f"/files/{op}", params=params)
    if not isinstance(answer, Mapping) or "result" not in answer:
        raise ValidationError(f"the server answered /files/{op} without a result")
    return answer["result"]


def _start_sizing(session: Session, volume: str, path: str, site: str) -> Future[Any]:
    """``getsize`` of ``path`` at ``site``, sent now: the agent walks the folder while the caller
    goes on (:func:`_measure` takes its answer)."""
    return session.start("GET", "/files/getsize", params=_file_op_params(volume, path, site))


def _measure(
    session: Session,
    volume: str,
    paths: Sequence[str],
    site: str,
    sent: Mapping[str, Future[Any]] | None = None,
) -> dict[str, int]:
    """Each path's size at ``site`` (a folder: its files' total), counted by the agent there,
    checking that every path exists and that no folder is empty. ``sent``: the ``getsize``
    requests already sent (:func:`_start_sizing`), by path."""
    sizes: dict[str, int] = {}
    for path in paths:
        try:
            size = _file_op(session, "getsize", volume, path, site, sent=(sent or {}).get(path))
        except NotFoundError:  # the path, or the volume at the agent: say which
            if _file_op(session, "exists", volume, path, site) is not True:
                raise missing_path_error(path, site, volume) from None
            raise
        if not isinstance(size, int) or isinstance(size, bool):
            raise ValidationError(f"the agent at {site} answered getsize {path} with {size!r}")
        if size == 0:  # an empty file, a folder of empty files, or an empty folder
            listed = _file_op(
                session, "ls", volume, path, site, recursive="true", files_only="true"
            )
            if not any(isinstance(e, Mapping) and e.get("type") == 1 for e in listed):
                raise empty_folder_error(path, site)
        sizes[path] = size
    return sizes


def _submit(
    session: Session,
    me: Mapping[str, Any],
    name: str,
    queue: str,
    tasks: list[dict[str, Any]],
    *,
    move_to_queue: bool = False,
    notes: list[str] | None = None,
) -> tuple[str, Entity]:
    found = session.find("job", name=name, user=str(me.get("email")), limit=1)
    if not found:
        return "created", session.submit_job({"name": name, "queue": queue, "tasks": tasks})
    job = found[0]
    was = str(job.get("queue") or "")
    if move_to_queue and was.lower() != queue.lower():
        session.update("job", str(job["id"]), {"queue": queue})
        if notes is not None:
            notes.append(moved_note(name, was, queue))
    session.add_tasks(str(job["id"]), tasks)  # a retried append appends once
    after = session.get_entity("job", str(job["id"]))
    action = "revived" if job.get("status") in _ENDED else "appended"
    return action, after


def site_sync(
    session: Session,
    paths: Sequence[str],
    site: str | None,
    direction: Direction | str = Direction.DOWNLOAD,
    queue: str | None = None,
    *,
    volume: str = "projects",
    today: date | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> SyncResult:
    """Sync ``paths`` (relative to ``volume``) between the main site and ``site``. The first
    path's size is asked for as soon as the source is known, so the agent's walk runs while the
    other checks are made; ``meanwhile`` is called then too, once the checks passed (the CLI
    loads its progress bars there). A check that fails drops that request."""
    try:
        way = Direction(str(direction).lower())
    except ValueError:
        raise ValidationError(f"direction must be download or upload, not {direction!r}") from None
    if not paths:
        raise ValidationError("give at least one path, like proj001/sc0010/sh0010/scans")
    try:
        vol = session.get_entity("volume", volume)
    except NotFoundError:
        raise NotFoundError(f"unknown volume {volume!r}", hint=_known_volumes(session)) from None
    rels = list(dict.fromkeys(_relative(p, vol) for p in paths))
    main, remote = _sites(session, site)
    missing = [s for s in (main, remote) if s not in (vol.get("paths") or {})]
    if missing:
        raise ValidationError(
            f"volume {vol['code']} has no path at site {missing[0]}",
            hint=f"set one: reelsync volume update {vol['code']} --path {missing[0]}=/PATH",
        )
    source, destination = (main, remote) if way is Direction.DOWNLOAD else (remote, main)
    code = str(vol["code"])
    first = _start_sizing(session, code, rels[0], source)  # a read: harmless if a check fails
    try:
        me = session.me()
        projects = list(dict.fromkeys(project_of(p) for p in rels))
        queues, notes = _queues(session, projects, queue)
        _check_agents(session, source, destination)
        _check_access(session, me, vol, rels)
        if meanwhile is not None:
            meanwhile()
    except BaseException:
        first.cancel()
        raise
    sizes = _measure(session, code, rels, source, {rels[0]: first})

    day = today or date.today()
    jobs = []
    for project, mine in by_project(rels).items():
        tasks = sync_tasks(code, source, destination, sizes, mine)
        name = job_name(project, way, remote, day)
        action, job = _submit(
            session, me, name, queues[project], tasks, move_to_queue=queue is not None, notes=notes
        )
        if job.get("status") == "paused":
            notes.append(f"job {name!r} is paused; resume it with: reelsync job resume {job['id']}")
        jobs.append(
            SyncedJob(
                project=project,
                name=name,
                action=action,
                queue=str(job.get("queue") or queues[project]),
                source_site=source,
                destination_site=destination,
                paths=tuple(mine),
                size=sum(sizes[p] for p in mine),
                job=job,
            )
        )
    return SyncResult(jobs=tuple(jobs), notes=tuple(notes))


def _missing_route(error: NotFoundError) -> bool:
    """A 404 for the route itself (a server older than ``POST /syncs``), not for what it named."""
    return error.message.startswith("no such endpoint") or "HTTP 404" in error.message


def _synced(row: Mapping[str, Any]) -> SyncedJob:
    return SyncedJob(
        project=str(row["project"]),
        name=str(row["name"]),
        action=str(row["action"]),
        queue=str(row["queue"]),
        source_site=str(row["source_site"]),
        destination_site=str(row["destination_site"]),
        paths=tuple(str(p) for p in row["paths"]),
        size=int(row.get("size") or 0),
        job=dict(row.get("job") or {}),
    )


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """``POST /syncs`` as :func:`submit_sync` sends it for its arguments: the body, and headers
    with an idempotency key of its own (a retry after a lost answer appends nothing)."""

    body: Mapping[str, Any]
    headers: Mapping[str, str]

    @classmethod
    def of(
        cls,
        paths: Sequence[str],
        site: str | None,
        direction: Direction | str = Direction.DOWNLOAD,
        queue: str | None = None,
        *,
        volume: str = "projects",
    ) -> SyncRequest:
        body = {
            "paths": list(paths),
            "site": site,
            "direction": str(direction),
            "queue": queue,
            "volume": volume,
        }
        return cls(body, {"Idempotency-Key": uuid.uuid4().hex})


def submit_sync(
    session: Session,
    paths: Sequence[str],
    site: str | None,
    direction: Direction | str = Direction.DOWNLOAD,
    queue: str | None = None,
    *,
    volume: str = "projects",
    meanwhile: Callable[[], object] | None = None,
    request: SyncRequest | None = None,
    sent: Callable[[], httpx.Response | None] | None = None,
) -> SyncResult:
    """:func:`site_sync` in one request (``POST /syncs``: the server makes the same checks, sizes
    the paths at the source agent and appends to or creates the day's jobs); ``meanwhile`` is
    called while the server works. A server without that route: :func:`site_sync`'s flow.
    ``request``: :meth:`SyncRequest.of` these arguments, made by the caller; ``sent``: its answer
    when the caller sent it already (:class:`~reelsync.client.early.EarlyRequest`), None when
    that attempt got none (it is sent again, as a retry)."""
    request = request or SyncRequest.of(paths, site, direction, queue, volume=volume)
    body, key = dict(request.body), dict(request.headers)
    if sent is not None:  # on its way already: the server works while the caller goes on
        if meanwhile is not None:
            meanwhile()
        answer = session.start("POST", "/syncs", json_body=body, headers=key, first=sent())
    else:
        answer = session.start("POST", "/syncs", json_body=body, headers=key)
        try:
            if meanwhile is not None:
                meanwhile()
        except BaseException:
            answer.cancel()
            raise
    return _submitted(session, answer, paths, site, direction, queue, volume)


def _submitted(
    session: Session,
    sent: Future[Any],
    paths: Sequence[str],
    site: str | None,
    direction: Direction | str,
    queue: str | None,
    volume: str,
) -> SyncResult:
    try:
        answer = sent.result()
    except NotFoundError as exc:
        if not _missing_route(exc):
            raise
        return site_sync(session, paths, site, direction, queue, volume=volume)
    if not isinstance(answer, Mapping) or not isinstance(answer.get("jobs"), list):
        raise ValidationError("the server answered POST /syncs without jobs")
    return SyncResult(
        jobs=tuple(_synced(row) for row in answer["jobs"]),
        notes=tuple(str(n) for n in answer.get("notes") or ()),
        warnings=tuple(str(w) for w in answer.get("warnings") or ()),
    )
