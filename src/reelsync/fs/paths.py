"""Relative paths inside a volume, checked before any file is touched.

Rules: a volume path is relative, uses ``/``, and is normalised (``.`` and empty parts dropped);
``..``, a leading ``/``, a drive or backslash, NUL and control characters are refused with
:class:`~reelsync.errors.PathError`. The empty path (or ``.``) names the volume root itself.
Names reserved for reelsync's own temporary files (``*.reelsync-part``, ``*.reelsync-journal``)
cannot be addressed.
"""

from __future__ import annotations

import re

from reelsync.errors import PathError

__all__ = ["JOURNAL_SUFFIX", "PART_SUFFIX", "is_reserved_name", "normalize_relpath"]

_CONTROL = re.compile("[\x00-\x1f]")

PART_SUFFIX = ".reelsync-part"
JOURNAL_SUFFIX = ".reelsync-journal"


def is_reserved_name(name: str) -> bool:
    return name.endswith((PART_SUFFIX, JOURNAL_SUFFIX))


def normalize_relpath(text: str) -> str:
    """The canonical form of a path relative to a volume root, or PathError."""
    if not isinstance(text, str):
        raise PathError(f"a path must be text, got {type(text).__name__}")
    if _CONTROL.search(text):
        raise PathError(f"path {text!r} contains a control character")
    if "\\" in text:
        raise PathError(f"path {text!r} contains a backslash; use '/'")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise PathError(f"path {text!r} is absolute; give it relative to the volume root")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PathError(f"path {text!r} leaves its volume ('..' is not allowed)")
    if parts and is_reserved_name(parts[-1]):
        raise PathError(f"path {text!r} names a reelsync temporary file")
    return "/".join(parts)
