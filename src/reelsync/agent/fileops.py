"""File operations the control plane relays to this agent (accsyn ``workspace/file`` and the
API's file browsing), run on the volumes the agent serves.

Rules: every path goes through :class:`reelsync.fs.Volume` (relative, ``..`` refused, escaping
symlinks refused, reelsync's temporary files never listed) and must lead, symlinks followed,
inside the scope the control plane granted (``scope``/``scope_to``, the caller's ACL sub-path);
an unknown volume is NotFoundError.
Results are the accsyn shapes: ``ls`` -> ``[{type: 0 dir | 1 file, filename, size, modified,
files?}]`` (``files`` nested when recursive), ``getsize`` -> int (a folder: its files' total),
``exists`` -> bool, ``mkdir``/``rename``/``move``/``delete`` -> True (``delete`` of a folder that
is not empty needs ``force``; ``rename`` onto an existing path needs ``force``). ``sizes``
(reelsync's own, for ``reelsync sync``: ``paths`` with their ``scopes``) -> one entry per path,
``{size, files}`` or ``{error: {code, message}}``, so one path's problem is said for that path.
Blocking: run it in a thread.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from reelsync.domain.regex import PatternError, compile_pattern
from reelsync.errors import ConflictError, NotFoundError, ReelsyncError, ValidationError
from reelsync.fs import Entry, Volume, normalize_relpath

__all__ = ["run_fileop"]


def _modified(entry: Entry) -> str:
    stamp = datetime.fromtimestamp(entry.mtime_ns / 1e9, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S")


def _name_of(entry: Entry) -> str:
    return entry.path.rpartition("/")[2]


def _patterns(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


_REGEX = re.compile(r"""^re\(\s*(['"])(.*)\1\s*(?:,\s*(['"])([A-Za-z]*)\3\s*)?\)$""", re.S)


def _matcher(pattern: str) -> Callable[[str], bool]:
    """accsyn filters: ``word`` exact, ``*word``, ``word*``, ``*word*``, ``a*b`` (case-insensitive),
    or ``re('...')`` (``re('...', 'I')``: case-sensitive)."""
    found = _REGEX.match(pattern.strip())
    if found:
        ignore_case = "I" not in (found.group(4) or "")
        try:
            regex = compile_pattern(found.group(2), ignore_case=ignore_case)
        except PatternError as exc:
            raise ValidationError(f"bad regular expression in filter {pattern!r}: {exc}") from exc
        return regex.found
    lowered = pattern.lower()
    return lambda name: fnmatch.fnmatchcase(name.lower(), lowered)


def _sizing_walk(volume: Volume, rel: str) -> Iterable[tuple[str, os.stat_result]]:
    """The files below folder ``rel``, walked to size it: the walk is kept a few seconds, and
    the transfer of a folder just sized (a sync) lists it from this walk, not a second one."""
    return volume.walk_files(volume.resolve_str(rel), keep=True)


class _Lister:
    """``ls``: filters apply to files (and to folders with ``directories_only``); ``include``
    wins over ``exclude``; ``files_only`` with ``recursive`` lists files of sub-folders by their
    path relative to the listed folder."""

    def __init__(self, volume: Volume, op: Mapping[str, Any]) -> None:
        self.volume = volume
        self.recursive = bool(op.get("recursive"))
        maxdepth = op.get("maxdepth")
        self.maxdepth = int(maxdepth) if maxdepth is not None else None
        self.getsize = bool(op.get("getsize"))
        self.files_only = bool(op.get("files_only"))
        self.dirs_only = bool(op.get("directories_only"))
        self.include = [_matcher(p) for p in _patterns(op.get("include"))]
        self.exclude = [_matcher(p) for p in _patterns(op.get("exclude"))]

    def wanted(self, name: str) -> bool:
        if self.include:
            return any(match(name) for match in self.include)
        return not any(match(name) for match in self.exclude)

    def tree_size(self, rel: str) -> int:
        """The total size of the files below ``rel`` that ``include``/``exclude`` let through
        (one walk, one ``lstat`` per entry)."""
        files = _sizing_walk(self.volume, rel)
        if not self.include and not self.exclude:
            return sum(st.st_size for _, st in files)
        return sum(st.st_size for below, st in files if self.wanted(below.rpartition("/")[2]))

    def _deeper(self, depth: int) -> bool:
        return self.recursive and (self.maxdepth is None or depth < self.maxdepth)

    def list(self, rel: str, depth: int = 1, prefix: str = "") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for entry in self.volume.list(rel):
            name = _name_of(entry)
            if entry.is_dir:
                if self.files_only:
                    if self._deeper(depth):
                        out.extend(self.list(entry.path, depth + 1, f"{prefix}{name}/"))
                    continue
                if self.dirs_only and not self.wanted(name):
                    continue
                item: dict[str, Any] = {"type": 0, "filename": prefix + name,
                                        "modified": _modified(entry)}  # fmt: skip
                if self.getsize:
                    item["size"] = self.tree_size(entry.path)
                if self._deeper(depth):
                    item["files"] = self.list(entry.path, depth + 1)
                out.append(item)
            elif not self.dirs_only and self.wanted(name):
                out.append({"type": 1, "filename": prefix + name, "size": entry.size,
                            "modified": _modified(entry)})  # fmt: skip
        return out


def _scope(op: Mapping[str, Any], key: str) -> str | None:
    value = op.get(key, "")
    return value if value is None or isinstance(value, str) else None


def _size_of(volume: Volume, path: str, scope: Any) -> dict[str, Any]:
    """One path of ``sizes``: ``{size, files}`` (a file: 1), or ``{error: {code, message}}``."""
    try:
        rel = normalize_relpath(path)
        volume.check_within(rel, scope if isinstance(scope, str) else None)
        entry = volume.stat(rel)
        if not entry.is_dir:
            return {"size": entry.size, "files": 1}
        files = list(_sizing_walk(volume, rel))
        return {"size": sum(st.st_size for _, st in files), "files": len(files)}
    except ReelsyncError as exc:
        return {"error": {"code": exc.code, "message": exc.message}}


def run_fileop(volumes: Mapping[str, Volume], op: Mapping[str, Any]) -> Any:
    """Run one relayed operation ``{op, volume, path, path_to?, ...}``; its accsyn result."""
    code = str(op.get("volume") or "")
    volume = volumes.get(code)
    if volume is None:
        raise NotFoundError(f"volume {code!r} is not served by this agent")
    if volume.confine is not None:  # held to its own scope below, not to transfers' tickets
        volume = copy.copy(volume)
        volume.confine = None
    name = str(op.get("op") or "")
    if name == "sizes":
        paths, scopes = op.get("paths") or [], op.get("scopes") or []
        if not isinstance(paths, list) or not isinstance(scopes, list) or len(paths) != len(scopes):
            raise ValidationError("sizes needs as many scopes as paths")
        return [_size_of(volume, str(p), scope) for p, scope in zip(paths, scopes, strict=True)]
    rel = normalize_relpath(str(op.get("path") or ""))
    volume.check_within(rel, _scope(op, "scope"))
    if name == "ls":
        if not volume.stat(rel).is_dir:
            entry = volume.stat(rel)
            return [{"type": 1, "filename": _name_of(entry), "size": entry.size,
                     "modified": _modified(entry)}]  # fmt: skip
        return _Lister(volume, op).list(rel)
    if name == "exists":
        return volume.exists(rel)
    if name == "getsize":
        entry = volume.stat(rel)
        lister = _Lister(volume, op)
        if entry.is_dir:
            return lister.tree_size(rel)
        return entry.size if lister.wanted(_name_of(entry)) else 0
    if name == "mkdir":
        if volume.exists(rel):  # accsyn fails too: a script learns the folder was there
            raise ConflictError(f"{volume.code}:{rel} already exists")
        volume.mkdir(rel)
        return True
    if name in ("rename", "move"):
        target = normalize_relpath(str(op.get("path_to") or ""))
        if not target:
            raise ValidationError(f"{name} needs path_to inside the volume")
        volume.check_within(target, _scope(op, "scope_to"))
        volume.rename(rel, target, overwrite=bool(op.get("force")))
        return True
    if name == "delete":
        volume.delete(rel, recursive=bool(op.get("force")))
        return True
    raise ValidationError(f"unknown file operation {name!r}")
