"""Bytes, speeds and durations as a person reads them (decimal units, like file managers)."""

from __future__ import annotations

from rich.filesize import decimal

__all__ = ["human_duration", "human_size", "human_speed"]


def human_size(n: int | None) -> str:
    """``1500000`` -> ``1.5 MB``; None (not measured yet) -> ``?``."""
    return "?" if n is None else decimal(int(n))


def human_speed(bytes_per_s: float) -> str:
    return f"{decimal(int(bytes_per_s))}/s"


def human_duration(seconds: float | None) -> str:
    """``83`` -> ``1m 23s``; None -> ``?``."""
    if seconds is None:
        return "?"
    s = round(seconds)
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
