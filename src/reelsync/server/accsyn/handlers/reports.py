"""``<type>/report`` and ``job/metrics``: accsyn's ``report(query)`` and ``metrics(query)``.

A report is plain text about the entities the query finds (what the caller may see): one block
per entity, its fields one per line, and for a job its tasks counted by status. Metrics are the
figures the scheduler keeps per job (progress, size, bytes done, speed, ETR, tasks by status),
trimmed to ``attributes`` when given. Neither changes anything.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

from reelsync.errors import ValidationError
from reelsync.server.accsyn.call import Call
from reelsync.server.accsyn.catalog import CLIENT_KINDS, JOB_KINDS, SHARE_KINDS
from reelsync.server.accsyn.dispatch import lookup, route
from reelsync.server.accsyn.handlers.tasks import all_tasks

__all__ = ["Report"]

_REPORTED = ("user", "site", "queue", *JOB_KINDS, *SHARE_KINDS, *CLIENT_KINDS)
_METRICS = ("progress", "size", "bytes_done", "speed", "etr", "status", "tasks")


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    """A report's text: the router answers it as ``{"result": text, "report": text}``."""

    text: str


def _found(call: Call) -> list[dict[str, Any]]:
    kind = call.kind
    envelope = dataclasses.replace(call.envelope, uri=f"{kind}/find", data={"finished": True})
    _, _, find = lookup("GET", (kind, "find"))
    result = find(dataclasses.replace(call, envelope=envelope, action="find"))
    return [r for r in result if isinstance(r, dict)]


def _task_counts(call: Call, job_id: str) -> dict[str, int]:
    return dict(sorted(Counter(t.status for t in all_tasks(call, job_id)).items()))


def _value(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, sort_keys=True)
    return "" if value is None else str(value)


@route("GET", _REPORTED, "report")
def report(call: Call) -> Report:
    if not call.envelope.query and call.envelope.id is None:
        raise ValidationError("report needs a query, like report('Job WHERE id=<id>')")
    blocks: list[str] = []
    for record in _found(call):
        lines = [f"{call.kind} {record.get('code') or record.get('id')}"]
        lines += [f"  {key}: {_value(value)}" for key, value in record.items()]
        if call.kind in JOB_KINDS and record.get("type") == 1:
            counts = _task_counts(call, str(record["id"]))
            lines.append(
                "  tasks by status: " + (", ".join(f"{s} {n}" for s, n in counts.items()) or "none")
            )
        blocks.append("\n".join(lines))
    return Report("\n\n".join(blocks) if blocks else f"no {call.kind} matches the query")


@route("GET", JOB_KINDS, "metrics")
def metrics(call: Call) -> dict[str, dict[str, Any]]:
    wanted = call.data.get("attributes") or list(_METRICS)
    if not isinstance(wanted, list) or not all(isinstance(a, str) for a in wanted):
        raise ValidationError("metrics attributes must be a list of names")
    unknown = sorted(set(wanted) - set(_METRICS))
    if unknown:
        raise ValidationError(f"no metric {', '.join(unknown)}; there are {', '.join(_METRICS)}")
    out: dict[str, dict[str, Any]] = {}
    for record in _found(call):
        if record.get("type") != 1:
            continue
        figures = {
            "progress": record.get("progress"),
            "size": record.get("size"),
            "bytes_done": record.get("bytes_done"),
            "speed": record.get("speed"),
            "etr": record.get("etr"),
            "status": record.get("status"),
        }
        if "tasks" in wanted:
            figures["tasks"] = _task_counts(call, str(record["id"]))
        out[str(record["id"])] = {k: v for k, v in figures.items() if k in wanted}
    return out
