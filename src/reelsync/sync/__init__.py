"""reelsync.sync: the site-sync workflow over the client Session (the seed's script as a library),
and what a person needs to follow a job (views, progress)."""

from __future__ import annotations

from reelsync.sync.jobview import FailedTask, JobView, find_job, job_view, task_counts, view_of

__all__ = ["FailedTask", "JobView", "find_job", "job_view", "task_counts", "view_of"]
