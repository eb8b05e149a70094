#!/usr/bin/env python3
"""A production-tool plugin: send the selected shots to a site with reelsync.

An in-house tool (a shot browser, a DCC menu) calls ``sync_shots`` with the shots the artist
selected, or runs this file with them:

    python examples/tool_plugin.py --site london proj001/sc0010/sh0010 proj001/sc0010/sh0020

Credentials come from the environment (REELSYNC_URL, REELSYNC_API_USER, REELSYNC_API_KEY,
REELSYNC_CA_FILE) or the credentials file written by ``reelsync login``. Shot paths are relative
to the projects volume; the plugin sends each shot's ``scans`` folder (``--folder``). Exit codes:
0 submitted (or synced, with --wait), 1 the transfer failed, 2 a mistake (unknown site, path, no
access, agent offline) - reported as one line, with nothing submitted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from reelsync.client import Session
from reelsync.errors import ReelsyncError
from reelsync.sync import JobView, SyncResult, site_sync, watch_jobs


def sync_shots(
    session: Session,
    shots: Sequence[str],
    *,
    site: str = "london",
    folder: str = "scans",
    upload: bool = False,
) -> SyncResult:
    """Submit (or append to today's job) the ``folder`` of each shot; returns what was done."""
    paths = [f"{shot.strip('/')}/{folder}" if folder else shot.strip("/") for shot in shots]
    return site_sync(session, paths, site, "upload" if upload else "download")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send the selected shots to a site.")
    parser.add_argument("shots", nargs="+", help="shot paths, e.g. proj001/sc0010/sh0010")
    parser.add_argument("--site", default="london")
    parser.add_argument("--folder", default="scans", help="folder of each shot to send")
    parser.add_argument("--upload", action="store_true", help="fetch from the site instead")
    parser.add_argument("--wait", action="store_true", help="follow the job until it ends")
    args = parser.parse_args(argv)
    try:
        with Session() as session:
            result = sync_shots(
                session, args.shots, site=args.site, folder=args.folder, upload=args.upload
            )
            for note in result.notes:
                print(f"note: {note}", file=sys.stderr)
            for job in result.jobs:
                print(f"{job.action} job '{job.name}' ({job.id}): {len(job.paths)} shot folder(s)")
            if not args.wait:
                return 0
            views: list[JobView] = watch_jobs(session, [j.id for j in result.jobs])
    except ReelsyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if exc.exit_code == 2 else 1
    failed = [v for v in views if v.status != "done"]
    for view in failed:
        print(f"job '{view.name}' {view.status}", file=sys.stderr)
        for task in view.failed:
            print(f"  {task.source}: {task.last_error}", file=sys.stderr)
    if not failed:
        print("all shots synced")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
