"""The web UI's transfer page (the desktop app's transfer tab): browse a volume at a site through
an agent serving it, see what the other site already has, pick folders, files or image sequences
and send them.

Rules: the listing is the API's ``/files/ls`` (the same ACL check, the same agent, through the
app's file operator); an image sequence is one row (``plate.####.exr 1001-1100``). A send follows
``reelsync sync``'s rules (:mod:`reelsync.domain.syncjob`): one side is the main site; the volume
has a path at both; the queue is the one picked (the day's job moves to it), else the project's
own, else the default; an agent is online at both sites; each picked folder or file is one task
with its size counted at the source (an image sequence: its frames), a folder not empty; a
project's tasks go to the caller's job of that project, direction, site and day, appended to when
it exists (reviving it), else submitted (through the pre-submit hook, as the API does).
The server checks the caller's access again when it plans the tasks. Each rendering of the send
form carries a one-time token (``send_key``): each project's append or submit goes with an
idempotency key made from it, so a form submitted twice (a double click) sends once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from reelsync.db import Database
from reelsync.domain.fileops import FileOp, FileOperator, FileRequest
from reelsync.domain.listing import Entry, Row, collapse
from reelsync.domain.party import normalise_relative
from reelsync.domain.records import Actor, Site, Volume
from reelsync.domain.sequences import parse_sequence
from reelsync.domain.syncjob import (
    Direction,
    by_project,
    check_may_sync,
    direction_between,
    job_name,
    moved_note,
    project_queue,
    sync_tasks,
)
from reelsync.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ReelsyncError,
    UnavailableError,
    ValidationError,
)
from reelsync.server.api_v1.files import file_operator_of
from reelsync.server.dependencies import DatabaseDep
from reelsync.server.ui.guard import (
    UI_PREFIX,
    FieldsDep,
    PageSession,
    SessionDep,
    UiRoute,
    check_csrf,
    render,
)
from reelsync.services import acls, jobs, queues, servers, sites, tasks, volumes

__all__ = ["Listing", "router", "send"]

router = APIRouter(prefix=UI_PREFIX, route_class=UiRoute, include_in_schema=False)

MAX_PICKS = 400


@dataclass(frozen=True, slots=True)
class Listing:
    """One folder at one site: its rows, or why it could not be listed."""

    site: str
    rows: list[Row]
    error: str | None = None

    def has(self, row: Row) -> str:
        """``yes`` (same sizes), ``partly`` (some frames), ``differs``, ``no``; ``?`` when not
        listed. Frames count by file name, however the other side groups them."""
        if self.error is not None:
            return "?"
        if row.folder:
            return "yes" if any(r.folder and r.name == row.name for r in self.rows) else "no"
        theirs = {name for r in self.rows if not r.folder for name in r.names}
        present = sum(name in theirs for name in row.names)
        if present == 0:
            return "no"
        if present < len(row.names):
            return "partly"
        if not row.sequence:
            other = next(r for r in self.rows if row.name in r.names)
            if not other.sequence and other.size != row.size:
                return "differs"
        return "yes"


def _entries(result: Any) -> list[Entry]:
    out = []
    for item in result if isinstance(result, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("filename"), str):
            size = item.get("size")
            out.append(
                Entry(
                    name=item["filename"],
                    folder=item.get("type") == 0,
                    size=int(size) if isinstance(size, int | float) else None,
                )
            )
    return out


async def _ls(
    operator: FileOperator, volume: Volume, site: str, path: str, *, recursive: bool = False
) -> Any:
    return await operator.run(
        FileRequest(
            op=FileOp.LS,
            volume_id=volume.id,
            volume_code=volume.code,
            path=path,
            recursive=recursive,
            files_only=recursive,
            getsize=not recursive,
            site_code=site,
        )
    )


async def _listing(
    operator: FileOperator, volume: Volume, site: str, path: str, *, missing_ok: bool = False
) -> Listing:
    """The folder at ``site``; with ``missing_ok`` a folder that does not exist there is empty
    (what a destination has before its first sync)."""
    try:
        if missing_ok and path:
            probe = FileRequest(
                op=FileOp.EXISTS, volume_id=volume.id, volume_code=volume.code, path=path,
                site_code=site,
            )  # fmt: skip
            if await operator.run(probe) is False:
                return Listing(site, [])
        result = await _ls(operator, volume, site, path)
    except ReelsyncError as exc:
        return Listing(site, [], exc.message)
    return Listing(site, collapse(_entries(result)))


@dataclass(frozen=True, slots=True)
class Place:
    """What the page browses: a volume, the source and destination sites, a folder."""

    volume: Volume
    source: Site
    destination: Site | None
    path: str
    volumes: list[Volume]
    sites: list[Site]
    only: frozenset[str] | None = None  # a folder above the user's grants: the ways down to them


def _may_transfer(actor: Actor) -> None:
    """Admins and employees move files between sites (the rule ``reelsync sync`` applies)."""
    check_may_sync(actor.email, actor.role.value)


def _place(
    db: Database, actor: Actor, volume: str | None, site: str | None, to: str | None, path: str
) -> Place:
    _may_transfer(actor)
    visible = volumes.list_volumes(db, actor)
    if not visible:
        raise NotFoundError("no volume is shared with you", hint="ask an admin for a grant")
    if volume:
        chosen = volumes.get_volume(db, actor, volume)
    else:
        chosen = next((v for v in visible if v.default), visible[0])
    all_sites = [s for s in sites.list_sites(db, actor) if s.enabled]
    at = [s for s in all_sites if s.code in chosen.paths]
    if not at:
        raise NotFoundError(
            f"volume {chosen.code} has no path at any site",
            hint="an admin sets one on the Volumes page",
        )
    source = next((s for s in at if s.code == site), None) if site else None
    if site and source is None:
        raise NotFoundError(
            f"volume {chosen.code} has no path at site {site!r}",
            hint="sites with a path: " + ", ".join(s.code for s in at),
        )
    source = source or next((s for s in at if s.main), at[0])
    others = [s for s in at if s.code != source.code]
    destination = next((s for s in others if s.code == to), None) if to else None
    destination = destination or (others[0] if others else None)
    return Place(
        chosen, source, destination, path, visible, at, _ways_down(db, actor, chosen, path)
    )


def _ways_down(db: Database, actor: Actor, volume: Volume, path: str) -> frozenset[str] | None:
    """None when ``actor`` may read ``path``; else, when ``path`` lies above some of their
    grants, the names of its folders that lead to them (the rest of it stays hidden)."""
    try:
        acls.check_access(db, actor, volume.id, path, read=True)
        return None
    except PermissionDeniedError:
        prefix = f"{path}/" if path else ""
        below = [
            g.path[len(prefix) :].split("/", 1)[0]
            for g in acls.list_acls(db, actor, user=actor.user_id, volume=volume.id)
            if g.read and g.path.startswith(prefix) and g.path != path
        ]
        if not below:
            raise
        return frozenset(below)


def _crumbs(path: str) -> list[tuple[str, str]]:
    parts = path.split("/") if path else []
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def _pick_value(folder: str, row: Row) -> str:
    base = f"{folder}/" if folder else ""
    if row.sequence:
        return f"{base}{row.name}[{','.join(str(f) for f in row.frames)}]"
    return f"{base}{row.name}"


@router.get("/transfer", response_class=HTMLResponse)
async def transfer_page(
    request: Request,
    db: DatabaseDep,
    session: SessionDep,
    volume: str | None = Query(None, max_length=255),
    site: str | None = Query(None, max_length=255),
    to: str | None = Query(None, max_length=255),
    path: str = Query("", max_length=4096),
) -> Response:
    return await show_transfer(request, db, session, volume, site, to, path)


async def show_transfer(
    request: Request,
    db: Database,
    session: PageSession,
    volume: str | None,
    site: str | None,
    to: str | None,
    path: str,
    *,
    status: int = 200,
    error: ReelsyncError | None = None,
) -> Response:
    rel = normalise_relative(path)
    actor = session.actor
    place = await run_in_threadpool(_place, db, actor, volume, site, to, rel)
    operator = file_operator_of(request)
    here = await _listing(operator, place.volume, place.source.code, rel)
    if place.only is not None:
        here = Listing(here.site, [r for r in here.rows if r.folder and r.name in place.only],
                       here.error)  # fmt: skip
    there = (
        await _listing(operator, place.volume, place.destination.code, rel, missing_ok=True)
        if place.destination is not None
        else None
    )
    queue_rows = await run_in_threadpool(queues.list_queues, db, actor)
    return render(
        request,
        "transfer.html",
        status=status,
        session=session,
        place=place,
        here=here,
        there=there,
        rows=[(row, _pick_value(rel, row)) for row in here.rows],
        crumbs=_crumbs(rel),
        queues=queue_rows,
        send_key=uuid.uuid4().hex,  # one per rendering of the form
        error=error,
    )


# -- sending ---------------------------------------------------------------------------------


def _one(fields: Mapping[str, list[str]], name: str) -> str:
    values = fields.get(name) or [""]
    return values[0].strip()


def _checked_sites(
    db: Database, actor: Actor, volume: Volume, source: str, destination: str
) -> tuple[Direction, str]:
    """The direction and the remote site of a send from ``source`` to ``destination``."""
    if source == destination:
        raise ValidationError("pick a destination site other than the source")
    by_code = {s.code: s for s in sites.list_sites(db, actor)}
    for code in (source, destination):
        if code not in by_code:
            raise NotFoundError(f"unknown site {code!r}", hint=f"sites: {', '.join(by_code)}")
        if code not in volume.paths:
            raise ValidationError(
                f"volume {volume.code} has no path at site {code}",
                hint="an admin sets one on the Volumes page",
            )
        if not by_code[code].enabled:
            raise ValidationError(f"site {code} is disabled")
    return direction_between(
        source,
        destination,
        source_main=by_code[source].main,
        destination_main=by_code[destination].main,
    )


def _queue_of(db: Database, actor: Actor, picked: str, project: str) -> tuple[str, str | None]:
    """The queue code for ``project``, and a note when it falls back to the default."""
    rows = queues.list_queues(db, actor)
    if picked:
        match = next((q for q in rows if picked in (q.code, q.id)), None)
        if match is None:
            raise NotFoundError(f"unknown queue {picked!r}")
        return match.code, None
    return project_queue(project, ((q.code, q.default) for q in rows))


def _check_send(
    db: Database, actor: Actor, volume_ref: str, source: str, destination: str, picks: list[str]
) -> tuple[Volume, Direction, str]:
    """Everything a send needs before any file is listed: the volume, the sites and the direction,
    the caller's read and write access to each pick, an agent online at both sites."""
    _may_transfer(actor)
    volume = volumes.get_volume(db, actor, volume_ref)
    direction, remote = _checked_sites(db, actor, volume, source, destination)
    for pick in picks:
        acls.check_access(db, actor, volume.id, pick, read=True, write=True)
    servers.require_online(db, actor, source, destination)
    return volume, direction, remote


