"""The rules every path inside a volume obeys, in one place: the control plane checks them when a
path comes in (a job's tasks, an ACL, a file operation) and the agents check them again before
they touch a file.

Rules: a path (``/``-separated, relative to its volume) is at most :data:`MAX_PATH_BYTES` bytes
in UTF-8 and each component at most :data:`MAX_COMPONENT_BYTES`; no control characters
(U+0000-U+001F, U+007F); no component ends in a suffix reserved for reelsync's own temporary
files (:data:`PART_SUFFIX`, :data:`JOURNAL_SUFFIX`). A refusal is a :class:`PathError` whose
message quotes the path shortened (:func:`shorten`), so an error never grows with its input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from reelsync.errors import PathError

__all__ = [
    "JOURNAL_SUFFIX",
    "MAX_COMPONENT_BYTES",
    "MAX_PATH_BYTES",
    "PART_SUFFIX",
    "check_path_rules",
    "covers",
    "is_reserved_name",
    "plain_names",
    "shorten",
]

MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255
PART_SUFFIX = ".reelsync-part"
JOURNAL_SUFFIX = ".reelsync-journal"

_CONTROL = re.compile("[\x00-\x1f\x7f]")
_RESERVED_MARK = ".reelsync-"
_NOT_PLAIN = re.compile(r"(?:^|/)\.{0,2}(?:/|$)")  # an empty, "." or ".." component
_LONG_COMPONENT = re.compile(f"[^/]{{{MAX_COMPONENT_BYTES + 1},}}")
_LONG_COMPONENT_BYTES = re.compile(f"[^/]{{{MAX_COMPONENT_BYTES + 1},}}".encode())


def is_reserved_name(name: str) -> bool:
    """Whether ``name`` (one component) is reserved for reelsync's temporary files."""
    return name.endswith((PART_SUFFIX, JOURNAL_SUFFIX))


def shorten(text: str, limit: int = 80) -> str:
    """``text`` as ``repr``, cut in the middle when longer than ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    half = limit // 2
    return f"{text[:half]!r}...({len(text) - 2 * half} more)...{text[-half:]!r}"


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def check_path_rules(path: str) -> None:
    """Raise PathError unless ``path`` (``/``-separated) obeys the rules above."""
    control = _CONTROL.search(path)
    if control is not None:
        raise PathError(
            f"path {shorten(path)} contains a control character "
            f"({control.group()!r} at position {control.start() + 1})"
        )
    size = _utf8_len(path)
    if size > MAX_PATH_BYTES:
        raise PathError(
            f"path {shorten(path)} is {size} bytes long; at most {MAX_PATH_BYTES} are allowed"
        )
    if size <= MAX_COMPONENT_BYTES and _RESERVED_MARK not in path:
        return  # the common case: nothing in it can break a rule
    for part in path.split("/"):
        part_size = _utf8_len(part)
        if part_size > MAX_COMPONENT_BYTES:
            raise PathError(
                f"a name in path {shorten(path)} is {part_size} bytes long; at most "
                f"{MAX_COMPONENT_BYTES} are allowed per file or folder name"
            )
        if is_reserved_name(part):
            raise PathError(
                f"path {shorten(path)} names a reelsync temporary file "
                f"(names ending in {PART_SUFFIX} or {JOURNAL_SUFFIX} are reserved)"
            )


def plain_names(folder: str, names: Sequence[str]) -> bool:
    """Whether every ``folder/name`` obeys the rules, each name a plain relative path (no
    empty, ``.`` or ``..`` component, no ``\\``), judged over all names at once (a few
    operations, not a few per name). False: judge them one by one, which says why."""
    if not names:
        return True
    joined = "/".join(names)
    if "\\" in joined or _RESERVED_MARK in joined or _NOT_PLAIN.search(joined) is not None:
        return False
    if _CONTROL.search(joined) is not None:
        return False
    ascii = joined.isascii()
    longest = max(map(len, names)) if ascii else max(_utf8_len(n) for n in names)
    if longest > MAX_COMPONENT_BYTES:  # some path is long enough to hold a long name
        raw = joined if ascii else joined.encode("utf-8", "surrogatepass")
        pattern = _LONG_COMPONENT if ascii else _LONG_COMPONENT_BYTES
        if pattern.search(raw) is not None:  # type: ignore[arg-type]
            return False
    if _utf8_len(folder) + 1 + longest > MAX_PATH_BYTES:
        return False
    try:
        check_path_rules(folder)
    except PathError:
        return False
    return True


def covers(grant_path: str, path: str) -> bool:
    """Whether a grant on ``grant_path`` (volume-relative; empty: the whole volume) covers
    ``path``: the same path or one below it, never a sibling sharing its prefix."""
    return not grant_path or path == grant_path or path.startswith(grant_path + "/")
