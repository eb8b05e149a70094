"""The accsyn job JSON (accsyn-compat spec section 4) normalised into frozen records, without I/O.

Rules:
- Tasks come in three forms: (A) one task as job-level ``source``/``destination``; (B) ``tasks`` as
  a list of objects or bare source strings; (C) ``tasks`` as a dict keyed by uri. A ``tasks`` object
  whose ``source`` is a string is one task. ``dest`` is an old alias of ``destination``.
- Job-level ``source``/``destination`` next to ``tasks`` are the defaults of tasks that omit them.
- A source naming an image sequence with a frame range (``plate.%04d.exr[1001-1100]``,
  ``plate.####.exr[1-5,9]``) becomes one task per frame, in frame order; its destination is a
  folder, the job's party (mirrored), or a pattern without range (``out.%04d.exr``). Uris of form
  C get ``/<frame>`` appended.
- Nested ``tasks`` inside a task, deliveries and other job types are not supported (yet).
- Resolution against the workspace (volumes, sites, duplicates, mirroring) is the services' job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from reelsync.domain.party import PartyPath, parse_party_path
from reelsync.domain.sequences import (
    frame_path,
    has_frame_range,
    has_frame_token,
    parse_sequence,
)
from reelsync.domain.status import JobStatus, TaskStatus, parse_job_status, parse_task_status
from reelsync.errors import NotSupportedError, ValidationError

__all__ = [
    "JOB_KEYS",
    "TASK_KEYS",
    "JobSpec",
    "TaskSpec",
    "parse_job_spec",
    "parse_task_specs",
]

TASK_KEYS = frozenset(
    {
        "source",
        "destination",
        "dest",
        "priority",
        "settings",
        "metadata",
        "status",
        "tasks",
        "uri",
        "size",
    }
)
JOB_KEYS = frozenset(
    {
        "tasks",
        "source",
        "destination",
        "dest",
        "name",
        "code",
        "queue",
        "parent",
        "status",
        "type",
        "mirror_paths",
        "mirror",
        "append",
        "allow_duplicates",
        "settings",
        "metadata",
        "description",
        "recipients",
    }
)
_TRANSFER_TYPES = (None, 1, "1", "transfer")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


@dataclass(frozen=True, slots=True)
class TaskSpec:
    source: PartyPath
    destination: PartyPath | None  # None: the job's destination party, path mirrored
    uri: str | None = None  # given by form C, else assigned at submit
    priority: int | None = None
    status: TaskStatus | None = None
    settings: Mapping[str, str] = field(default_factory=_empty)
    metadata: Mapping[str, Any] = field(default_factory=_empty)
    size: int | None = None  # bytes expected (a folder: its files' total), counted by the caller


@dataclass(frozen=True, slots=True)
class JobSpec:
    tasks: tuple[TaskSpec, ...]
    name: str | None = None
    queue: str | None = None
    status: JobStatus | None = None
    mirror: bool = False
    append: bool = False
    allow_duplicates: bool | None = None
    source: PartyPath | None = None
    destination: PartyPath | None = None
    settings: Mapping[str, str] = field(default_factory=_empty)
    metadata: Mapping[str, Any] = field(default_factory=_empty)


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ValidationError(f"{key} must be true or false, got {value!r}")


def _settings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{where}settings must be an object of strings, got {value!r}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise ValidationError(f"{where}settings keys must be non-empty strings")
        if isinstance(item, bool):
            out[key] = "true" if item else "false"
        elif isinstance(item, str | int | float):
            out[key] = str(item)
        else:
            raise ValidationError(f"{where}setting {key!r} must be a string, got {item!r}")
    return out


def _metadata(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{where}metadata must be an object, got {value!r}")
    return dict(value)


def _priority(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(f"{where}priority must be a whole number 1..1000, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValidationError(
            f"{where}priority must be a whole number 1..1000, got {value!r}"
        ) from None
    if not 1 <= number <= 1000:
        raise ValidationError(f"{where}priority must be within 1..1000, got {number}")
    return number


def _party_path(value: Any, key: str, where: str, workspace_code: str | None) -> PartyPath | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{where}{key} must be a string like 'site=london:volume=x/a'")
    return parse_party_path(value, workspace_code=workspace_code)


def _required_party_path(value: Any, where: str, workspace_code: str | None) -> PartyPath:
    if not isinstance(value, str):
        raise ValidationError(f"{where}source must be a string like 'volume=projects/a/b'")
    return parse_party_path(value, workspace_code=workspace_code)


def _destination(obj: Mapping[str, Any], where: str, workspace_code: str | None) -> Any:
    if "destination" in obj and "dest" in obj:
        raise ValidationError(f"{where}give destination or dest, not both")
    return obj.get("destination", obj.get("dest"))


def _task(obj: Any, uri: str | None, where: str, workspace_code: str | None) -> TaskSpec:
    if isinstance(obj, str):
        return TaskSpec(
            source=parse_party_path(obj, workspace_code=workspace_code), destination=None, uri=uri
        )
    if not isinstance(obj, Mapping):
        raise ValidationError(f"{where}a task must be an object or a source string, got {obj!r}")
    unknown = sorted(str(k) for k in obj if k not in TASK_KEYS)
    if unknown:
        raise ValidationError(
            f"{where}unknown task field(s) {', '.join(unknown)}",
            hint="a task takes source, destination, priority, status, settings, metadata, size",
        )
    if obj.get("tasks"):
        raise NotSupportedError(f"{where}nested tasks are not supported")
    if obj.get("source") is None:
        raise ValidationError(f"{where}a task needs a source")
    status = parse_task_status(obj["status"]) if obj.get("status") is not None else None
    own_uri = obj.get("uri")
    if own_uri is not None:
        uri = _uri(own_uri, where)
    return TaskSpec(
        source=_required_party_path(obj["source"], where, workspace_code),
        destination=_party_path(
            _destination(obj, where, workspace_code), "destination", where, workspace_code
        ),
        uri=uri,
        priority=_priority(obj.get("priority"), where),
        status=status,
        settings=_settings(obj.get("settings"), where),
        metadata=_metadata(obj.get("metadata"), where),
        size=_size(obj.get("size"), where),
    )


def _size(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{where}size must be a number of bytes (>= 0), got {value!r}")
    return value


def _with_path(value: PartyPath, path: str) -> PartyPath:
    if value.location is None:
        return value
    return replace(value, location=replace(value.location, path=path))


def _expand(spec: TaskSpec, where: str) -> list[TaskSpec]:
    """One task per frame when the source is an image sequence with a frame range."""
    loc = spec.source.location
    sequence = parse_sequence(loc.path) if loc is not None and not loc.is_dir else None
    if sequence is None:
        return [spec]
    dest = spec.destination
    pattern: str | None = None
    if dest is not None and dest.location is not None and not dest.location.is_dir:
        pattern = dest.location.path
        if has_frame_range(pattern):
            raise ValidationError(
                f"{where}give a sequence's destination without a frame range, e.g. "
                "site=london:volume=projects/out/plate.%04d.exr, or a folder ending in /"
            )
        if not has_frame_token(pattern):
            raise ValidationError(
                f"{where}the destination of an image sequence must be a folder (ending in /) "
                f"or a sequence pattern like plate.%04d.exr, not {pattern!r}"
            )
    tasks = []
    for frame in sequence.frames:
        destination = dest
        if pattern is not None and dest is not None:
            destination = _with_path(dest, frame_path(pattern, frame))
        tasks.append(
            replace(
                spec,
                source=_with_path(spec.source, sequence.path(frame)),
                destination=destination,
                uri=f"{spec.uri}/{frame}" if spec.uri is not None else None,
            )
        )
    return tasks


def _uri(value: Any, where: str) -> str:
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    if not text or len(text) > 200 or any(c in text for c in "\x00\n\r"):
        raise ValidationError(f"{where}a task uri must be a short non-empty string, got {value!r}")
    return text


def parse_task_specs(tasks: Any, *, workspace_code: str | None = None) -> tuple[TaskSpec, ...]:
    """The ``tasks`` value of forms B and C (or one task object) as TaskSpecs, in order."""
    if isinstance(tasks, str):
        return tuple(_expand(_task(tasks, None, "task 0: ", workspace_code), "task 0: "))
    if isinstance(tasks, Mapping):
        if isinstance(tasks.get("source"), str):
            return tuple(_expand(_task(tasks, None, "task: ", workspace_code), "task: "))
        out: list[TaskSpec] = []
        for uri, obj in tasks.items():
            where = f"task {uri!r}: "
            out += _expand(_task(obj, _uri(uri, where), where, workspace_code), where)
        return tuple(out)
    if isinstance(tasks, list | tuple):
        listed: list[TaskSpec] = []
        for index, obj in enumerate(tasks):
            where = f"task {index}: "
            listed += _expand(_task(obj, None, where, workspace_code), where)
        return tuple(listed)
    raise ValidationError(
        f"tasks must be a list, an object keyed by uri, or one task object; got {tasks!r}"
    )


def parse_job_spec(payload: Any, *, workspace_code: str | None = None) -> JobSpec:
    """Normalise a job JSON payload. Raises :class:`ValidationError` with the first problem."""
    if not isinstance(payload, Mapping):
        raise ValidationError("a job must be a JSON object")
    unknown = sorted(str(k) for k in payload if k not in JOB_KEYS)
    if unknown:
        raise ValidationError(
            f"unknown job field(s) {', '.join(unknown)}",
            hint="a job takes tasks, source, destination, name, queue, status, settings, metadata",
        )
    if payload.get("type") not in _TRANSFER_TYPES:
        raise NotSupportedError(
            f"only transfer jobs are supported here, not type {payload.get('type')!r}"
        )
    if payload.get("recipients"):
        raise NotSupportedError("deliveries (recipients) are not supported")
    source = _party_path(payload.get("source"), "source", "job ", workspace_code)
    destination = _party_path(
        _destination(payload, "job ", workspace_code), "destination", "job ", workspace_code
    )
    tasks_value = payload.get("tasks")
    if tasks_value is None or tasks_value == [] or tasks_value == {}:
        if source is None:
            raise ValidationError("a job needs tasks, or a source (and destination) at job level")
        tasks: tuple[TaskSpec, ...] = tuple(
            _expand(TaskSpec(source=source, destination=destination), "job ")
        )
    else:
        tasks = parse_task_specs(tasks_value, workspace_code=workspace_code)
    name = payload.get("name", payload.get("code"))
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 255):
        raise ValidationError(f"a job name must be a non-empty string (<= 255), got {name!r}")
    queue = payload.get("queue", payload.get("parent"))
    if queue is not None and not isinstance(queue, str):
        raise ValidationError(f"queue must be an id, code or name, got {queue!r}")
    status = parse_job_status(payload["status"]) if payload.get("status") is not None else None
    mirror = any(_bool(payload[k], k) for k in ("mirror_paths", "mirror") if k in payload)
    allow = payload.get("allow_duplicates")
    return JobSpec(
        tasks=tasks,
        name=name.strip() if isinstance(name, str) else None,
        queue=queue,
        status=status,
        mirror=mirror,
        append=_bool(payload["append"], "append") if "append" in payload else False,
        allow_duplicates=None if allow is None else _bool(allow, "allow_duplicates"),
        source=source,
        destination=destination,
        settings=_settings(payload.get("settings"), "job "),
        metadata=_metadata(payload.get("metadata"), "job "),
    )
