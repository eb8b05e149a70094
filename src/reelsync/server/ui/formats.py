"""How the web UI writes quantities (Jinja filters): sizes, speeds and durations in the one
convention of :mod:`reelsync.domain.units` (binary units: ``22.9 MiB``, ``4.0 MiB/s``), times."""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup, escape

from reelsync.domain.units import duration_text, rate_text, size_text

__all__ = ["FILTERS", "ago", "breakable", "duration", "size", "speed", "stamp"]


def size(value: int | float | None) -> str:
    """Bytes: ``1.5 GiB``; ``-`` when unknown."""
    return size_text(value)


def speed(value: float | None) -> str:
    """Bytes per second: ``12.3 MiB/s``; ``-`` when idle."""
    return rate_text(value)


def duration(seconds: int | float | None) -> str:
    """``2h 05m``, ``3m 07s``, ``42s``; ``-`` when unknown."""
    return duration_text(seconds)


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


def breakable(path: str) -> Markup:
    """A path that a narrow screen may wrap after each ``/`` (escaped, with ``<wbr>``)."""
    return Markup("/<wbr>").join(escape(part) for part in str(path).split("/"))


FILTERS = {
    "size": size,
    "speed": speed,
    "duration": duration,
    "ago": ago,
    "stamp": stamp,
    "breakable": breakable,
}
