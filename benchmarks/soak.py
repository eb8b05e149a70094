"""Soak: operators syncing shots while every process is killed at random (not part of the tests).

    python benchmarks/soak.py [--minutes 5] [--concurrency 4] [--fault-every 20]
                              [--database sqlite|postgres] [--seed N] [--workers N]

Starts a real control plane and four real agents (two at hq, two at london, one shared root per
site), three employee operators and a queue per project. Then, until ``--minutes`` pass:

- operators run ``reelsync sync --site london SHOT/scans --wait`` (``--concurrency`` at once),
  each on a new shot tree made at hq (frames of 4-64 KiB and a few of 1-2 MiB); a sync that exits
  non-zero is run again as a person would (up to 3 times), its error line kept;
- a fault about every ``--fault-every`` seconds: the control plane SIGKILLed and restarted a few
  seconds later, or an agent SIGKILLed or SIGTERMed and restarted (one agent per site is always
  left online: the next fault comes after the restarted agent is online again).

``--workers N`` runs every agent's data plane in N worker processes (``REELSYNC_AGENT_WORKERS``):
a SIGKILLed agent's workers must stop by themselves, and a killed agent's files resume.

Then it waits for the syncs still running and checks: every file of every shot synced is at london
and identical (SHA-256), no part file is left, every job is done; and counts the files SENT twice
(a file at london published again: its inode changed under a watcher that scans london every
second), the files dispatched more than once (``task.dispatches``: a lease given back by a fault
and taken again, mostly files that had not started or that the receiver then skipped whole) and
the files the hq agents were granted beyond one grant per file (from their logs). Prints a
summary (``--json`` for JSON); exits 1 when a file is missing or differs, a part file is visible
or a sync never succeeded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.agents import RunningAgent, running_agent, start_agent  # noqa: E402
from support.postgres import fresh_database  # noqa: E402
from support.servers import (  # noqa: E402
    RunningServer,
    reelsync_cmd,
    running_server,
    start_server_process,
)

OPERATORS = ("ana@studio.test", "ben@studio.test", "cho@studio.test")
PROJECTS = ("proj001", "proj002", "proj003")
_PUSH = re.compile(r"transfer \S+: push (\d+) file\(s\)")


@dataclass
class Outcome:
    shot: str
    operator: str
    attempts: int = 0
    ok: bool = False
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class Soak:
    server: RunningServer
    agents: dict[str, RunningAgent]
    roots: dict[str, Path]
    keys: dict[str, str]
    rng: random.Random
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: Counter[str] = field(default_factory=Counter)
    shots: int = 0
    inodes: dict[str, int] = field(default_factory=dict)
    republished: set[str] = field(default_factory=set)
    agent_env: dict[str, str] = field(default_factory=dict)  # e.g. REELSYNC_AGENT_WORKERS

    # -- operators -------------------------------------------------------------------------------
    def make_shot(self) -> str:
        with self.lock:
            self.shots += 1
            number = self.shots
            project = self.rng.choice(PROJECTS)
            frames = self.rng.randint(20, 300)
            big = self.rng.randint(0, 3)
            seed = self.rng.getrandbits(32)
        shot = f"{project}/sc{number // 10:04d}/sh{number:04d}"
        scans = self.roots["hq"] / shot / "scans"
        scans.mkdir(parents=True)
        local = random.Random(seed)
        for i in range(frames):
            size = local.randint(4, 64) * 1024
            (scans / f"sh{number:04d}.{1001 + i:04d}.exr").write_bytes(os.urandom(size))
        for i in range(big):
            size = local.randint(1024, 2048) * 1024
            (scans / f"sh{number:04d}_plate_v{i + 1:03d}.mov").write_bytes(os.urandom(size))
        return shot

    def sync(self, operator: str) -> Outcome:
        shot = self.make_shot()
        outcome = Outcome(shot, operator)
        started = time.monotonic()
        env = self.server.env(REELSYNC_API_USER=operator, REELSYNC_API_KEY=self.keys[operator])
        while outcome.attempts < 3 and not outcome.ok:
            outcome.attempts += 1
            done = subprocess.run(
                reelsync_cmd("sync", "--site", "london", f"{shot}/scans", "--wait",
                             "--timeout", "900"),
                env=env, capture_output=True, text=True, check=False, timeout=1200,
            )  # fmt: skip
            outcome.ok = done.returncode == 0
            if not outcome.ok:
                lines = [line for line in done.stderr.splitlines() if line.strip()]
                outcome.errors.append(lines[-1] if lines else f"exit {done.returncode}")
                time.sleep(2.0)
        outcome.seconds = time.monotonic() - started
        return outcome

    # -- faults ----------------------------------------------------------------------------------
    def fault(self) -> str:
        victims = ["server", *self.agents]
        victim = self.rng.choice(victims)
        if victim == "server":
            self.server.stop(signal.SIGKILL, timeout=10)
            time.sleep(self.rng.uniform(2.0, 5.0))
            start_server_process(self.server)
            return "control plane SIGKILL"
        agent = self.agents[victim]
        sibling = next(
            a for name, a in self.agents.items() if name != victim and a.site == agent.site
        )
        if sibling.process.poll() is not None:
            return "skipped"
        how = self.rng.choice(("SIGKILL", "SIGTERM"))
        if how == "SIGKILL":
            agent.kill()
        else:
            agent.stop(signal.SIGTERM, timeout=60)
        time.sleep(self.rng.uniform(1.0, 4.0))
        agent.process, agent.log_file = start_agent(self.server, agent.data_dir, self.agent_env)
        agent._stopped = False
        agent.wait_online(120)  # back before the next fault may take its sibling
        return f"agent {how}"

    def watch_london(self, stop: threading.Event) -> None:
        """Every second, each file at london and its inode: a file published again (sent a
        second time, not skipped) gets a new inode from its part file's rename."""
        while not stop.wait(1.0):
            for path in list(self.roots["london"].rglob("*")):
                try:
                    inode = path.stat().st_ino
                except FileNotFoundError:
                    continue
                if path.name.endswith("reelsync-part") or not path.is_file():
                    continue
                known = self.inodes.setdefault(str(path), inode)
                if known != inode:
                    self.inodes[str(path)] = inode
                    self.republished.add(str(path))

    def fault_loop(self, stop: threading.Event, every: float) -> None:
        while not stop.wait(self.rng.uniform(every / 2, every * 1.5)):
            try:
                what = self.fault()
            except Exception as exc:  # a restart that failed is a finding, not a crash
                what = f"fault failed: {exc}"
            with self.lock:
                self.faults[what] += 1


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def setup(stack: ExitStack, tmp: Path, database: str, agent_env: dict[str, str]) -> Soak:
    url = stack.enter_context(fresh_database()) if database == "postgres" else None
    server = stack.enter_context(
        running_server(tmp / "server", database_url=url, check_clean_exit=False)
    )
    roots = {site: tmp / site / "projects" for site in ("hq", "london")}
    keys = {}
    with server.session() as admin:
        for root in roots.values():
            root.mkdir(parents=True)
        admin.create("site", {"code": "london"})
        admin.create(
            "volume",
            {"code": "projects", "default": True,
             "paths": {s: str(r) for s, r in roots.items()}},
        )  # fmt: skip
        for index, project in enumerate(PROJECTS):
            admin.create("queue", {"code": project, "priority": 500 + 100 * index})
        for operator in OPERATORS:
            admin.create("user", {"email": operator, "role": "employee"})
            admin.grant(operator, "projects", read=True, write=True)
            keys[operator] = str(admin.create_apikey(operator, description="soak")["api_key"])
    agents = {}
    for name, site in (("hq1", "hq"), ("hq2", "hq"), ("ldn1", "london"), ("ldn2", "london")):
        agents[name] = stack.enter_context(
            running_agent(server, site, tmp / name, env=agent_env, check_clean_exit=False)
        )
    for agent in agents.values():
        agent.wait_online()
    return Soak(server, agents, roots, keys, random.Random(), agent_env=agent_env)


