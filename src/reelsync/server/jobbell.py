"""The job bell: clients follow a job by long-poll (``GET /api/v1/jobs/{id}?wait=S&since=M``)
instead of a timer.

Rules: whatever in this process changes a job's progress or status (an agent's report) rings the
bell; a waiting request re-reads its job at each ring and at least every ``TICK_S`` (so a change
made through another control-plane process is seen too), and answers as soon as the job's
``modified`` differs from the ``since`` the client saw, the job has ended, or ``wait`` ran out.
A ring costs one read per waiting request; it never changes what is answered, only when.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["TICK_S", "JobBell"]

TICK_S = 0.5


class JobBell:
    """Wakes every waiter at once (one per process, in ``app.state.job_bell``)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ring(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, timeout: float) -> None:
        """Until the next ring or ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), max(0.0, timeout))
