"""Open sessions kept between work (protocol version 3): one per peer, role and peer identity
(and lane).

Rules: the dialing engine keeps a session with a peer up after its work is done, for
``EngineSettings.session_idle`` seconds; work for the same peer in the same role flows into it
(no TCP, TLS or Hello round trips, no new streams) with its own ticket. Work of a higher
priority than everything in flight on a busy session gets a session of its own (a *lane*,
:meth:`SessionPool.lane_for`): its bytes do not queue behind the megabytes of lower-priority data
already in that session's stream and socket buffers (with a bandwidth limit, seconds of it).
A session idle that long is closed with Bye; one that fails leaves the pool at once (its callers
retry on a new one). A caller that gives up on its work (cancelled) closes the session it used, so
its files stop moving; the others' work on that session is retried on a new one and resumes from
verified chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from reelsync.engine.model import FileSpec
from reelsync.engine.receiver import ReceiveSession
from reelsync.engine.sender import SendSession
from reelsync.engine.stream import FrameStream
from reelsync.engine.work import WorkGroup
from reelsync.errors import ReelsyncError
from reelsync.protocol import Role

__all__ = ["Link", "LinkKey", "SessionPool"]

_log = logging.getLogger("reelsync.engine")


@dataclass(frozen=True, slots=True)
class LinkKey:
    role: Role  # ours: "send" pushes, "receive" pulls
    host: str
    port: int
    peer_id: str | None
    lane: int = 0  # 0: the shared session; else the priority of a session of its own


class Link:
    """One open session: its streams, the session object and the task running it."""

    def __init__(
        self,
        key: LinkKey,
        streams: list[FrameStream],
        session: SendSession | ReceiveSession,
        idle_s: float,
        on_end: Callable[[Link], None],
        wanted: dict[int, FileSpec] | None = None,
        joining: asyncio.Future[None] | None = None,
    ) -> None:
        """``wanted``: what a pulling session asked for, by file id (its resolver reads it);
        ``joining``: the task adding the streams still opening (to ``streams`` too)."""
        self.joining = joining
        self.key = key
        self.wanted: dict[int, FileSpec] = {} if wanted is None else wanted
        self.streams = streams
        self.session = session
        self.idle_s = idle_s
        self.closing = False
        self._idle: asyncio.TimerHandle | None = None
        self._on_end = on_end
        self.task = asyncio.ensure_future(self._run())

    @property
    def usable(self) -> bool:
        return not self.closing and not self.task.done()

    async def _run(self) -> None:
        try:
            await self.session.run()
        except ReelsyncError as exc:  # its callers got it through their groups
            _log.debug("session with %s:%s ended: %s", self.key.host, self.key.port, exc)
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug: the callers' groups failed; keep the agent up
            _log.exception("session with %s:%s crashed", self.key.host, self.key.port)
        finally:
            self.closing = True
            if self._idle is not None:
                self._idle.cancel()
            self._on_end(self)
            if self.joining is not None:
                self.joining.cancel()
                await asyncio.gather(self.joining, return_exceptions=True)
            await asyncio.gather(*(s.aclose() for s in self.streams), return_exceptions=True)

    def began(self) -> None:
        """Work is coming: no idle close."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def settled(self) -> None:
        """Some work ended: close after ``idle_s`` if nothing else runs by then."""
        if self.closing or self.session.busy:
            return
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(self.idle_s, self._idle_close)

    def _idle_close(self) -> None:
        self._idle = None
        if not self.session.busy:
            self.close()

    def close(self) -> None:
        """End the session with Bye once its work is settled (at once when idle)."""
        self.closing = True
        self.session.close()

    def abort(self) -> None:
        """End now: the streams are cut, open work fails retryable."""
        self.closing = True
        for s in self.streams:
            s.abort()
        self.task.cancel()

    async def wait(self, group: WorkGroup) -> None:
        """Wait for ``group``; if the caller is cancelled meanwhile, its files must stop: the
        session is cut (the others' work is retried elsewhere)."""
        try:
            await group.wait()
        except asyncio.CancelledError:
            if not group.done:
                self.abort()
            raise
        finally:
            self.settled()


class SessionPool:
    def __init__(self) -> None:
        self._links: dict[LinkKey, Link] = {}
        self._locks: dict[LinkKey, asyncio.Lock] = {}

    def __len__(self) -> int:
        return sum(1 for link in self._links.values() if link.usable)

    async def get(
        self, key: LinkKey, open_link: Callable[[], Awaitable[Link | None]]
    ) -> Link | None:
        """The open session for ``key``, or a new one from ``open_link`` (which returns None
        when the peer cannot keep one open: it speaks an older version). Callers for one key
        share one dial."""
        link = self._links.get(key)
        if link is not None and link.usable:
            link.began()
            return link
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            link = self._links.get(key)
            if link is not None and link.usable:
                link.began()
                return link
            link = await open_link()
            if link is not None:
                self._links[key] = link
            return link

    def lane_for(self, key: LinkKey, priority: int) -> LinkKey:
        """``key``, or a lane of its own for work of ``priority`` when the shared session is
        busy with work of lower priorities only."""
        link = self._links.get(key)
        if link is None or not link.usable:
            return key
        running = link.session.top_priority
        if running is None or running >= priority:
            return key
        return LinkKey(key.role, key.host, key.port, key.peer_id, priority)

    def forget(self, link: Link) -> None:
        if self._links.get(link.key) is link:
            del self._links[link.key]

    async def aclose(self) -> None:
        """Close every session: Bye when idle, cut when busy."""
        links = list(self._links.values())
        for link in links:
            if link.session.busy:
                link.abort()
            else:
                link.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*(link.task for link in links), return_exceptions=True)
