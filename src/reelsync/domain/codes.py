"""Codes and e-mail addresses that name entities.

Rules: a code is 1..64 characters of ``[A-Za-z0-9_.-]`` (sites at most 32), compared and stored
lower-cased; an e-mail is ``local@domain`` without spaces, stored lower-cased.
"""

from __future__ import annotations

import re

from reelsync.errors import ValidationError

__all__ = ["parse_code", "parse_email"]

_CODE_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


def parse_code(kind: str, value: object, *, max_len: int = 64) -> str:
    """``value`` as a lower-cased code of a ``kind`` (site, volume, queue, workspace)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"a {kind} code must be a non-empty string")
    text = value.strip()
    if len(text) > max_len or not _CODE_RE.match(text):
        raise ValidationError(
            f"bad {kind} code {text!r}: use up to {max_len} letters, digits, '_', '.' or '-'"
        )
    return text.lower()


def parse_email(value: object) -> str:
    if not isinstance(value, str) or not _EMAIL_RE.match(value.strip()) or len(value) > 320:
        raise ValidationError(f"not an e-mail address: {value!r}")
    return value.strip().lower()
