"""The public names of reelsync.sync (what the tool plugin, the demo and the CLI call), pinned."""

from __future__ import annotations

import reelsync.demo
import reelsync.sync


def test_sync_public_names() -> None:
    assert sorted(reelsync.sync.__all__) == [
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
    for name in reelsync.sync.__all__:
        assert hasattr(reelsync.sync, name)


def test_demo_public_names() -> None:
    assert sorted(reelsync.demo.__all__) == ["OPERATOR", "SITES", "run_demo"]
