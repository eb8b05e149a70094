"""The engine's tunables, built once by the entry point (agent config or the debug CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reelsync.errors import ConfigError
from reelsync.fs.direct import DIRECT_IO_MODES

__all__ = ["MIB", "EngineSettings"]

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How the data plane moves bytes. ``bandwidth_limit`` is in bytes per second (None: no
    limit); ``congestion`` names a TCP congestion control to ask for (None: the system's);
    ``session_idle``: seconds a dialled session with a version 3 peer stays open without work,
    for more work to the same peer (0: closed as soon as its work is done; at most half of
    ``idle_timeout``, after which the listener would give up on it); ``protocol_max``: the
    highest protocol version spoken (a fleet being upgraded may hold newer agents back).
    ``direct_io``: how received chunks are written, ``auto`` (direct I/O on local ext4 and XFS),
    ``on`` (wherever the file system takes it) or ``off`` (through the page cache), see
    :mod:`reelsync.fs.direct`.
    ``streams`` is the least a session opens; with ``path_rate`` (the path's bandwidth, bytes/s;
    None: always ``streams``) and the measured round trip a session opens more, up to
    ``max_streams``, to cover bandwidth x delay (engine/pathsize.py)."""

    streams: int = 4
    max_streams: int = 32
    path_rate: float | None = 125e6
    chunk_size: int = 4 * MIB
    small_file_max: int = 256 * 1024
    batch_bytes: int = 4 * MIB
    manifest_part: int = 5000
    bandwidth_limit: float | None = None
    congestion: str | None = "bbr"
    socket_buffer: int | None = None
    io_threads: int = 6
    fsync: bool = True
    direct_io: str = "auto"
    connect_timeout: float = 15.0
    idle_timeout: float = 120.0
    retry_deadline: float = 300.0
    retry_max_delay: float = 10.0
    max_resends: int = 5
    session_idle: float = 30.0
    protocol_max: int = 4
    debug_corrupt: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not 1 <= self.streams <= 64:
            raise ConfigError(f"streams must be between 1 and 64, got {self.streams}")
        if not 1 <= self.max_streams <= 64:
            raise ConfigError(f"max_streams must be between 1 and 64, got {self.max_streams}")
        if self.path_rate is not None and self.path_rate <= 0:
            raise ConfigError("the path rate must be positive")
        if not 64 * 1024 <= self.chunk_size <= 64 * MIB:
            raise ConfigError(
                f"chunk size must be between 64 KiB and 64 MiB, got {self.chunk_size}"
            )
        if not 0 <= self.small_file_max <= self.chunk_size:
            raise ConfigError("small_file_max must be between 0 and the chunk size")
        if self.batch_bytes < self.small_file_max or self.batch_bytes > 64 * MIB:
            raise ConfigError("batch_bytes must be at least small_file_max and at most 64 MiB")
        if not 1 <= self.protocol_max <= 4:
            raise ConfigError(f"protocol_max must be between 1 and 4, got {self.protocol_max}")
        if self.direct_io not in DIRECT_IO_MODES:
            raise ConfigError(
                f"direct_io must be one of {', '.join(DIRECT_IO_MODES)}, got {self.direct_io!r}"
            )
        if self.session_idle < 0:
            raise ConfigError("session_idle must be at least 0")
        if self.bandwidth_limit is not None and self.bandwidth_limit <= 0:
            raise ConfigError("the bandwidth limit must be positive")
