"""Relative paths inside a volume, checked before any file is touched.

Rules: a volume path is relative, uses ``/``, and is normalised (``.`` and empty parts dropped);
``..``, a leading ``/``, a drive or backslash are refused with :class:`~reelsync.errors.PathError`,
and so is anything the domain's path rules refuse (:mod:`reelsync.domain.paths`: lengths, control
characters, names reserved for reelsync's temporary files). The empty path (or ``.``) names the
volume root itself.
"""

from __future__ import annotations

from reelsync.domain.paths import (
    JOURNAL_SUFFIX,
    PART_SUFFIX,
    check_path_rules,
    is_reserved_name,
    shorten,
)
from reelsync.errors import PathError

__all__ = ["JOURNAL_SUFFIX", "PART_SUFFIX", "is_reserved_name", "normalize_relpath"]


def normalize_relpath(text: str) -> str:
    """The canonical form of a path relative to a volume root, or PathError."""
    if not isinstance(text, str):
        raise PathError(f"a path must be text, got {type(text).__name__}")
    check_path_rules(text)
    if "\\" in text:
        raise PathError(f"path {shorten(text)} contains a backslash; use '/'")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise PathError(f"path {shorten(text)} is absolute; give it relative to the volume root")
    if "/." not in text and "//" not in text and text[:1] != "." and text[-1:] != "/":
        return text  # the common case, already normal: no empty, "." or ".." part
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PathError(f"path {shorten(text)} leaves its volume ('..' is not allowed)")
    return "/".join(parts)
