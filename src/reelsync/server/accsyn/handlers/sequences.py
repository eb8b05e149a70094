"""Image sequences without a frame range in a submit (``share=projects/sc01/plate.%04d.exr``):
as in accsyn they mean every frame present at the source, so the adapter lists the source folder
on the agent serving it and gives each such path its range before the jobs service sees it.

Rules: only ``%d``-style tokens count (a ``#`` without range is part of a file name); the listing
is an ``ls`` with the caller's read access checked, so a caller learns no more than ``ls`` tells;
no frame present is a clear error naming the pattern.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reelsync.domain.fileops import FileOp, FileRequest
from reelsync.domain.sequences import frames_present, unranged_sequence, with_range
from reelsync.errors import UnavailableError, ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.handlers.files import locate

__all__ = ["with_frames"]


def _ranged(call: Call, source: str) -> str:
    if unranged_sequence(source.rpartition("/")[2]) is None:
        return source
    volume_id, volume_code, rel, site, scope = locate(call, source, write=False)
    sequence = unranged_sequence(rel)
    if sequence is None:
        return source
    if call.list_files is None:
        raise UnavailableError("listing the source of an image sequence needs an agent")
    listing = call.list_files(
        FileRequest(
            op=FileOp.LS,
            volume_id=volume_id,
            volume_code=volume_code,
            path=sequence.directory,
            files_only=True,
            site_code=site,
            scope=scope,
        )
    )
    names = [i["filename"] for i in listing if isinstance(i, Mapping) and i.get("type") == 1]
    frames = frames_present(sequence, names)
    if not frames:
        raise ValidationError(
            f"no frame of {source!r} at the source",
            hint="check the pattern (plate.%04d.exr matches plate.1001.exr), or give a range",
        )
    return with_range(source, frames)


def _task(call: Call, task: Any) -> Any:
    if isinstance(task, str):
        return _ranged(call, task)
    if isinstance(task, Mapping) and isinstance(task.get("source"), str):
        return {**task, "source": _ranged(call, task["source"])}
    return task


def with_frames(call: Call, payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` with every range-less sequence source given the frames present."""
    out = dict(payload)
    if isinstance(out.get("source"), str):
        out["source"] = _ranged(call, out["source"])
    tasks = out.get("tasks")
    if isinstance(tasks, list):
        out["tasks"] = [_task(call, t) for t in tasks]
    elif isinstance(tasks, Mapping):
        out["tasks"] = {uri: _task(call, t) for uri, t in tasks.items()}
    return out
