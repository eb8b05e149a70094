"""reelsync.agent: the site agent daemon (``reelsync agent enroll|run``).

It talks to the control plane over HTTPS only (no database access), serves the data-plane
listener behind a :class:`TicketGate`, and runs transfer grants on the engine."""

from __future__ import annotations

from reelsync.agent.controlplane import ControlPlane
from reelsync.agent.daemon import Agent
from reelsync.agent.enrollment import EnrollResult, enroll
from reelsync.agent.fileops import run_fileop
from reelsync.agent.gate import TicketGate
from reelsync.agent.settings import AgentSettings, load_agent_settings

__all__ = [
    "Agent",
    "AgentSettings",
    "ControlPlane",
    "EnrollResult",
    "TicketGate",
    "enroll",
    "load_agent_settings",
    "run_fileop",
]
