"""How the web UI writes quantities: sizes, speeds, durations, times (Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["FILTERS", "ago", "duration", "size", "speed", "stamp"]

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def size(value: int | float | None) -> str:
    """Bytes in decimal units: ``1.5 GB``; ``-`` when unknown."""
    if value is None:
        return "-"
    amount = float(value)
    for unit in _UNITS:
        if abs(amount) < 1000 or unit == _UNITS[-1]:
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def speed(value: float | None) -> str:
    """Bytes per second: ``12.3 MB/s``; ``-`` when idle."""
    if not value:
        return "-"
    return f"{size(value)}/s"


def duration(seconds: int | float | None) -> str:
    """``2h 05m``, ``3m 07s``, ``42s``; ``-`` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24}d {hours % 24:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """``12s ago``; ``never`` when None."""
    if value is None:
        return "never"
    delta = ((now or datetime.now(UTC)) - value).total_seconds()
    return "just now" if delta < 1 else f"{duration(delta)} ago"


def stamp(value: datetime | None) -> str:
    """``2026-11-27 05:30:12 UTC``; ``-`` when None."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


FILTERS = {"size": size, "speed": speed, "duration": duration, "ago": ago, "stamp": stamp}
