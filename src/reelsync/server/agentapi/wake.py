"""Wake the agents' parked work long-polls when a user changes something.

Rules: after a write through the user-facing APIs of this process (POST, PUT, PATCH, DELETE
anywhere but ``/api/v1/agent``) answers with a success status -- a job submitted, resumed or
retried, tasks added, a queue unpaused -- every long-poll parked in this process runs its
scheduling pass at once instead of at its next tick (``router._POLL_S``). The answer is sent after
the write committed, so the pass sees it. Long-polls parked in other processes (replicas) still
find the work at their next tick. A wake costs one pass per parked agent and never changes what
is granted, only when.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelsync.server.agentapi.hub import AgentHub

__all__ = ["WakeOnWrites"]

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_AGENT_API = "/api/v1/agent"


class WakeOnWrites:
    """ASGI middleware: ``app.add_middleware(WakeOnWrites, hub=hub)``."""

    def __init__(self, app: ASGIApp, hub: AgentHub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if (
            scope["type"] != "http"
            or scope.get("method") not in _WRITES
            or path == _AGENT_API
            or path.startswith(_AGENT_API + "/")
        ):
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and int(message["status"]) < 400:
                self.hub.wake_all()
            await send(message)

        await self.app(scope, receive, sending)

    def __repr__(self) -> str:
        return f"WakeOnWrites({self.hub!r})"
