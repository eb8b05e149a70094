"""reelsync.sync: the site-sync workflow over the client Session (the seed's script as a library),
and what a person needs to follow a job (views, a live progress bar)."""

from __future__ import annotations

from reelsync.sync.jobview import FailedTask, JobView, find_job, job_view, task_counts, view_of
from reelsync.sync.sitesync import Direction, SyncedJob, SyncResult, job_name, site_sync
from reelsync.sync.watch import watch_jobs

__all__ = [
    "Direction",
    "FailedTask",
    "JobView",
    "SyncResult",
    "SyncedJob",
    "find_job",
    "job_name",
    "job_view",
    "site_sync",
    "task_counts",
    "view_of",
    "watch_jobs",
]
