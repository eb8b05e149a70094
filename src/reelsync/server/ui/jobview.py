"""A job as its page shows it: counts per task status, the failed files first, one row per folder
or image sequence (a drill-down lists that folder's files), what each sync added and when, and
why queued files do not move.

Rules: reads only through :mod:`reelsync.services` as the signed-in user; at most
:data:`MAX_TASKS` tasks are grouped (a bigger job says so and its rows cover the first ones);
failed files are read on their own (up to :data:`FAILED_SHOWN`), so they show whatever the size.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from reelsync.db import Database
from reelsync.domain.listing import Entry, collapse
from reelsync.domain.records import Actor, Job, ServerStatus, Task
from reelsync.services import servers, tasks

__all__ = [
    "FAILED_SHOWN",
    "MAX_TASKS",
    "Addition",
    "Contents",
    "Group",
    "job_contents",
    "waiting_notes",
]

MAX_TASKS = 10_000
FAILED_SHOWN = 200
HISTORY_FOLDERS = 5


@dataclass(frozen=True, slots=True)
class Group:
    """A folder's files or one image sequence of a job."""

    folder: str
    label: str  # ``plate.####.exr 1001-1100``, or a file name
    files: int
    size: int | None
    bytes_done: int
    counts: dict[str, int]

    @property
    def status(self) -> str:
        for status in ("failed", "executing", "booting", "queued", "onhold", "excluded"):
            if self.counts.get(status):
                return status
        return "done"


@dataclass(frozen=True, slots=True)
class Addition:
    """What one submit or sync added to the job."""

    at: datetime
    files: int
    size: int | None
    folders: tuple[str, ...]  # the paths it added (its folders when many), the first few
    more: int  # how many more


@dataclass(frozen=True, slots=True)
class Contents:
    counts: dict[str, int]
    failed: list[Task]
    groups: list[Group]
    files: list[Task]  # the drill-down's files (one folder), else empty
    history: list[Addition]
    truncated: bool = False


def _folder(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _groups(items: list[Task]) -> list[Group]:
    by_folder: dict[str, list[Task]] = {}
    for task in items:
        by_folder.setdefault(_folder(task.destination_path), []).append(task)
    groups: list[Group] = []
    for folder in sorted(by_folder):
        members = {t.destination_path.rsplit("/", 1)[-1]: t for t in by_folder[folder]}
        for name, task in sorted(members.items()):
            if task.files is not None:  # a folder task, once moved: its files are not tasks
                del members[name]
                groups.append(_folder_task(folder, name, task))
        entries = [Entry(name, False, t.size) for name, t in members.items()]
        for row in collapse(entries):
            chosen = [members[name] for name in row.names]
            sizes = [t.size for t in chosen]
            groups.append(
                Group(
                    folder=folder,
                    label=row.label,
                    files=len(chosen),
                    size=None if None in sizes else sum(s or 0 for s in sizes),
                    bytes_done=sum(t.bytes_done for t in chosen),
                    counts=dict(Counter(t.status for t in chosen)),
                )
            )
    return groups


def _folder_task(folder: str, name: str, task: Task) -> Group:
    return Group(
        folder=folder,
        label=f"{name}/",
        files=task.files or 0,
        size=task.size,
        bytes_done=task.bytes_done,
        counts={task.status: task.files or 1},
    )


def _history(items: list[Task]) -> list[Addition]:
    batches: dict[datetime, list[Task]] = {}
    for task in items:
        batches.setdefault(task.created.replace(microsecond=0), []).append(task)
    out = []
    for at in sorted(batches):
        batch = batches[at]
        sizes = [t.size for t in batch]
        # the paths asked for (a folder, a file), or their folders when many files came at once
        named = sorted(t.destination_path for t in batch)
        folders = (
            named
            if len(named) <= HISTORY_FOLDERS
            else sorted({_folder(t.destination_path) or "/" for t in batch})
        )
        out.append(
            Addition(
                at=at,
                files=len(batch),
                size=None if None in sizes else sum(s or 0 for s in sizes),
                folders=tuple(folders[:HISTORY_FOLDERS]),
                more=max(0, len(folders) - HISTORY_FOLDERS),
            )
        )
    return out


def job_contents(db: Database, actor: Actor, job: Job, *, folder: str | None = None) -> Contents:
    page = tasks.list_tasks(db, actor, job.id, limit=MAX_TASKS)
    items = list(page.items)
    counts = dict(Counter(t.status for t in items))
    failed = [t for t in items if t.status == "failed"]
    if page.next is not None:
        failed = list(
            tasks.list_tasks(db, actor, job.id, status="failed", limit=FAILED_SHOWN).items
        )
    files = (
        [t for t in items if _folder(t.destination_path) == folder] if folder is not None else []
    )
    return Contents(
        counts=counts,
        failed=failed[:FAILED_SHOWN],
        groups=_groups(items),
        files=files,
        history=_history(items),
        truncated=page.next is not None,
    )


def _site_of(party: str) -> str | None:
    head = party.partition(":")[0]
    return head[len("site=") :] if head.startswith("site=") else None


def waiting_notes(db: Database, actor: Actor, job: Job, counts: dict[str, int]) -> list[str]:
    """Why the job's queued files are not moving, when a reason is known (as the CLI says it)."""
    if job.status in ("done", "failed", "aborted") or not counts.get("queued"):
        return []
    if job.status == "paused":
        return ["the job is paused: Resume (or reelsync job resume) starts it again"]
    notes = []
    for party in (job.source, job.destination):
        site = _site_of(party)
        if site is None:
            continue
        found = servers.list_servers(db, actor, site=site)
        if not any(a.status is ServerStatus.ONLINE for a in found):
            state = ", ".join(f"{a.hostname} {a.status.value}" for a in found)
            notes.append(
                f"waiting for an agent at site {site}: none is online"
                + (f" ({state})" if state else " (none enrolled)")
            )
    return notes
