"""The listening agent's gate for data-plane sessions (the engine's Authorizer).

Rules: a session is accepted only with a ticket signed by the control plane and not expired;
this agent must be the ticket's party for the dialer's role (the receiver when the dialer sends,
the sender when it pulls) and the mTLS peer (its certificate's agent id, already verified against
the workspace CA) must be the other party and not an agent the control plane revoked (the list
comes with each heartbeat, so a revocation reaches every peer within one beat); every path the
ticket names on this side must lie in a volume this agent serves. The grant is limited to exactly
those paths, less any that leads (symlinks followed) outside the scope the ticket gives it (the
job owner's granted sub-path); the engine resolves each inside its volume (``..`` and escaping
symlinks fail that file). No call to the control plane is made: the ticket carries everything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from reelsync.agent.scopes import ScopeBook
from reelsync.engine import Grant, SessionRequest
from reelsync.errors import PathError, PermissionDeniedError
from reelsync.fs import Volume, normalize_relpath
from reelsync.pki import TicketVerifier, peer_identity

__all__ = ["TicketGate"]

_log = logging.getLogger("reelsync.agent")


class TicketGate:
    """Authorizes incoming sessions of agent ``agent_id`` over the volumes ``volumes()`` gives."""

    def __init__(
        self,
        agent_id: str,
        verifier: TicketVerifier,
        volumes: Callable[[], Mapping[str, Volume]],
        *,
        workspace: str | None = None,
        scopes: ScopeBook | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.scopes = scopes
        self.verifier = verifier
        self.volumes = volumes
        self.workspace = workspace
        self.revoked: frozenset[str] = frozenset()

    def authorize(self, request: SessionRequest) -> Grant:
        peer = peer_identity(request.peer_certificate)
        if self.workspace and peer.workspace != self.workspace:
            raise PermissionDeniedError(f"agent {peer.agent_id} is of another workspace")
        if peer.agent_id in self.revoked:
            raise PermissionDeniedError(f"agent {peer.agent_id} was revoked by an admin")
        ticket = self.verifier.verify(request.ticket)
        if request.role == "send":  # the dialer pushes: we receive
            me, them, side = ticket.receiver_id, ticket.sender_id, "receiver"
            wanted = [(f.dst_volume, f.dst_path, f.dst_scope) for f in ticket.files]
        else:  # the dialer pulls: we send
            me, them, side = ticket.sender_id, ticket.receiver_id, "sender"
            wanted = [(f.src_volume, f.src_path, f.src_scope) for f in ticket.files]
        if me != self.agent_id:
            raise PermissionDeniedError(
                f"transfer {ticket.transfer_id} names another agent as its {side}"
            )
        if peer.agent_id != them:
            raise PermissionDeniedError(
                f"agent {peer.agent_id} is not a party of transfer {ticket.transfer_id}"
            )
        served = dict(self.volumes())
        paths: set[tuple[str, str]] = set()
        for code, rel, scope in wanted:
            volume = served.get(code)
            if volume is None:
                raise PermissionDeniedError(f"volume {code!r} is not served by this agent")
            try:
                norm = normalize_relpath(rel)
                volume.check_within(norm, scope)
            except (PathError, PermissionDeniedError) as exc:
                _log.warning("transfer %s: refused %s: %s", ticket.transfer_id, code, exc.message)
                continue  # not granted: the engine fails that one file, not the session
            paths.add((code, norm))
            if self.scopes is not None:  # the files of a folder are held to its scope too
                self.scopes.add(code, norm, scope, ticket.expires_at)
        return Grant(volumes=served, paths=frozenset(paths), transfer_id=ticket.transfer_id)
