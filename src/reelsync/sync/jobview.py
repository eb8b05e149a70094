"""What a person needs to know about one transfer job, read through the client Session: status,
progress, size, speed, ETA, how many tasks are in each status and which ones failed (with their
last error). Rules: read-only; a job is named by its id or by its name (the newest job with that
name wins); the ETA is only given while the job moves bytes at a known speed. A job that has
queued tasks but cannot move says why in ``notes`` (paused, or no agent online at one of its
sites), so nothing waits without a reason shown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reelsync.client import Entity, Session
from reelsync.domain.ids import is_entity_id
from reelsync.domain.status import TaskStatus
from reelsync.errors import NotFoundError

__all__ = [
    "FailedTask",
    "JobView",
    "failed_within",
    "find_job",
    "job_view",
    "task_counts",
    "view_of",
    "waiting_notes",
]

#: How many failed tasks a view lists (the counts always cover every task).
FAILED_LISTED = 50
#: How many failed tasks of a job are looked at to judge one sync's own files.
FAILED_SCANNED = 10_000


@dataclass(frozen=True, slots=True)
class FailedTask:
    id: str
    uri: str
    source: str
    destination: str
    tries: int
    last_error: str


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    name: str
    status: str
    queue: str
    user: str
    source: str
    destination: str
    progress: float  # 0..100
    size: int | None
    bytes_done: int
    speed: float  # bytes/s
    tasks: int
    counts: Mapping[str, int] = field(default_factory=dict)
    failed: Sequence[FailedTask] = ()
    created: str | None = None
    finished: str | None = None
    etr: float | None = None  # the server's estimate of the seconds left, when it gives one
    notes: Sequence[str] = ()  # why queued tasks do not move, when known
    modified: str | None = None  # the job's last change, as the server wrote it (for long-polls)

    @property
    def current_speed(self) -> float | None:
        """Bytes/s while running; None otherwise (a paused or queued job has no speed)."""
        return self.speed if self.status == "running" else None

    @property
    def eta_s(self) -> float | None:
        """Seconds left: the server's estimate, else from the current speed; None when unknown."""
        if self.status != "running":
            return None
        if self.etr is not None:
            return max(0.0, self.etr)
        if self.size is None or self.speed <= 0:
            return None
        return max(0.0, (self.size - self.bytes_done) / self.speed)

    @property
    def ended(self) -> bool:
        return self.status in ("done", "failed", "aborted")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "queue": self.queue,
            "user": self.user,
            "source": self.source,
            "destination": self.destination,
            "progress": self.progress,
            "size": self.size,
            "bytes_done": self.bytes_done,
            "speed": self.speed,
            "eta_s": self.eta_s,
            "tasks": self.tasks,
            "task_counts": dict(self.counts),
            "failed_tasks": [
                {
                    "id": f.id,
                    "uri": f.uri,
                    "source": f.source,
                    "destination": f.destination,
                    "tries": f.tries,
                    "last_error": f.last_error,
                }
                for f in self.failed
            ],
            "created": self.created,
            "finished": self.finished,
            "notes": list(self.notes),
        }


def find_job(session: Session, ref: str) -> Entity:
    """The job with id ``ref``, else the newest job named ``ref``; NotFoundError otherwise."""
    ref = ref.strip()
    if is_entity_id(ref):
        return session.get_entity("job", ref)
    found = session.find("job", name=ref, limit=1)
    if not found:
        raise NotFoundError(f"no job with id or name {ref!r}", hint="see: reelsync job list")
    return found[0]


def _total(body: Any) -> int:
    if isinstance(body, Mapping) and isinstance(body.get("total"), int):
        return int(body["total"])
    if isinstance(body, list):
        return len(body)
    return 0


