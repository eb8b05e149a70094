"""A token bucket shared by every stream of an agent: the agent's bandwidth limit.

Rules: tokens are bytes, refilled at ``rate`` per second up to ``burst``; taking more than is
there puts the bucket in debt and the taker sleeps until the debt is paid, so the long-run rate
never exceeds ``rate`` whatever the size of each take.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["TokenBucket"]


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(16 * 1024.0, rate / 50)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, amount: int) -> None:
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= amount
            if self._tokens < 0:
                await asyncio.sleep(-self._tokens / self.rate)
