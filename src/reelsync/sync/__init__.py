"""reelsync.sync: the site-sync workflow over the client Session (the seed's script as a library),
and what a person needs to follow a job (views, a live progress bar). Each name loads its module
when first used, so the CLI's ``sync`` starts without what only following a job needs."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reelsync.sync.jobview import (
        FailedTask,
        JobView,
        find_job,
        job_view,
        task_counts,
        view_of,
    )
    from reelsync.sync.sitesync import (
        Direction,
        SyncedJob,
        SyncResult,
        job_name,
        site_sync,
        submit_sync,
    )
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
    "submit_sync",
    "task_counts",
    "view_of",
    "watch_jobs",
]

_HOME = {
    **dict.fromkeys(
        ("FailedTask", "JobView", "find_job", "job_view", "task_counts", "view_of"), "jobview"
    ),
    **dict.fromkeys(
        ("Direction", "SyncedJob", "SyncResult", "job_name", "site_sync", "submit_sync"),
        "sitesync",
    ),
    "watch_jobs": "watch",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