def task_counts(session: Session, job_id: str) -> dict[str, int]:
    """How many of the job's tasks are in each status (statuses with none left out): one call,
    or one page per status from a server without ``task-counts``."""
    try:
        body = session.request("GET", f"/jobs/{job_id}/task-counts")
    except NotFoundError:
        body = None  # an older server (or the job is gone: the pages below say so)
    if isinstance(body, Mapping):
        return {str(k): int(v) for k, v in body.items() if isinstance(v, int) and v}
    counts: dict[str, int] = {}
    for status in TaskStatus:
        body = session.request(
            "GET", f"/jobs/{job_id}/tasks", params={"status": status.value, "limit": 1}
        )
        if n := _total(body):
            counts[status.value] = n
    return counts


def _party_path(task: Entity, side: str) -> str:
    volume = task.get(f"{side}_volume") or ""
    path = task.get(f"{side}_path") or ""
    return f"{volume}/{path}" if volume else str(path)


def view_of(job: Entity, counts: Mapping[str, int], failed: Sequence[Entity]) -> JobView:
    """Build a view from the API's job entity, its task counts and its failed tasks."""
    size = job.get("size")
    return JobView(
        id=str(job["id"]),
        name=str(job.get("name") or ""),
        status=str(job.get("status") or ""),
        queue=str(job.get("queue") or ""),
        user=str(job.get("user") or ""),
        source=str(job.get("source") or ""),
        destination=str(job.get("destination") or ""),
        progress=float(job.get("progress") or 0.0),
        size=int(size) if size is not None else None,
        bytes_done=int(job.get("bytes_done") or 0),
        speed=float(job.get("speed") or 0.0),
        tasks=int(job.get("tasks") or 0),
        counts=dict(counts),
        failed=tuple(
            FailedTask(
                id=str(t.get("id")),
                uri=str(t.get("uri")),
                source=_party_path(t, "source"),
                destination=_party_path(t, "destination"),
                tries=int(t.get("tries") or 0),
                last_error=str(t.get("last_error") or "no error recorded"),
            )
            for t in failed
        ),
        created=str(job["created"]) if job.get("created") else None,
        finished=str(job["finished"]) if job.get("finished") else None,
        etr=float(job["etr"]) if isinstance(job.get("etr"), int | float) else None,
        modified=str(job["modified"]) if job.get("modified") else None,
    )


def _site_of(party: str) -> str | None:
    head = party.partition(":")[0]
    return head[len("site=") :] if head.startswith("site=") else None


def waiting_notes(session: Session, job: Entity, counts: Mapping[str, int]) -> list[str]:
    """Why the job's queued tasks are not moving, when a reason is known."""
    if str(job.get("status")) in ("done", "failed", "aborted") or not counts.get("queued"):
        return []
    if job.get("status") == "paused":
        return ["the job is paused: reelsync job resume starts it again"]
    notes = []
    for side in ("source", "destination"):
        site = _site_of(str(job.get(side) or ""))
        if site is None:
            continue
        agents = session.find("server", site=site)
        if not any(a.get("status") == "online" for a in agents):
            state = ", ".join(f"{a.get('hostname')} {a.get('status')}" for a in agents)
            notes.append(
                f"waiting for an agent at site {site}: none is online"
                + (f" ({state})" if state else " (none enrolled)")
            )
    return notes


def _within(path: str, folders: Sequence[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def failed_within(session: Session, job_id: str, paths: Sequence[str]) -> list[FailedTask]:
    """The job's failed tasks whose source is one of ``paths`` or inside one (what one sync
    asked for, in a job other syncs append to)."""
    failed = session.tasks(job_id, status="failed", limit=FAILED_SCANNED)
    mine = [t for t in failed if _within(str(t.get("source_path") or ""), paths)]
    return list(view_of({"id": job_id}, {}, mine).failed)


def job_view(session: Session, ref: str, *, with_tasks: bool = True) -> JobView:
    """The job ``ref`` (id or name) with its task counts, failed tasks and waiting notes."""
    job = find_job(session, ref)
    if not with_tasks:
        return view_of(job, {}, ())
    counts = task_counts(session, str(job["id"]))
    failed = (
        session.tasks(str(job["id"]), status="failed", limit=FAILED_LISTED)
        if counts.get("failed")
        else []
    )
    view = view_of(job, counts, failed)
    return replace(view, notes=tuple(waiting_notes(session, job, counts)))
