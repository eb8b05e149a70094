"""What an agent and its data-plane worker processes say to each other (agent/dataplane.py,
agent/dataworker.py).

Rules: two Unix socket pairs per worker. On the *message* pair each message is a 4-byte
big-endian length then a pickled tuple whose first item names it; both ends are this agent's own
processes (the worker is started by the agent with the agent's interpreter), so pickle is safe
here and nowhere else. On the *connection* pair (``SOCK_SEQPACKET``) the agent hands the worker
each peer's TCP connection it routed to it: one byte, the descriptor in ``SCM_RIGHTS``.

Agent -> worker: ``("init", WorkerInit)`` first, then ``("volumes", [(code, root), ...])``,
``("revoked", frozenset)``, ``("limit", rate | None)``, ``("run", call, role, Assignment,
scopes)``, ``("cancel", call)``. Worker -> agent: ``("progress", call, key, done, size)``,
``("finished", call, FileResult)``, ``("result", call, [FileResult])``, ``("error", call, code,
message, retryable)``, ``("stats", sent, received, sessions, accepted, refused)``.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelsync.engine import EngineSettings
from reelsync.errors import ConnectionLostError

__all__ = ["MessageLink", "WorkerInit", "receive_connection", "send_connection"]

_LENGTH = struct.Struct("!I")
_MAX_MESSAGE = 256 << 20  # a result list of a very large assignment; nothing legitimate nears it


@dataclass(frozen=True, slots=True)
class WorkerInit:
    """Everything a worker needs to build its engine and its gate."""

    index: int
    agent_id: str
    workspace: str
    engine: EngineSettings
    key: Path
    cert: Path
    ca: Path
    ticket_key: Path
    log_level: str


class MessageLink:
    """One end of the message pair, on the running loop."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> MessageLink:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    async def send(self, *message: Any) -> None:
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._writer.write(_LENGTH.pack(len(body)) + body)
            await self._writer.drain()
        except (OSError, RuntimeError) as exc:
            raise ConnectionLostError(f"the data-plane worker link is down: {exc}") from exc

    async def recv(self) -> tuple[Any, ...] | None:
        """The next message; None once the other end is gone."""
        try:
            head = await self._reader.readexactly(_LENGTH.size)
            (length,) = _LENGTH.unpack(head)
            if length > _MAX_MESSAGE:
                return None
            body = await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, OSError):
            return None
        message = pickle.loads(body)  # noqa: S301 - our own child process, see the module rules
        return message if isinstance(message, tuple) and message else None

    def close(self) -> None:
        self._writer.close()


def send_connection(link: socket.socket, conn: socket.socket) -> None:
    """Blocking: hand ``conn`` to the worker at the other end of ``link`` (the caller closes its
    own copy afterwards)."""
    socket.send_fds(link, [b"c"], [conn.fileno()])


def receive_connection(link: socket.socket) -> socket.socket | None:
    """Blocking: the next connection the agent handed over; None once the agent is gone."""
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(link, 1, 4)
        except InterruptedError:
            continue
        except OSError:
            return None
        if not data and not fds:
            return None
        for extra in fds[1:]:  # never more than one is sent; do not leak any
            socket.close(extra)
        if fds:
            return socket.socket(fileno=fds[0])
