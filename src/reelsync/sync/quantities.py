"""Bytes, speeds and durations as a person reads them: the one convention of
:mod:`reelsync.domain.units` (binary units, ``22.9 MiB``)."""

from __future__ import annotations

from reelsync.domain.units import duration_text, rate_text, size_text

__all__ = ["human_duration", "human_size", "human_speed"]


def human_size(n: int | None) -> str:
    """``24_000_000`` -> ``22.9 MiB``; None (not measured yet) -> ``?``."""
    return size_text(n, unknown="?")


def human_speed(bytes_per_s: float) -> str:
    return rate_text(bytes_per_s, idle="0 B/s")


def human_duration(seconds: float | None) -> str:
    """``83`` -> ``1m 23s``; None -> ``?``."""
    return duration_text(seconds, unknown="?")
