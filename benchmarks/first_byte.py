"""Time from submitting a job to its first byte at the destination, on an idle system (not part of
the tests).

    python benchmarks/first_byte.py [--submits 20] [--size 65536] [--database sqlite|postgres]
        [--workers N]

Starts a real control plane (``reelsync server init`` + ``server run``, HTTPS) and two real agents
(hq and london, as ``reelsync agent run`` processes) with a volume rooted in a temporary dir per
site, then submits ``--submits`` one-file jobs hq -> london, one after the other, each once the
one before is done and the agents are idle again. For each job it measures, from just before the
submit call:

- ``first byte``: the first of the file's bytes is on the destination disk (the part file
  ``.<name>.reelsync-part`` holds the file's first byte, or the file is published already);
- ``published``: the file is under its final name at the destination;
- ``done``: the job reads ``done`` through the API.

The destination is polled every millisecond from this process, so the figures carry ~1 ms of
polling error. Prints median, p95 and max of each, and the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.agents import add_london_and_projects, running_agent, wait_until  # noqa: E402
from support.postgres import fresh_database  # noqa: E402
from support.servers import running_server  # noqa: E402

PART = ".{name}.reelsync-part"


def first_byte_at(dst: Path, name: str, first: int) -> bool:
    """The file's first byte (``first``, never 0) is on disk at ``dst`` (part file or final)."""
    for candidate in (dst / name, dst / PART.format(name=name)):
        try:
            with candidate.open("rb") as fh:
                head = fh.read(1)
        except FileNotFoundError:
            continue
        if head and head[0] == first:
            return True
    return False


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def run(submits: int, size: int, database: str, workers: int | None) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"first byte": [], "published": [], "done": []}
    with tempfile.TemporaryDirectory(prefix="rs-firstbyte-") as tmp_text, ExitStack() as stack:
        tmp = Path(tmp_text)
        url = stack.enter_context(fresh_database()) if database == "postgres" else None
        extra = ("--workers", str(workers)) if workers else ()
        server = stack.enter_context(
            running_server(tmp / "server", database_url=url, extra_args=extra)
        )
        roots = {site: tmp / site / "projects" for site in ("hq", "london")}
        for root in roots.values():
            root.mkdir(parents=True)
        add_london_and_projects(server, roots)
        agents = [
            stack.enter_context(running_agent(server, site, tmp / f"agent-{site}"))
            for site in ("hq", "london")
        ]
        for agent in agents:
            agent.wait_online()
        (roots["hq"] / "fb").mkdir()
        admin = stack.enter_context(server.session())
        time.sleep(2.0)  # let start-up settle: the first long-polls are parked
        for i in range(submits + 1):  # the first is a warm-up, not counted
            name = f"f{i:04d}.bin"
            first = 1 + i % 250
            (roots["hq"] / "fb" / name).write_bytes(bytes([first]) + os.urandom(size - 1))
            dst = roots["london"] / "fb"
            started = time.perf_counter()
            job = admin.submit_job(
                {"source": f"volume=projects/fb/{name}", "destination": "site=london"}
            )
            got_first = got_file = None
            while got_file is None:
                now = time.perf_counter()
                if now - started > 60:
                    raise SystemExit(f"job {job['id']}: nothing arrived in 60 s")
                if got_first is None and first_byte_at(dst, name, first):
                    got_first = now
                if (dst / name).exists():
                    got_file = now
                    got_first = got_first or now
                time.sleep(0.001)
            final = wait_until(
                lambda jid=job["id"]: (
                    (j := admin.get_entity("job", jid))["status"] in ("done", "failed") and j
                ),
                60,
                "the job",
            )
            ended = time.perf_counter()
            if final["status"] != "done":
                raise SystemExit(f"job {job['id']} ended {final['status']}")
            if i > 0:
                figures["first byte"].append(got_first - started)
                figures["published"].append(got_file - started)
                figures["done"].append(ended - started)
            time.sleep(1.0)  # idle again: reports flushed, long-polls parked
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submits", type=int, default=20)
    parser.add_argument("--size", type=int, default=65536, help="bytes per file (>= 1)")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workers", type=int, help="server run --workers N (PostgreSQL)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    figures = run(args.submits, max(1, args.size), args.database, args.workers)
    load_after = os.getloadavg()
    print(
        f"submit -> destination, {args.submits} one-file jobs of {args.size} bytes, "
        f"{args.database}, workers {args.workers or 'default'}, "
        f"load average {load_before[0]:.2f} before / {load_after[0]:.2f} after"
    )
    for label, values in figures.items():
        print(
            f"  {label:<11} median {statistics.median(values) * 1000:7.0f} ms   "
            f"p95 {percentile(values, 95) * 1000:7.0f} ms   max {max(values) * 1000:7.0f} ms"
        )


if __name__ == "__main__":
    main()
