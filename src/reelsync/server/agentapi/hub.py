"""What the agent endpoints share in one control plane process: the ticket signing key, where the
workspace CA lives, the verifier of the agents' signed requests (it remembers their nonces), the
file-operation relay, the timings, and the stopping flag that ends long-polls at once when the
server shuts down."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from reelsync import scheduler
from reelsync.config import DEFAULT_FENCE_S, ServerConfig
from reelsync.db import Database
from reelsync.pki import CA_CERT_FILE, RequestVerifier, TicketSigner, read_pem
from reelsync.server.agentapi.presence import Presence
from reelsync.server.agentapi.relay import FileOpRelay
from reelsync.server.workers import RING_JOBS, WAKE_AGENTS

__all__ = ["AgentHub"]

_log = logging.getLogger("reelsync.server.agents")


@dataclass(eq=False)
class AgentHub:
    tls_dir: Path
    signer: TicketSigner
    relay: FileOpRelay
    offline_after_s: float = 60.0
    heartbeat_s: float = 10.0
    sweep_interval_s: float = 5.0
    ticket_ttl_s: float = 3600.0
    signature_window_s: float = 120.0
    fence_s: float = DEFAULT_FENCE_S  # ServerConfig.fence_s: reports and the sweep fence with it
    stopping: bool = field(default=False)
    presence: Presence | None = None
    background: bool = True  # this process runs the sweep (one worker of several does)
    siblings: Callable[[bytes], None] | None = None  # tells the other workers (server/workers.py)

    @functools.cached_property
    def verifier(self) -> RequestVerifier:
        """Checks agents' signed requests against the workspace CA (read at first use)."""
        ca_pem = read_pem(self.tls_dir / CA_CERT_FILE)
        return RequestVerifier(ca_pem, window_s=self.signature_window_s)

    @classmethod
    def from_config(cls, config: ServerConfig, database: Database) -> AgentHub:
        """The hub of a control plane: the ticket key in ``DATA_DIR/tls`` (made if missing);
        agents beat every ``offline_after_s / 4`` (at most 10 s) and are swept as often."""
        tls_dir = config.ca_file.parent
        offline = config.agent_offline_after_s
        beat = max(0.2, min(10.0, offline / 4))

        async def lost(agent_id: str, dropped_at: datetime) -> None:
            released = await run_in_threadpool(
                functools.partial(
                    scheduler.agent_left,
                    database,
                    agent_id,
                    how="was lost",
                    unless_seen_since=dropped_at,
                )
            )
            if released is not None:
                _log.info(
                    "agent %s dropped its work long-poll and did not come back: offline, "
                    "%d task(s) back to the queue",
                    agent_id,
                    released,
                )

        return cls(
            tls_dir=tls_dir,
            signer=TicketSigner.load_or_create(tls_dir),
            relay=FileOpRelay(lambda: database, timeout_s=config.agent_fileop_timeout_s),
            offline_after_s=offline,
            heartbeat_s=beat,
            sweep_interval_s=beat,
            fence_s=config.fence_s,
            presence=Presence(lost),
        )

    def attach_siblings(self, send: Callable[[bytes], None]) -> None:
        """This process is one of several workers: ``send(WAKE_AGENTS | RING_JOBS)`` reaches
        the others (their long-polls wake too; a file operation posted for an agent polling
        another worker wakes it)."""
        self.siblings = send
        self.relay.on_posted = lambda: send(WAKE_AGENTS)

    def wake_all(self) -> None:
        """Run every parked work long-poll's scheduling pass now (something changed), in the
        other workers too."""
        self.relay.wake_all()
        if self.siblings is not None:
            self.siblings(WAKE_AGENTS)

    def wake_here(self) -> None:
        """:meth:`wake_all` for this process only (a sibling said so)."""
        self.relay.wake_all()

    def ring_siblings(self) -> None:
        """Job followers in the other workers re-read (an agent's report changed jobs)."""
        if self.siblings is not None:
            self.siblings(RING_JOBS)

    def stop(self) -> None:
        """End every pending long-poll at its next check (the server is shutting down)."""
        self.stopping = True
        if self.presence is not None:
            self.presence.cancel()
