"""One agent process per data dir: ``DATA_DIR/agent.lock``, held with ``flock`` while it runs.

Rules: the lock is taken before anything else runs and held until the process exits (the kernel
drops it when the process dies, even by SIGKILL, so a crash never leaves a stale lock); a second
``reelsync agent run`` on the same data dir stops at once with one line naming the first one's pid.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from reelsync.errors import ConfigError

__all__ = ["LOCK_FILE", "DataDirLock"]

LOCK_FILE = "agent.lock"


class DataDirLock:
    """``with DataDirLock(data_dir):`` -- raises :class:`ConfigError` when another holds it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot open {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"another reelsync agent (pid {holder}) is already running on {self.path.parent}",
                hint="stop it first, or give this one its own --data-dir (enroll it again)",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
