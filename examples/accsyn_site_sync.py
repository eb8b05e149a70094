#!/usr/bin/env python3
"""The remote-office site sync written against the official accsyn client (``accsyn_api``): the
same script runs against accsyn and against reelsync (its accsyn v3 API).

    export ACCSYN_WORKSPACE=acmepost ACCSYN_API_USER=coordinator@acmepost.com ACCSYN_API_KEY=...
    export AS_DEV=1   # reelsync: the dev listener (server run --accsyn-dev-port 8181)
    python examples/accsyn_site_sync.py --site london proj001/sc0010/sh0010/scans

Or ``--hostname HOST --port PORT`` for the control plane's HTTPS port. Steps, as in the accsyn
tutorial: load and verify the volume, the site and the project's queue (else the default queue);
check each path exists at the source and list its files (one task per file); one job per
project, direction, site and day, found by name and appended to (which revives it), else created
with mirrored destination paths.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence
from typing import Any

import accsyn_api
from accsyn_api.session import AccsynException


class SyncError(Exception):
    pass


def site_sync(
    session: Any,
    paths: Sequence[str],
    site: str,
    direction: str = "download",
    volume: str = "projects",
) -> list[dict[str, Any]]:
    """Submit ``paths`` (relative to ``volume``); one job per project; returns the jobs."""
    if direction not in ("download", "upload"):
        raise SyncError(f"direction must be download or upload, not {direction!r}")
    share = session.find_one(f"Volume WHERE code={volume}")
    if share is None:
        raise SyncError(f"unknown volume {volume!r}")
    if session.find_one(f"Site WHERE code={site}") is None:
        raise SyncError(f"unknown site {site!r}")
    default_queue = session.find_one("Queue WHERE default=true")
    source_party = "" if direction == "download" else f"site={site}:"
    by_project: dict[str, list[str]] = {}
    for path in paths:
        rel = path.strip().strip("/")
        if not rel or ".." in rel.split("/"):
            raise SyncError(f"bad path {path!r}")
        where = f"{source_party}share={volume}/{rel}"
        if not session.exists(where):
            raise SyncError(f"{rel} does not exist at {'hq' if direction == 'download' else site}")
        # One task per file: a folder is listed (its files, recursively).
        listed = session.ls(where, recursive=True, files_only=True) or []
        name = rel.rsplit("/", 1)[-1]
        if len(listed) == 1 and listed[0].get("filename") == name:
            files = [rel]
        else:
            files = sorted(f"{rel}/{entry['filename']}" for entry in listed)
        by_project.setdefault(rel.split("/")[0], []).extend(files)
    today = datetime.date.today().isoformat()
    jobs = []
    for project, rels in by_project.items():
        queue = session.find_one(f"Queue WHERE code={project}")
        if queue is None:
            if default_queue is None:
                raise SyncError(f"project {project} has no queue and there is no default")
            print(f"note: project {project} has no queue; using {default_queue['code']}")
            queue = default_queue
        if direction == "download":
            tasks = [
                {"source": f"share={volume}/{rel}", "destination": f"site={site}"} for rel in rels
            ]
        else:
            tasks = [
                {
                    "source": f"site={site}:share={volume}/{rel}",
                    "destination": f"share={volume}/{rel}",
                }
                for rel in rels
            ]
        name = f"{project} {direction} {site} {today}"
        job = session.find_one(f'Job WHERE name="{name}"')
        if job is not None:
            session.create("task", {"tasks": tasks}, job["id"])
            job = session.get_entity("job", job["id"])
            print(f"appended to job '{name}' ({job['id']}), now {job['status']}")
        else:
            job = session.create(
                "job",
                {"name": name, "queue": queue["code"], "mirror_paths": True, "tasks": tasks},
            )
            print(f"created job '{name}' ({job['id']})")
        jobs.append(job)
    return jobs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sync project paths with a site (accsyn API).")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--site", default="london")
    parser.add_argument("--upload", action="store_true")
    parser.add_argument("--volume", default="projects")
    parser.add_argument("--hostname")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    try:
        session = accsyn_api.Session(hostname=args.hostname, port=args.port)
        site_sync(
            session, args.paths, args.site, "upload" if args.upload else "download", args.volume
        )
    except (SyncError, AccsynException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