async def _sized(
    operator: FileOperator, volume: Volume, site: str, picks: Sequence[str]
) -> dict[str, int]:
    """The paths to send with their sizes at ``site``, as ``reelsync sync`` sends them: a folder
    or a file is one path (its size counted by the agent there; the sending agent lists a folder
    when its transfer starts), an image sequence its frames (sizes from its folder's listing).
    Every path must exist and a folder must not be empty."""
    sized: dict[str, int] = {}
    for pick in picks:
        sequence = parse_sequence(pick)
        if sequence is not None:
            listed = _entries(await _ls(operator, volume, site, sequence.directory))
            sizes = {e.name: e.size for e in listed if not e.folder}
            for frame in sequence.paths():
                name = frame.rsplit("/", 1)[-1]
                if name not in sizes:
                    raise NotFoundError(f"{frame} does not exist at {site}")
                sized[frame] = sizes[name] or 0
            continue
        request = FileRequest(
            op=FileOp.GETSIZE, volume_id=volume.id, volume_code=volume.code, path=pick,
            site_code=site,
        )  # fmt: skip
        size = await operator.run(request)
        if not isinstance(size, int) or isinstance(size, bool):
            raise ValidationError(f"the agent at {site} answered getsize {pick} with {size!r}")
        if size == 0 and not [
            e
            for e in _entries(await _ls(operator, volume, site, pick, recursive=True))
            if not e.folder
        ]:
            raise ValidationError(f"{pick} at {site} is an empty folder: nothing to send")
        sized[pick] = size
    return sized


