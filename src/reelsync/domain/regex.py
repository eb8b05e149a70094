"""Regular expressions from users (a query's ``matches``, a file listing's ``re('...')`` filter),
run in time linear in the text: RE2 (the ``google-re2`` package), never Python's backtracking
``re``.

Rules: a pattern is at most :data:`MAX_PATTERN_CHARS` characters and its compiled program at most
:data:`MAX_PROGRAM_BYTES`; RE2 refuses what it cannot run in linear time (back-references,
look-around), and every refusal is a :class:`PatternError` with one readable reason. Compiled
patterns are cached.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

__all__ = ["MAX_PATTERN_CHARS", "MAX_PROGRAM_BYTES", "Pattern", "PatternError", "compile_pattern"]

MAX_PATTERN_CHARS = 1000
MAX_PROGRAM_BYTES = 1 << 20


class PatternError(ValueError):
    """A pattern that is not valid, or not allowed: ``str(exc)`` says why."""


class Pattern:
    """A compiled pattern: :meth:`found` says whether it occurs anywhere in a text."""

    __slots__ = ("_compiled", "text")

    def __init__(self, text: str, compiled: Any) -> None:
        self.text = text
        self._compiled = compiled

    def found(self, text: str) -> bool:
        try:
            return self._compiled.search(text) is not None
        except UnicodeEncodeError:  # a lone surrogate: RE2 reads UTF-8
            return self._compiled.search(text.encode("utf-8", "replace").decode()) is not None


@functools.lru_cache(maxsize=512)
def compile_pattern(text: str, *, ignore_case: bool = True) -> Pattern:
    """``text`` compiled by RE2 (case-insensitive unless told); PatternError when refused."""
    if len(text) > MAX_PATTERN_CHARS:
        raise PatternError(f"the pattern is longer than {MAX_PATTERN_CHARS} characters")
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False
    options.max_mem = MAX_PROGRAM_BYTES
    try:
        compiled = re2.compile(text, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "not a valid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        hint = "patterns run on RE2: no back-references or look-around"
        raise PatternError(f"{reason} ({hint})") from None
    except (TypeError, ValueError) as exc:  # e.g. a lone surrogate
        raise PatternError(str(exc) or "not a valid pattern") from None
    return Pattern(text, compiled)
