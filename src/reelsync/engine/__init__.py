"""reelsync.engine: the data-plane engine (asyncio, mutual TLS 1.3, parallel streams).

The agent builds one :class:`Engine` with its TLS contexts and volumes, calls
:meth:`Engine.serve` if it can be dialled, and runs each assignment it dials with
:meth:`Engine.push` (it sends) or :meth:`Engine.pull` (it receives), getting progress and results
through a :class:`TransferObserver`.
"""

from __future__ import annotations

from reelsync.engine.engine import Engine, Listener, NullObserver, listen_socket
from reelsync.engine.model import (
    Assignment,
    Authorizer,
    FileResult,
    FileSpec,
    Grant,
    PeerAddress,
    SessionRequest,
    TransferObserver,
    VolumePath,
)
from reelsync.engine.settings import MIB, EngineSettings

__all__ = [
    "MIB",
    "Assignment",
    "Authorizer",
    "Engine",
    "EngineSettings",
    "FileResult",
    "FileSpec",
    "Grant",
    "Listener",
    "NullObserver",
    "PeerAddress",
    "SessionRequest",
    "TransferObserver",
    "VolumePath",
    "listen_socket",
]
