"""Token buckets shared by every stream of an agent: the agent's bandwidth limit, one bucket for
what it sends and one for what it receives.

Rules: tokens are bytes, refilled at ``rate`` per second up to ``burst``; taking more than is
there puts the bucket in debt and the taker sleeps until its share of the debt is paid, so the
long-run rate never exceeds ``rate`` whatever the size of each take. The sending side takes on
the event loop (:meth:`TokenBucket.take`); the receiving side takes in the streams' reader
threads (:meth:`TokenBucket.take_blocking`) *after* each socket read and before the next, so a
limited receiver stops reading, its TCP window closes and the peer slows down. ``rate`` None
means no limit; :meth:`set_rate` changes it while transfers run (a limit set centrally). ``total``
counts every byte taken, limited or not (the agent's current rate comes from it).
"""

from __future__ import annotations

import asyncio
import threading
import time

__all__ = ["TokenBucket"]


class TokenBucket:
    def __init__(self, rate: float | None, burst: float | None = None) -> None:
        self._lock = threading.Lock()
        self._fixed_burst = burst
        self.rate: float | None = None
        self.burst = 0.0
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self.total = 0
        self._apply(rate if rate is not None and rate > 0 else None)

    def set_rate(self, rate: float | None) -> None:
        """Limit to ``rate`` bytes/s from now on (None or <= 0: no limit)."""
        with self._lock:
            rate = rate if rate is not None and rate > 0 else None
            if rate != self.rate:
                self._apply(rate)

    def _apply(self, rate: float | None) -> None:
        was_limited = self.rate is not None
        self.rate = rate
        self.burst = (
            self._fixed_burst
            if self._fixed_burst is not None
            else max(16 * 1024.0, (rate or 0.0) / 50)
        )
        # a new limit starts with a full bucket; a changed one keeps what is left
        self._tokens = min(self._tokens, self.burst) if was_limited else self.burst
        self._stamp = time.monotonic()

    def reserve(self, amount: int) -> float:
        """Take ``amount`` bytes; the seconds the taker must wait before going on."""
        with self._lock:
            self.total += amount
            rate = self.rate
            if rate is None:
                return 0.0
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            self._tokens -= amount
            return -self._tokens / rate if self._tokens < 0 else 0.0

    async def take(self, amount: int) -> None:
        """Take on the event loop (the sending side)."""
        delay = self.reserve(amount)
        if delay > 0:
            await asyncio.sleep(delay)

    def take_blocking(self, amount: int) -> None:
        """Take in a thread (a stream's reader: the receiving side)."""
        delay = self.reserve(amount)
        if delay > 0:
            time.sleep(delay)
