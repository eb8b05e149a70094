"""How fast this agent's transfers go, so the control plane can size its leases in time.

Rules: each transfer this agent dials that ran long enough to measure (``MIN_S``) updates an
exponentially weighted average of its own rate (bytes/s and files/s, while it shared the link
with whatever else ran); the average is sent with each request for work, and the scheduler leases
a few seconds of it (at least one file). Nothing measured yet: nothing sent (the scheduler starts
small).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIN_S", "Pace"]

MIN_S = 0.05
_WEIGHT = 0.5  # of the newest transfer


@dataclass(slots=True)
class Pace:
    bytes_s: float | None = None
    files_s: float | None = None

    def record(self, files: int, size: int, seconds: float) -> None:
        """A transfer of ``files`` files (``size`` bytes) took ``seconds``."""
        if seconds < MIN_S or files <= 0:
            return
        new_bytes, new_files = size / seconds, files / seconds
        if self.bytes_s is None or self.files_s is None:
            self.bytes_s, self.files_s = new_bytes, new_files
            return
        self.bytes_s += _WEIGHT * (new_bytes - self.bytes_s)
        self.files_s += _WEIGHT * (new_files - self.files_s)

    def params(self) -> dict[str, float]:
        """The query parameters for ``GET /work`` (none until something was measured)."""
        if self.bytes_s is None or self.files_s is None:
            return {}
        return {"rate_bytes": round(self.bytes_s, 1), "rate_files": round(self.files_s, 3)}
