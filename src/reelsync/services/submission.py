"""Turning normalised task specs into task rows: resolution, mirroring, ACLs, duplicates, uris,
and the bulk insert.

Rules (accsyn-compat spec section 4):
- One source party and one destination party per job: every task resolves to the same two sites.
- A destination without a path mirrors the source's volume-relative path (into the named volume, or
  the source's volume); a destination ending in ``/`` is a directory the source lands in (its whole
  path when the job mirrors paths, else its last segment); otherwise it names the target itself.
- Employees need read on every source path and write on every destination path; standard users may
  not transfer. Everything is checked before anything is written.
- A task without a destination goes to the job's destination party (the job-level one, else the
  first task's), mirrored.
- Within one submit, a task with the same source and destination as an earlier one is dropped.
- A destination without a party is a path at the main site (spec section 4: ``a/b`` => the
  default volume), also when its first segment names a site (``london``): accepted as such, with
  a warning in :attr:`Plan.warnings` saying to write ``site=london`` to send it to that site.
- Tasks get uris "0", "1", ... continuing the job's counter; form C keeps its own uris.
- Tasks are inserted with executemany in batches: no ORM object per task.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from reelsync.db import models as m
from reelsync.db.bulk import bulk_insert
from reelsync.domain.ids import new_task_ids
from reelsync.domain.jobspec import TaskSpec
from reelsync.domain.party import Party, PartyKind, PartyPath, join_path
from reelsync.domain.paths import check_path_rules
from reelsync.domain.records import Actor, Role
from reelsync.domain.status import TaskStatus
from reelsync.errors import PermissionDeniedError, ReelsyncError, ValidationError
from reelsync.services.acls import AccessRules
from reelsync.services.locations import Endpoint, Resolver, SiteRef

__all__ = [
    "INITIAL_TASK_STATUSES",
    "Plan",
    "PlannedTask",
    "TaskKey",
    "insert_tasks",
    "party_text",
    "plan_tasks",
    "site_party",
]

INITIAL_TASK_STATUSES = frozenset({TaskStatus.QUEUED, TaskStatus.ONHOLD, TaskStatus.EXCLUDED})
DEFAULT_TASK_PRIORITY = 500

TaskKey = tuple[str, str, str, str]  # source volume id, source path, destination volume id, path


@dataclass(frozen=True, slots=True)
class PlannedTask:
    uri: str | None
    source: Endpoint
    destination: Endpoint
    priority: int
    status: TaskStatus
    settings: Mapping[str, str] | None
    metadata: Mapping[str, Any] | None
    size: int | None = None

    @property
    def key(self) -> TaskKey:
        return (
            self.source.volume.id,
            self.source.path,
            self.destination.volume.id,
            self.destination.path,
        )


@dataclass(frozen=True, slots=True)
class Plan:
    tasks: Sequence[PlannedTask]
    source_site: SiteRef
    destination_site: SiteRef
    dropped: int = 0  # duplicates within the submit
    warnings: tuple[str, ...] = ()  # accepted as written, but probably not what was meant


def _where(index: int, spec: TaskSpec) -> str:
    return f"task {spec.uri!r}: " if spec.uri is not None else f"task {index}: "


def _site_named(target: PartyPath, site_codes: Mapping[str, str]) -> str | None:
    """The site a party-less, relative destination's first segment names (``london/x``), if any."""
    location = target.location
    if target.party.kind is not PartyKind.WORKSPACE or location is None:
        return None
    if location.volume is not None or location.absolute:
        return None
    return site_codes.get(location.path.partition("/")[0].lower())


def _site_warning(target: PartyPath, site: str, main: SiteRef) -> str:
    path = target.location.path if target.location is not None else ""
    rest = path.partition("/")[2]
    there = f'"site={site}:volume=CODE/{rest}"' if rest else f'"site={site}"'
    return (
        f'destination "{path}" is a path in the default volume at {main.code} (the main site), '
        f"not the site {site}: the files are copied within {main.code}. To send them to {site}, "
        f"write {there}"
    )


def _destination(resolver: Resolver, source: Endpoint, target: PartyPath, mirror: bool) -> Endpoint:
    site = resolver.site(target.party)
    location = target.location
    if location is None:
        volume, path = source.volume, ""
    else:
        volume, path = resolver.locate(site, location)
    resolver.prefix(volume, site)
    if not path:
        final = source.path  # no destination path: mirror
    elif location is not None and location.is_dir:
        tail = source.path if mirror else posixpath.basename(source.path)
        final = join_path(path, tail)
        check_path_rules(final)  # a folder plus the source's path may grow too long
    else:
        final = path
    return Endpoint(site=site, volume=volume, path=final)


