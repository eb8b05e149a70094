"""reelsync.scheduler: which agent moves which file when, and what their reports change.

- :func:`claim_transfers` (GET /api/v1/agent/work): lease batches of queued tasks to the polling
  agent, by queue priority, fair share, FIFO, within the per site pair and per agent limits.
- :func:`apply_reports` (POST /api/v1/agent/report): progress, done, failed (retries with backoff),
  job rollup, speed and time remaining.
- :func:`agent_left`, :func:`agent_restarted`, :func:`release_transfers`, :func:`release_unheld`:
  an agent's leases back to the queue at once when it stops, is lost or restarts, or never got
  its work answer.
- :func:`sweep` (the server's background loop, :class:`Sweeper`): leases of silent agents back to
  the queue, silent agents offline.
"""

from reelsync.scheduler.departures import (
    agent_left,
    agent_restarted,
    release_transfers,
    release_unheld,
)
from reelsync.scheduler.dispatch import claim_transfers
from reelsync.scheduler.loop import Sweeper
from reelsync.scheduler.model import (
    FileGrant,
    ReportOutcome,
    RetryPolicy,
    SchedulingPolicy,
    TaskReport,
    TransferGrant,
)
from reelsync.scheduler.reports import apply_reports
from reelsync.scheduler.sweep import SweepResult, sweep

__all__ = [
    "FileGrant",
    "ReportOutcome",
    "RetryPolicy",
    "SchedulingPolicy",
    "SweepResult",
    "Sweeper",
    "TaskReport",
    "TransferGrant",
    "agent_left",
    "agent_restarted",
    "apply_reports",
    "claim_transfers",
    "release_transfers",
    "release_unheld",
    "sweep",
]