def verify(soak: Soak, outcomes: list[Outcome]) -> dict[str, Any]:
    hq, london = soak.roots["hq"], soak.roots["london"]
    files = missing = differ = 0
    for outcome in outcomes:
        for path in (hq / outcome.shot / "scans").iterdir():
            files += 1
            there = london / path.relative_to(hq)
            if not there.is_file():
                missing += 1
            elif _digest(there) != _digest(path):
                differ += 1
    parts = [str(p) for p in london.rglob("*reelsync-part*")]
    dispatches: Counter[int] = Counter()
    statuses: Counter[str] = Counter()
    with soak.server.session() as admin:
        for job in admin.find("job"):
            statuses[str(job.get("status"))] += 1
            for task in admin.tasks(str(job["id"]), limit=10_000):
                dispatches[int(task.get("dispatches") or 0)] += 1
    granted = sum(
        int(n) for name, a in soak.agents.items() if name.startswith("hq") for n in
        _PUSH.findall(a.log())
    )  # fmt: skip
    tracebacks = {
        name: a.log().count("Traceback")
        for name, a in soak.agents.items()
        if "Traceback" in a.log()
    }
    if "Traceback" in soak.server.log():
        tracebacks["server"] = soak.server.log().count("Traceback")
    return {
        "files": files,
        "missing": missing,
        "differ": differ,
        "part_files_visible": parts[:10],
        "jobs": dict(statuses),
        "tasks_by_dispatches": {str(k): v for k, v in sorted(dispatches.items())},
        "tasks_dispatched_more_than_once": sum(v for k, v in dispatches.items() if k > 1),
        "files_granted_to_hq_agents": granted,
        "grants_beyond_one_per_task": granted - sum(dispatches.values()),
        "tracebacks": tracebacks,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--fault-every", type=float, default=20.0, metavar="S")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--workers", type=int, default=0, help="the agents' data-plane worker processes "
        "(REELSYNC_AGENT_WORKERS; default: the agents' own)"
    )  # fmt: skip
    args = parser.parse_args()
    agent_env = {"REELSYNC_AGENT_WORKERS": str(args.workers)} if args.workers else {}
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    with tempfile.TemporaryDirectory(prefix="rs-soak-") as tmp_text, ExitStack() as stack:
        soak = setup(stack, Path(tmp_text), args.database, agent_env)
        soak.rng.seed(seed)
        stop = threading.Event()
        faults = threading.Thread(target=soak.fault_loop, args=(stop, args.fault_every))
        watcher = threading.Thread(target=soak.watch_london, args=(stop,), daemon=True)
        started = time.monotonic()
        deadline = started + args.minutes * 60
        outcomes: list[Outcome] = []
        faults.start()
        watcher.start()
        try:
            with ThreadPoolExecutor(args.concurrency) as pool:
                running: set[Any] = set()
                turn = 0
                while time.monotonic() < deadline:
                    while len(running) < args.concurrency and time.monotonic() < deadline:
                        running.add(pool.submit(soak.sync, OPERATORS[turn % len(OPERATORS)]))
                        turn += 1
                    time.sleep(0.5)
                    for future in [f for f in running if f.done()]:
                        running.discard(future)
                        outcomes.append(future.result())
                stop.set()
                faults.join()
                for future in running:
                    outcomes.append(future.result())
                watcher.join()
        finally:
            stop.set()
        if soak.server.process.poll() is not None:
            start_server_process(soak.server)
        for agent in soak.agents.values():
            if agent.process.poll() is not None:
                agent.process, agent.log_file = start_agent(
                    soak.server, agent.data_dir, soak.agent_env
                )
                agent._stopped = False
        report = {
            "seed": seed,
            "database": args.database,
            "minutes": round((time.monotonic() - started) / 60, 1),
            "syncs": len(outcomes),
            "syncs_ok": sum(o.ok for o in outcomes),
            "syncs_run_again": sum(o.attempts > 1 for o in outcomes),
            "sync_errors": Counter(e for o in outcomes for e in o.errors).most_common(8),
            "faults": dict(soak.faults),
            **verify(soak, [o for o in outcomes if o.ok]),
            "files_published_twice": len(soak.republished),
            "load_average": os.getloadavg(),
        }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:32} {value}")
    bad = (
        report["missing"]
        or report["differ"]
        or report["part_files_visible"]
        or report["syncs_ok"] < report["syncs"]
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