def _form_key(once: str | None, project: str) -> str | None:
    """The idempotency key of one project's send from one rendering of the form (``once``, its
    token); None without a token."""
    if not once:
        return None
    return "ui-send:" + hashlib.sha256(f"{once}\0{project}".encode()).hexdigest()


def send(
    db: Database,
    actor: Actor,
    request: Request,
    *,
    volume: Volume,
    source: str,
    destination: str,
    direction: Direction,
    remote: str,
    queue: str,
    files: Mapping[str, int],
    today: date | None = None,
    once: str | None = None,
) -> tuple[list[str], list[str]]:
    """Submit or append the day's job of each project (one task per path, with its size);
    (job ids, notes). ``once``: the form's one-time token; a project already sent with it is
    not sent again (its job is answered)."""
    job_ids: list[str] = []
    notes: list[str] = []
    day = today or date.today()
    for project, paths in by_project(files).items():
        key = _form_key(once, project)
        earlier = jobs.replayed_job(db, actor, key) if key else None
        if earlier is not None:  # the same form sent again: its first send did this project
            job_ids.append(earlier.id)
            continue
        code, note = _queue_of(db, actor, queue, project)
        if note:
            notes.append(note)
        entries = sync_tasks(volume.code, source, destination, files, paths)
        name = job_name(project, direction, remote, day)
        found = jobs.list_jobs(db, actor, name=name, user=actor.user_id, limit=1).items
        if found:
            if queue and found[0].queue.lower() != code.lower():  # the queue asked for, as --queue
                jobs.update_job(db, actor, found[0].id, queue=code)
                notes.append(moved_note(name, found[0].queue, code))
            try:
                tasks.add_tasks(db, actor, found[0].id, entries, idempotency_key=key)
            except ConflictError:  # sent twice at once, the other send made the job found here
                if key is None or jobs.replayed_job(db, actor, key) is None:
                    raise
            job_ids.append(found[0].id)
        else:
            made = jobs.submit_job(
                db,
                actor,
                {"name": name, "queue": code, "tasks": entries},
                hook=request.app.state.submit_hook,
                idempotency_key=key,
            )
            job_ids.append(made.id)
    return job_ids, notes


