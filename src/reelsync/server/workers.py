"""Several worker processes behind one ``reelsync server run`` (PostgreSQL only).

Rules: the parent binds the listeners and upgrades the database, then forks ``count`` workers that
accept on the same listening sockets (the kernel hands each new connection to one of them) and
each serve the whole app; the parent only supervises. Workers are replicas that share a port:
everything they must agree on is in the database (dispatch, reports, file operations through the
``fileop`` mailbox, sessions), and what lives in memory is either per connection (long-polls,
SSE) or shared here: a write in one worker wakes the parked long-polls and job followers of the
others (:class:`SiblingLink`, one datagram per sibling), and the sign-in throttle is one table
in shared memory (:class:`SharedSignInThrottle`). The background loops (scheduler sweep, outbox
dispatcher, housekeeping) run in worker 1 only; they are safe in several processes, one is
enough. SIGTERM or SIGINT to the parent stops every worker gracefully (one SIGTERM each, a second
signal forces them) and the parent exits 0 once all have; a worker that dies on its own is
started again, unless it died while starting (the parent stops all and exits 1). A worker whose
parent is gone (SIGKILL) stops by itself within a second, freeing the port.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import multiprocessing
import os
import secrets
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from reelsync.config import ServerConfig
from reelsync.domain.hostos import usable_cores
from reelsync.errors import ConfigError
from reelsync.server.intake import SignInThrottle

__all__ = ["SharedSignInThrottle", "SiblingLink", "Worker", "run_workers", "worker_count"]

_log = logging.getLogger("reelsync.server")

_START_GRACE_S = 10.0  # a worker that dies sooner than this after its start failed to start
WAKE_AGENTS = b"a"  # a user's write: parked work long-polls run their pass
RING_JOBS = b"j"  # an agent's report: job followers re-read


def worker_count(config: ServerConfig, asked: int | None) -> int:
    """How many workers: ``asked`` (``--workers``), else one per core on PostgreSQL; SQLite is
    one process (its one writer would only queue them)."""
    sqlite = config.database_url.startswith("sqlite")
    if asked is not None:
        if asked < 1:
            raise ConfigError(f"--workers must be 1 or more, got {asked}")
        if asked > 1 and sqlite:
            raise ConfigError(
                "several workers need PostgreSQL (SQLite has one writer)",
                hint="run with --workers 1, or move the workspace to PostgreSQL",
            )
        if asked > 1 and not hasattr(os, "fork"):
            raise ConfigError("several workers need a system with fork()", hint="--workers 1")
        return asked
    if sqlite or not hasattr(os, "fork"):
        return 1
    return min(usable_cores(), 8)


class SiblingLink:
    """One datagram socket pair per worker, made before the fork: a worker reads its own and
    sends to the others'. Sends never block (a full queue means a wake is pending anyway)."""

    def __init__(self, count: int) -> None:
        self._pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(count)]
        for reader, writer in self._pairs:
            reader.setblocking(False)
            writer.setblocking(False)
        self.index = -1

    def bind(self, index: int) -> None:
        """This process is worker ``index`` (0-based)."""
        self.index = index

    @property
    def inbox(self) -> socket.socket:
        return self._pairs[self.index][0]

    def send(self, what: bytes) -> None:
        """Tell every other worker ``what`` (:data:`WAKE_AGENTS`, :data:`RING_JOBS`)."""
        for index, (_, writer) in enumerate(self._pairs):
            if index != self.index:
                with contextlib.suppress(OSError):
                    writer.send(what)

    def close(self) -> None:
        for pair in self._pairs:
            for end in pair:
                end.close()

    def drain(self) -> set[bytes]:
        """What the siblings said since the last call."""
        got: set[bytes] = set()
        while True:
            try:
                got.add(self.inbox.recv(16))
            except (BlockingIOError, InterruptedError):
                return got
            except OSError:
                return got


