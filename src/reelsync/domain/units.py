"""How reelsync writes quantities for people, one convention for the web UI, the CLI and the mail.

Rules: sizes and rates are BINARY (IEC) units, written with their ``i`` so no one reads them as
decimal: ``B``, ``KiB``, ``MiB``, ``GiB``, ``TiB``, ``PiB`` (1 KiB = 1024 B); one decimal above
bytes (``22.9 MiB``, ``4.0 MiB/s``). Bandwidth limits are given in MiB/s, so a 4 MiB/s limit reads
``4.0 MiB/s`` everywhere. Durations read ``1h 05m``, ``3m 07s``, ``42s``, ``2d 03h``.
"""

from __future__ import annotations

__all__ = ["MIB", "duration_text", "rate_text", "size_text"]

MIB = 1 << 20
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size_text(value: int | float | None, unknown: str = "-") -> str:
    """``24_000_000`` -> ``22.9 MiB``; ``unknown`` when None."""
    if value is None:
        return unknown
    amount = float(value)
    for unit in _UNITS:
        if abs(amount) < 1024 or unit == _UNITS[-1]:
            return f"{int(amount)} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def rate_text(bytes_per_s: float | None, idle: str = "-") -> str:
    """``4 * MIB`` -> ``4.0 MiB/s``; ``idle`` for None or 0."""
    if not bytes_per_s:
        return idle
    return f"{size_text(bytes_per_s)}/s"


def duration_text(seconds: float | None, unknown: str = "-") -> str:
    """``83`` -> ``1m 23s``; ``unknown`` for None or a negative value."""
    if seconds is None or seconds < 0:
        return unknown
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24}d {hours % 24:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
