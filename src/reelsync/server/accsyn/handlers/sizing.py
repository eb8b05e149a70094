"""A job's size at submit: accsyn knows it while the job waits or is paused (its own tests loop
on ``size > 0`` of a paused upload), reelsync's agents measure files when they move them. So after
a submit the adapter asks the agent serving the source for the sizes of the new tasks - one
listing per folder the tasks' files are in, one ``getsize`` per folder task - and records them.

Rules: best effort and never a reason to refuse a job or hold it up: with no agent online at the
source, a file gone, or an agent slower than ``BUDGET_S`` in all, the size stays unknown until the
agents move the files (their reports always win).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from reelsync.domain.fileops import FileOp, FileRequest
from reelsync.domain.records import Job, Task
from reelsync.errors import ReelsyncError
from reelsync.server.accsyn.call import Call
from reelsync.services import jobs

__all__ = ["sized"]

_log = logging.getLogger("reelsync.server.accsyn")

#: More new tasks, or unsized files in more folders than this: the agents size them (a submit
#: stays quick).
MAX_TASKS = 5000
MAX_FOLDERS = 200
#: Seconds a submit may spend sizing, all listings together; what is not sized by then is left
#: to the agents (an agent online but not answering must not hold a submit up).
BUDGET_S = 5.0


def _site(job: Job) -> str | None:
    party = job.source.partition(":")[0]
    kind, _, code = party.partition("=")
    return code if kind == "site" and code else None


def _request(task: Task, op: FileOp, path: str, site: str | None) -> FileRequest:
    return FileRequest(
        op=op,
        volume_id=task.source_volume_id,
        volume_code=task.source_volume,
        path=path,
        site_code=site,
    )


def _measure(call: Call, job: Job, pending: list[Task], deadline: float) -> dict[str, int]:
    """Sizes of ``pending`` by task id, as many as the agent gives before ``deadline``."""
    assert call.list_files is not None
    lister = call.list_files
    site = _site(job)

    def ask(request: FileRequest) -> Any:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return lister(request, timeout_s=left)

    folders: dict[tuple[str, str], list[Task]] = {}
    for task in pending:
        folder = task.source_path.rpartition("/")[0]
        folders.setdefault((task.source_volume_id, folder), []).append(task)
    if len(folders) > MAX_FOLDERS:
        return {}
    sizes: dict[str, int] = {}
    for (_, folder), group in folders.items():
        try:
            listing = ask(_request(group[0], FileOp.LS, folder, site))
        except TimeoutError:
            break
        entries: dict[str, Mapping[str, Any]] = {
            str(i.get("filename")): i for i in listing if isinstance(i, Mapping)
        }
        for task in group:
            entry = entries.get(task.source_path.rpartition("/")[2])
            if entry is None:
                continue
            if entry.get("type") == 1 and isinstance(entry.get("size"), int):
                sizes[task.id] = int(entry["size"])
            elif entry.get("type") == 0:
                try:
                    total = ask(_request(task, FileOp.GETSIZE, task.source_path, site))
                except TimeoutError:
                    return sizes
                if isinstance(total, int):
                    sizes[task.id] = total
    return sizes


def sized(call: Call, job: Job, tasks: Iterable[Task]) -> Job:
    """``job`` with the sizes of ``tasks`` (its new ones) measured at the source, where
    unknown and possible."""
    if call.list_files is None:
        return job
    pending = [t for t in tasks if t.size is None]
    if not pending or len(pending) > MAX_TASKS:
        return job
    try:
        sizes = _measure(call, job, pending, time.monotonic() + BUDGET_S)
    except ReelsyncError as exc:  # no agent at the source, a file gone: the agents size it later
        _log.info("job %s: size left to the agents (%s)", job.id, exc)
        return job
    return jobs.record_sizes(call.db, call.actor, job.id, sizes) if sizes else job
