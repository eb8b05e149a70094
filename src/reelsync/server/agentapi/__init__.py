"""The control plane's side of the agents: ``/api/v1/agent`` (enroll, heartbeat, work long-poll,
report, fileop-result), transfer tickets, the file-operation relay and the offline sweep.

Mount: ``hub = AgentHub.from_config(config, database)``; ``build_router(hub)`` among create_app's
routers; ``hub.relay`` is the FileOperator for the accsyn adapter's file calls."""

from __future__ import annotations

from reelsync.server.agentapi.hub import AgentHub
from reelsync.server.agentapi.relay import FileOpRelay
from reelsync.server.agentapi.router import build_router

__all__ = ["AgentHub", "FileOpRelay", "build_router"]
