"""How many streams a session opens (enough to fill the path's bandwidth x delay), and how much
each one queues for its socket.

Rules: one TCP stream carries at most about half its send buffer per round trip (the kernel
counts its own overhead in the other half), and loss makes each stream back off on its own, so a
session opens ``ceil(headroom x rate x RTT / window)`` streams, at least ``EngineSettings.streams``
and at most ``EngineSettings.max_streams``. ``rate`` is the path's bandwidth as configured
(``EngineSettings.path_rate``); the RTT is the kernel's estimate for the first stream, read
(``TCP_INFO``) right after its TCP handshake, before the others are opened. On loopback or a LAN
the minimum applies; on 50 ms at 1 Gbit/s with 4 MiB send buffers, 5; on 200 ms, 18.

On a short path (round trip under :data:`SHORT_RTT`: loopback, a LAN) one stream fills the path
by itself, so data goes on fewer of them, :func:`short_path_lanes`: one per four cores the
process may run on (its affinity; one on two cores). Each stream carrying data busies a writer
thread on the sender and a reader thread on the receiver, and there TLS hands over one 16 KiB
record per read, each a release of the GIL; on two cores one lane instead of four moved 1,000 x
2 MiB 23 % faster and 4 x 256 MiB as fast, with 8-10 % less CPU (both ends), and small files
7 % faster. The other streams stay open and
carry control frames only. Not measured on more cores: the one-per-four-cores rule is a guess.

On a long path a stream queues little for its socket beyond the frame it is writing
(:func:`send_queue`: :data:`LONG_PATH_QUEUE`, 1 MiB, against two chunks and a MiB on a short
path): the socket's own send buffer (``tcp_wmem`` max, 4 MiB here) keeps the path busy while the
next chunk is read, and a stream that slows down (a loss burst, a retransmission timeout) holds
back little more than the frame it is writing; the units still queued go to the other streams.
With 9 MiB queued per stream, the slowest stream held the last frames of a session while the
others idled: 200 x 2 MiB across 50 ms RTT and 0.1 % loss, the streams' last bytes were
0.25-0.28 s apart with 9 MiB, 0.10 s with 1 MiB (medians of two batches of 8-11 runs each way,
both depths in turn in one set of agents).
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
from pathlib import Path

from reelsync.domain.hostos import usable_cores
from reelsync.engine.settings import EngineSettings

__all__ = [
    "LONG_PATH_QUEUE",
    "SHORT_RTT",
    "path_rtt",
    "send_queue",
    "send_window",
    "short_path_lanes",
    "streams_for",
]

#: The round trip (seconds) under which a path is short (see the module).
SHORT_RTT = 0.001

#: Bytes of frames a stream on a long path queues for its socket before a sender waits.
LONG_PATH_QUEUE = 1 << 20

_HEADROOM = 1.5
_TCPI_RTT = struct.Struct("=I")  # tcp_info.tcpi_rtt, microseconds
_TCPI_RTT_OFFSET = 68
_DEFAULT_WINDOW = 2 << 20


def send_window() -> int:
    """Payload one stream keeps in flight at most: half the largest send buffer the kernel
    grows a socket to (Linux ``net.ipv4.tcp_wmem``; 2 MiB where it cannot be read)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return max(64 * 1024, int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2]) // 2)
    return _DEFAULT_WINDOW


def path_rtt(sock: socket.socket) -> float | None:
    """The kernel's smoothed round-trip time of a connected TCP socket, in seconds (None where
    ``TCP_INFO`` is not offered)."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 104)
    except OSError:
        return None
    if len(raw) < _TCPI_RTT_OFFSET + _TCPI_RTT.size:
        return None
    (usec,) = _TCPI_RTT.unpack_from(raw, _TCPI_RTT_OFFSET)
    return usec / 1e6 if usec else None


def streams_for(settings: EngineSettings, rtt: float | None, window: int) -> int:
    """Streams for a path of round-trip time ``rtt`` (None: unknown, the minimum)."""
    low = settings.streams
    if rtt is None or settings.path_rate is None:
        return low
    want = math.ceil(_HEADROOM * settings.path_rate * rtt / window)
    return max(low, min(settings.max_streams, want))


def send_queue(settings: EngineSettings, rtt: float | None) -> int:
    """Bytes of frames a stream queues for its socket before a sender waits, on a path of
    round-trip time ``rtt``: on a short path (or an unknown one) two chunks and a MiB, so the
    writer thread never waits for the event loop; on a long path :data:`LONG_PATH_QUEUE`."""
    if rtt is None or rtt < SHORT_RTT:
        return 2 * settings.chunk_size + (1 << 20)
    return LONG_PATH_QUEUE


def short_path_lanes() -> int:
    """How many of a session's streams carry data on a short path: one per four cores the
    process may run on (its affinity: ``taskset``, a container's cpuset)."""
    return max(1, usable_cores() // 4)
