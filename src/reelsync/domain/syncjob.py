"""The site sync's rules, shared by ``reelsync sync`` (:mod:`reelsync.sync.sitesync`, over the
API) and the web UI's transfer page (:mod:`reelsync.server.ui.transfer`, through the services), so
the two cannot drift:

- admins and employees sync (an employee within their grants: read and write on each path);
- a sync moves files between the main site and another site: from the main site it is a
  ``download`` (the remote site is the destination), to it an ``upload`` (the remote site is the
  source); between two other sites, or a site and itself, it is refused;
- one job per project, direction, remote site and day, named ``<project> <direction> <site>
  <YYYY-MM-DD>``, found by that name (the caller's) and appended to, else created; the project
  is a path's first component;
- a project's job goes to the queue asked for, else the project's own queue (same code, any case),
  else the default queue (said in a note), else it is refused;
- each path is one task (a file or a folder, or one frame of a sequence) at the same path on both
  sides, carrying its size at the source;
- the queue asked for and the day's job in another queue: the job moves (said in a note).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from enum import StrEnum
from typing import Any

from reelsync.domain.party import normalise_relative
from reelsync.errors import NotFoundError, PathError, PermissionDeniedError, ValidationError

__all__ = [
    "SYNC_ROLES",
    "Direction",
    "by_project",
    "check_may_sync",
    "direction_between",
    "empty_folder_error",
    "job_name",
    "missing_path_error",
    "moved_note",
    "project_of",
    "project_queue",
    "sync_path",
    "sync_tasks",
]


class Direction(StrEnum):
    DOWNLOAD = "download"  # main site -> remote site
    UPLOAD = "upload"  # remote site -> main site


#: The roles that move files between sites (role values of :class:`~reelsync.domain.records.Role`).
SYNC_ROLES = ("admin", "employee")


def check_may_sync(email: str, role: str) -> None:
    """PermissionDeniedError unless ``role`` may move files between sites."""
    if role not in SYNC_ROLES:
        raise PermissionDeniedError(
            f"{email} ({role}) may not transfer files between sites",
            hint="an admin or an employee with read+write on the volume may",
        )


def job_name(project: str, direction: Direction | str, site: str, day: date) -> str:
    """``proj001 download london 2026-11-27``."""
    return f"{project} {Direction(direction).value} {site} {day.isoformat()}"


def sync_path(path: str, volume: str, prefixes: Iterable[str]) -> str:
    """A path to sync, relative to ``volume``: an absolute path under one of the volume's site
    paths (``prefixes``) is made relative; the whole volume, or a path outside it, is refused."""
    text = path.strip().replace("\\", "/")
    if not text:
        raise PathError("an empty path; give paths like proj001/sc0010/sh0010/scans")
    if text.startswith("/"):
        for prefix in sorted(prefixes, key=len, reverse=True):
            root = prefix.rstrip("/")
            if text == root or text.startswith(root + "/"):
                text = text[len(root) :]
                break
        else:
            raise PathError(
                f"{path} is not inside volume {volume}",
                hint="give a path relative to the volume, like proj001/sc0010/sh0010/scans",
            )
    rel = normalise_relative(text)
    if not rel:
        raise PathError(f"{path!r} is the whole volume; give at least a project folder")
    return rel


def project_of(path: str) -> str:
    """``proj001/sc0010/sh0010/scans`` -> ``proj001``."""
    return path.split("/", 1)[0]


def by_project(paths: Iterable[str]) -> dict[str, list[str]]:
    """The paths of each project, both in the order given."""
    grouped: dict[str, list[str]] = {}
    for path in paths:
        grouped.setdefault(project_of(path), []).append(path)
    return grouped


def direction_between(
    source: str, destination: str, *, source_main: bool, destination_main: bool
) -> tuple[Direction, str]:
    """The direction of a sync from site ``source`` to ``destination``, and its remote site."""
    if source == destination:
        raise ValidationError("pick a destination site other than the source")
    if source_main:
        return Direction.DOWNLOAD, destination
    if destination_main:
        return Direction.UPLOAD, source
    raise ValidationError("a sync moves files between the main site and another site")


def project_queue(project: str, queues: Iterable[tuple[str, bool]]) -> tuple[str, str | None]:
    """The queue of ``project``'s job when none was asked for, from ``(code, default)`` pairs:
    the project's own queue, else the default queue with a note saying so."""
    rows = list(queues)
    own = next((code for code, _ in rows if code.lower() == project.lower()), None)
    if own is not None:
        return own, None
    default = next((code for code, is_default in rows if is_default), None)
    if default is None:
        raise NotFoundError(f"project {project} has no queue and there is no default queue")
    return default, f"project {project} has no queue; using the default queue {default}"


def moved_note(name: str, was: str, queue: str) -> str:
    """What is said when the day's job moves to the queue asked for."""
    return f"job {name!r} moved from queue {was} to {queue} (the queue asked for)"


def missing_path_error(path: str, site: str, volume: str) -> NotFoundError:
    """What a sync says of a path that is not at the source (server and client flows alike)."""
    return NotFoundError(f"{path} does not exist at {site} (volume {volume})")


def empty_folder_error(path: str, site: str) -> ValidationError:
    """What a sync says of a folder with no file to send."""
    return ValidationError(f"{path} at {site} is an empty folder: nothing to sync")


def sync_tasks(
    volume: str, source: str, destination: str, sizes: Mapping[str, int], paths: Iterable[str]
) -> list[dict[str, Any]]:
    """One task per path, at the same path on both sides, with its size at the source."""
    return [
        {
            "source": f"site={source}:share={volume}/{path}",
            "destination": f"site={destination}:share={volume}/{path}",
            "size": sizes[path],
        }
        for path in paths
    ]
