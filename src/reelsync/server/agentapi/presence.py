"""Which agents hold a work long-poll open on this process, and which dropped one.

Rules: a live agent keeps one work long-poll open at (almost) all times: it polls again as soon
as an answer arrives. When a poll ends because the client went away (the connection dropped: the
process was killed, the host died) and no new poll of that agent starts within ``grace_s``, the
agent is lost: ``on_lost(agent_id, dropped_at)`` runs once (the hub marks it offline and releases
its leases, unless the agent checked in since ``dropped_at``: it moved to another replica, and
says so with a heartbeat there at once). A poll that ends normally (answered) never counts. State
is per process; an agent polling another replica is that replica's business. A poll that
*arrives* here (no poll of that agent open here, none answered here within ``grace_s``: it comes
from another worker or replica) is recorded as a check-in by the caller, so the process it left
does not take it for lost (workers share a port: an agent's next connection may land anywhere).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from reelsync.db.types import utcnow

__all__ = ["Presence"]

_log = logging.getLogger("reelsync.server.agents")


class Presence:
    def __init__(
        self, on_lost: Callable[[str, datetime], Awaitable[None]], *, grace_s: float = 2.0
    ) -> None:
        self.grace_s = grace_s
        self._on_lost = on_lost
        self._open: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._answered: dict[str, float] = {}
        self._checks: set[asyncio.Task[None]] = set()

    def begin(self, agent_id: str) -> bool:
        """A work long-poll of ``agent_id`` starts; True when it arrives from elsewhere (see the
        rules: the caller records a check-in)."""
        now = time.monotonic()
        arrived = not self.polling(agent_id) and now - self._answered.get(agent_id, -1e9) > (
            self.grace_s
        )
        self._open[agent_id] = self._open.get(agent_id, 0) + 1
        self._started[agent_id] = now
        return arrived

    def end(self, agent_id: str, *, dropped: bool) -> None:
        """The poll ends: answered, or ``dropped`` (the client went away)."""
        left = self._open.get(agent_id, 1) - 1
        if left > 0:
            self._open[agent_id] = left
        else:
            self._open.pop(agent_id, None)
        if not dropped:
            self._answered[agent_id] = time.monotonic()
        else:
            self._answered.pop(agent_id, None)
            check = asyncio.get_running_loop().create_task(
                self._check(agent_id, time.monotonic(), utcnow())
            )
            self._checks.add(check)
            check.add_done_callback(self._checks.discard)

    def polling(self, agent_id: str) -> bool:
        """``agent_id`` has a work long-poll open here now."""
        return self._open.get(agent_id, 0) > 0

    async def _check(self, agent_id: str, dropped_at: float, wall: datetime) -> None:
        await asyncio.sleep(self.grace_s)
        if self.polling(agent_id) or self._started.get(agent_id, 0.0) > dropped_at:
            return
        try:
            await self._on_lost(agent_id, wall)
        except Exception:  # a database hiccup: the sweep still catches the agent later
            _log.exception("could not mark agent %s lost", agent_id)

    def cancel(self) -> None:
        for check in list(self._checks):
            check.cancel()
