"""How long the web UI takes to answer its busiest pages for a big job, as a browser asks them
(HTTP through the ASGI app, signed in, SQLite): the job page of a job of N files (an image
sequence per shot folder), its drill-down into one folder, and the jobs list.

    python benchmarks/webui_pages.py --files 10000 --runs 7

Prints the median and the slowest of the runs for each page, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from reelsync.config import ServerConfig
from reelsync.db import Database
from reelsync.domain.records import Actor
from reelsync.server.app import create_app
from reelsync.services import jobs, sites, volumes
from reelsync.services.bootstrap import init_workspace

BASE = "https://reelsync.test"


async def measure(root: Path, files: int, runs: int) -> None:
    db = Database(f"sqlite:///{root / 'reelsync.db'}")
    db.upgrade()
    init = init_workspace(db, "acmepost", "admin@acmepost.com")
    admin = Actor(user_id=init.admin.id, email=init.admin.email, role=init.admin.role)
    sites.create_site(db, admin, code="london")
    volumes.create_volume(
        db, admin, code="projects", default=True, paths={"hq": "/mnt/p", "london": "/data/p"}
    )
    per_shot = 100
    paths = [
        f"proj001/sc0010/sh{n // per_shot:04d}/scans/plate.{1001 + n % per_shot:04d}.exr"
        for n in range(files)
    ]
    job = jobs.submit_job(db, admin, {"destination": "site=london", "tasks": paths})
    (root / "data").mkdir()
    app = create_app(ServerConfig(data_dir=root / "data", database_url=db.url), db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE, headers={"Accept": "text/html"}
    ) as client:
        signed = await client.post(
            "/ui/login", data={"api_key": init.api_key}, headers={"Origin": BASE}
        )
        assert signed.status_code == 303, signed.text
        for name, url in (
            ("job page", f"/ui/jobs/{job.id}"),
            ("one folder", f"/ui/jobs/{job.id}?folder=proj001/sc0010/sh0000/scans"),
            ("jobs list", "/ui/?show=all"),
        ):
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                response = await client.get(url)
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, response.text[:300]
            print(
                f"{name:<10} {files} files: median {statistics.median(times):.0f} ms, "
                f"slowest {max(times):.0f} ms ({runs} runs, {len(response.content)} bytes)"
            )
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(Path(tmp), args.files, args.runs))


if __name__ == "__main__":
    main()