@router.post("/transfer", response_class=HTMLResponse)
async def transfer_send(
    request: Request, db: DatabaseDep, session: SessionDep, fields: FieldsDep
) -> Response:
    form = {name: values[0] for name, values in fields.items() if values}
    check_csrf(request, session, form)
    actor = session.actor
    volume_ref, source = _one(fields, "volume"), _one(fields, "site")
    destination, path = _one(fields, "to"), _one(fields, "path")
    try:
        picks = list(dict.fromkeys(normalise_relative(p) for p in fields.get("pick", []) if p))
        if not picks:
            raise ValidationError("pick at least one folder or file to send")
        if len(picks) > MAX_PICKS:
            raise ValidationError(f"pick at most {MAX_PICKS} items at once")
        volume, direction, remote = await run_in_threadpool(
            _check_send, db, actor, volume_ref, source, destination, picks
        )
        files = await _sized(file_operator_of(request), volume, source, picks)
        job_ids, notes = await run_in_threadpool(
            partial(
                send, db, actor, request, volume=volume, source=source, destination=destination,
                direction=direction, remote=remote, queue=_one(fields, "queue"), files=files,
                once=_one(fields, "send_key") or None,
            )
        )  # fmt: skip
    except (ValidationError, NotFoundError, PermissionDeniedError, UnavailableError) as exc:
        return await show_transfer(
            request, db, session, volume_ref, source, destination, path,
            status=exc.http_status, error=exc,
        )  # fmt: skip
    notice = "sent"
    if any(n.startswith("project ") for n in notes):  # project_queue's note: the default queue
        notice = "sent-default"
    elif notes:  # moved_note: the day's job moved to the queue asked for
        notice = "sent-moved"
    if len(job_ids) == 1:
        return RedirectResponse(f"{UI_PREFIX}/jobs/{job_ids[0]}?done={notice}", 303)
    return RedirectResponse(f"{UI_PREFIX}/?show=all&done={notice}", 303)