def plan_tasks(
    session: Session,
    actor: Actor,
    specs: Iterable[TaskSpec],
    *,
    mirror: bool = False,
    default_destination: PartyPath | None = None,
    sites: tuple[str, str] | None = None,
) -> Plan:
    """Resolve and check every spec; raises the first problem, having written nothing.

    ``sites`` pins the (source, destination) site ids of an existing job (append).
    """
    if actor.role is Role.STANDARD:
        raise PermissionDeniedError("standard users may not transfer between sites")
    specs = list(specs)
    if default_destination is None:
        # tasks without a destination inherit the job's destination party, mirrored
        given = next((s.destination for s in specs if s.destination is not None), None)
        if given is not None:
            default_destination = PartyPath(given.party, None)
    resolver = Resolver(session)
    rules = AccessRules(session, actor)
    pinned = (resolver.site_by_id(sites[0]), resolver.site_by_id(sites[1])) if sites else None
    source_site = pinned[0] if pinned else None
    destination_site = pinned[1] if pinned else None
    seen: set[TaskKey] = set()
    planned: list[PlannedTask] = []
    dropped = 0
    site_codes = {s.code.lower(): s.code for s in resolver.sites}
    warnings: dict[str, str] = {}  # one per site named, however many tasks
    for index, spec in enumerate(specs):
        try:
            site = resolver.site(spec.source.party)
            if spec.source.location is None:
                raise ValidationError("the source needs a path, e.g. volume=projects/a/b")
            volume, path = resolver.locate(site, spec.source.location)
            source = Endpoint(site=site, volume=volume, path=path)
            target = spec.destination or default_destination
            if target is None:
                raise ValidationError("no destination", hint="give destination, e.g. site=london")
            destination = _destination(resolver, source, target, mirror)
            named = _site_named(target, site_codes)
            if named is not None and named not in warnings:
                warnings[named] = _site_warning(target, named, destination.site)
            if source_site is None or destination_site is None:
                source_site, destination_site = source.site, destination.site
            if source.site != source_site:
                raise ValidationError(
                    f"source site {source.site.code} differs from the job's {source_site.code}",
                    hint="one job moves files between one pair of sites; submit another job",
                )
            if destination.site != destination_site:
                raise ValidationError(
                    f"destination site {destination.site.code} differs from the job's "
                    f"{destination_site.code}",
                    hint="one job moves files between one pair of sites; submit another job",
                )
            if source == destination:
                raise ValidationError(
                    f"source and destination are the same: {source.path!r} at {source.site.code}",
                    hint="a source without site= is at the main site; to send from another "
                    "site write site=CODE:volume=VOLUME/PATH",
                )
            rules.check(volume.id, volume.code, source.path, read=True)
            rules.check(
                destination.volume.id, destination.volume.code, destination.path, write=True
            )
            status = spec.status or TaskStatus.QUEUED
            if status not in INITIAL_TASK_STATUSES:
                raise ValidationError(
                    f"a new task may be queued, onhold or excluded, not {status.value}"
                )
        except ReelsyncError as exc:
            exc.message = _where(index, spec) + exc.message
            raise
        task = PlannedTask(
            uri=spec.uri,
            source=source,
            destination=destination,
            priority=spec.priority or DEFAULT_TASK_PRIORITY,
            status=status,
            settings=dict(spec.settings) or None,
            metadata=dict(spec.metadata) or None,
            size=spec.size,
        )
        if task.key in seen:
            dropped += 1
            continue
        seen.add(task.key)
        planned.append(task)
    if source_site is None or destination_site is None:
        raise ValidationError("a job needs at least one task")
    return Plan(
        tasks=planned,
        source_site=source_site,
        destination_site=destination_site,
        dropped=dropped,
        warnings=tuple(warnings.values()),
    )


def party_text(site: SiteRef) -> str:
    return f"site={site.code}"


def site_party(site_code: str) -> PartyPath:
    return PartyPath(Party(PartyKind.SITE, site_code), None)


_TASK_COLUMNS = (
    "id",
    "job_id",
    "uri",
    "source_volume_id",
    "source_path",
    "destination_volume_id",
    "destination_path",
    "priority",
    "status",
    "tries",
    "bytes_done",
    "settings",
    "metadata",
    "created",
    "modified",
    "finished",
    "size",
)


def insert_tasks(
    session: Session,
    job_id: str,
    tasks: Sequence[PlannedTask],
    uris: Sequence[str],
    now: datetime,
) -> list[str]:
    """Bulk-insert ``tasks`` with their ``uris``; returns the new task ids in order."""
    ids = new_task_ids(len(tasks))
    excluded = TaskStatus.EXCLUDED
    rows = (
        (
            task_id,
            job_id,
            uri,
            t.source.volume.id,
            t.source.path,
            t.destination.volume.id,
            t.destination.path,
            t.priority,
            t.status.value,
            0,
            0,
            t.settings,
            t.metadata,
            now,
            now,
            now if t.status is excluded else None,
            t.size,
        )
        for task_id, t, uri in zip(ids, tasks, uris, strict=True)
    )
    session.flush()
    bulk_insert(session, cast(Table, m.Task.__table__), _TASK_COLUMNS, rows)
    return ids