class SharedSignInThrottle(SignInThrottle):
    """The sign-in throttle's buckets in memory shared by every worker (made before the fork):
    ``slots`` buckets addressed by a keyed hash of the source address, each (digest, tokens,
    stamp); an address meeting another's slot takes it over (a fresh bucket), as the in-process
    table forgets its oldest."""

    _SLOT = struct.Struct("<8sdd")

    def __init__(self, *, burst: int = 20, per_s: float = 1.0, slots: int = 65536) -> None:
        super().__init__(burst=burst, per_s=per_s)
        self._slots = slots
        self._key = secrets.token_bytes(16)
        self._memory = mmap.mmap(-1, slots * self._SLOT.size)
        self._lock = multiprocessing.get_context("fork").Lock()

    def _where(self, address: str) -> tuple[bytes, int]:
        digest = hashlib.blake2b(address.encode(), key=self._key, digest_size=8).digest()
        return digest, int.from_bytes(digest, "little") % self._slots * self._SLOT.size

    def _get(self, address: str) -> tuple[float, float] | None:
        digest, offset = self._where(address)
        with self._lock:
            stored, tokens, then = self._SLOT.unpack_from(self._memory, offset)
        return (tokens, then) if stored == digest else None

    def _put(self, address: str, tokens: float, then: float) -> None:
        digest, offset = self._where(address)
        with self._lock:
            self._SLOT.pack_into(self._memory, offset, digest, tokens, then)

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        digest, offset = self._where(address)
        with self._lock:  # read and write as one step: two workers never lose a failure
            stored, tokens, then = self._SLOT.unpack_from(self._memory, offset)
            if stored != digest:
                tokens, then = float(self.burst), now
            tokens = min(float(self.burst), tokens + (now - then) * self.per_s)
            self._SLOT.pack_into(self._memory, offset, digest, max(0.0, tokens - 1), now)


@dataclass
class Worker:
    """This process's place among the workers: ``index`` (0-based) of ``count``."""

    index: int
    count: int
    link: SiblingLink
    throttle: SharedSignInThrottle

    @property
    def runs_background(self) -> bool:
        """The sweep, the outbox dispatcher and housekeeping run here (worker 1 only)."""
        return self.index == 0


@dataclass
class _Supervisor:
    count: int
    start: Callable[[Worker], int]  # runs in the child; its exit code
    link: SiblingLink
    throttle: SharedSignInThrottle
    children: dict[int, tuple[int, float]] = field(default_factory=dict)  # pid -> index, start
    stopping: int = 0
    failed: bool = False

    def spawn(self, index: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, _stop_starting)  # until it serves (then: uvicorn)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns it into SIGTERM
                _watch_parent(parent)
                self.link.bind(index)
                code = self.start(Worker(index, self.count, self.link, self.throttle))
            except _Stopped:
                code = 0  # stopped before it served anything
            except BaseException:
                _log.exception("worker %d failed", index + 1)
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        self.children[pid] = (index, time.monotonic())

    def signal_all(self, signum: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping == 0:
            _log.info("received %s, stopping %d worker(s)", signal.Signals(signum).name, self.count)
        self.stopping += 1
        self.signal_all(signal.SIGTERM)  # a second signal: uvicorn's forced exit

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                return
            index, started = self.children.pop(pid, (-1, 0.0))
            if index < 0:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                if code != 0:
                    self.failed = True
                continue
            if time.monotonic() - started < _START_GRACE_S:
                _log.error("worker %d exited %d while starting: stopping", index + 1, code)
                self.failed = True
                self.stopping += 1
                self.signal_all(signal.SIGTERM)
                continue
            _log.warning("worker %d exited %d: starting it again", index + 1, code)
            self.spawn(index)


class _Stopped(BaseException):
    """SIGTERM reached a worker still starting."""


def _stop_starting(_signum: int, _frame: FrameType | None) -> None:
    raise _Stopped


def _watch_parent(parent: int) -> None:
    """Stop this worker (SIGTERM to itself) soon after its parent is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="reelsync-parent-watch", daemon=True).start()


def run_workers(config: ServerConfig, count: int, start: Callable[[Worker], int]) -> None:
    """Fork ``count`` workers running ``start(worker)`` (each serves the listeners bound before
    this call) and supervise them until they all stopped; ConfigError when they failed."""
    supervisor = _Supervisor(
        count,
        start,
        SiblingLink(count),
        SharedSignInThrottle(burst=config.signin_burst, per_s=1 / config.signin_refill_s),
    )
    previous = {sig: signal.signal(sig, supervisor.on_signal) for sig in _STOP_SIGNALS}
    try:
        _log.info("reelsync control plane: %d worker processes", count)
        for index in range(count):
            supervisor.spawn(index)
        supervisor.reap()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        supervisor.link.close()
    if supervisor.failed:
        raise ConfigError("a control-plane worker failed (see the log above)")


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
