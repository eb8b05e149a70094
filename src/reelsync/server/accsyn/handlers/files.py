"""``workspace/file``: ls, getsize, exists (GET), mkdir, delete (POST), rename, move (PUT).

The path (``share=projects/a/b``, ``volume=projects/a/b``, ``site=london:share=...``, a relative
path in the default volume) is resolved and confined here and the caller's ACL checked (read for
ls/getsize/exists, write for the rest); the operation itself runs on the agent serving the volume,
through the FileOperator the router was built with.
"""

from __future__ import annotations

from typing import Any

from reelsync.domain.fileops import FileOp, FileRequest
from reelsync.domain.party import PartyKind, parse_party_path
from reelsync.errors import NotSupportedError, ValidationError
from reelsync.server.accsyn.call import Call, PendingFileOp
from reelsync.server.accsyn.dispatch import route
from reelsync.server.accsyn.handlers.arguments import flag
from reelsync.services import acls, volumes

__all__ = ["locate"]

_VERBS = {
    FileOp.LS: "GET",
    FileOp.GETSIZE: "GET",
    FileOp.EXISTS: "GET",
    FileOp.MKDIR: "POST",
    FileOp.DELETE: "POST",
    FileOp.RENAME: "PUT",
    FileOp.MOVE: "PUT",
}


def _filters(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValidationError(f"{key} must be a string or a list of strings")


def locate(call: Call, text: Any, *, write: bool) -> tuple[str, str, str, str | None, str]:
    """(volume id, volume code, relative path, site code, scope) of an accsyn path, access
    checked."""
    if isinstance(text, dict):
        text = text.get("path")
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("a file path must be a string like 'share=projects/proj001'")
    parsed = parse_party_path(text, workspace_code=call.workspace_code)
    if parsed.party.kind in (PartyKind.USER, PartyKind.CLIENT):
        raise NotSupportedError(
            f"files on a user's or client's own machine are not reachable: {text!r}"
        )
    location = parsed.location
    if location is None:
        raise ValidationError(f"{text!r} names a site but no path")
    if location.absolute:
        raise ValidationError(
            f"give a volume path, not an absolute path: {text!r}", hint="like share=projects/a/b"
        )
    volume = volumes.get_volume(call.db, call.actor, location.volume or "(default)")
    scope = acls.check_access(
        call.db, call.actor, volume.id, location.path, read=not write, write=write
    )
    site = parsed.party.value if parsed.party.kind is PartyKind.SITE else None
    return volume.id, volume.code, location.path, site, scope


def _request(call: Call, op: FileOp, path: Any) -> FileRequest:
    data = call.data
    volume_id, volume_code, rel, site, scope = locate(call, path, write=op.writes)
    path_to = None
    scope_to = ""
    if op in (FileOp.RENAME, FileOp.MOVE):
        to_id, _, to_rel, _, scope_to = locate(call, data.get("path_to"), write=True)
        if to_id != volume_id:
            raise ValidationError("a file can only be renamed or moved within its volume")
        path_to = to_rel
    maxdepth = data.get("maxdepth")
    if maxdepth is not None and (isinstance(maxdepth, bool) or not isinstance(maxdepth, int)):
        raise ValidationError("maxdepth must be a whole number")
    return FileRequest(
        op=op,
        volume_id=volume_id,
        volume_code=volume_code,
        path=rel,
        path_to=path_to,
        recursive=bool(flag(data, "recursive")),
        maxdepth=maxdepth,
        getsize=bool(flag(data, "getsize")),
        files_only=bool(flag(data, "files_only")),
        directories_only=bool(flag(data, "directories_only")),
        include=_filters(data.get("include"), "include"),
        exclude=_filters(data.get("exclude"), "exclude"),
        force=bool(flag(data, "force")),
        site_code=site,
        scope=scope,
        scope_to=scope_to,
    )


@route("GET", ("workspace",), "file")
@route("POST", ("workspace",), "file")
@route("PUT", ("workspace",), "file")
def file(call: Call) -> PendingFileOp:
    data = call.data
    try:
        op = FileOp(str(data.get("op", "")).lower())
        if op not in _VERBS:  # reelsync's own (sizes): not an accsyn operation
            raise ValueError(op)
    except ValueError:
        names = ", ".join(o.value for o in _VERBS)
        raise ValidationError(f"unknown file operation {data.get('op')!r}; use {names}") from None
    if _VERBS[op] != call.verb:
        raise ValidationError(
            f"file operation {op.value} is sent with {_VERBS[op]}, not {call.verb}"
        )
    paths = data.get("path")
    if isinstance(paths, list):
        if not paths:
            raise ValidationError("the path list is empty")
        return PendingFileOp(tuple(_request(call, op, p) for p in paths), labels=tuple(paths))
    return PendingFileOp((_request(call, op, paths),))
