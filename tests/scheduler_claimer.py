"""A separate OS process that plays a control plane dispatching work: it claims transfers for
the given agents in a loop, reports every file done, and writes what it was granted (one line
per file: task id, transfer id) until no task is left to move (or a minute has passed).

usage: python scheduler_claimer.py DATABASE_URL OUT_FILE AGENT_ID [AGENT_ID ...]
It creates OUT_FILE.ready when started, then waits for OUT_FILE.go (so two start together).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from reelsync.db import Database
from reelsync.db import models as m
from reelsync.scheduler import TaskReport, apply_reports, claim_transfers


def _work_left(db: Database) -> bool:
    with db.session() as s:
        left = s.scalar(
            select(func.count()).where(m.Task.status.in_(("queued", "booting", "executing")))
        )
        return bool(left)


def main(url: str, out: str, agents: list[str]) -> None:
    db = Database(url)
    _work_left(db)  # connected and warm
    Path(out + ".ready").touch()
    while not Path(out + ".go").exists():
        time.sleep(0.01)
    deadline = time.monotonic() + 60
    with open(out, "w") as sink:
        while time.monotonic() < deadline and _work_left(db):
            granted = False
            for agent in agents:
                for grant in claim_transfers(db, agent):
                    granted = True
                    for f in grant.files:
                        sink.write(f"{f.task_id} {grant.transfer_id}\n")
                    sink.flush()
                    time.sleep(0.02)  # the files take a moment to move: the other process runs
                    apply_reports(
                        db, agent, [TaskReport(f.task_id, "done", 1, size=1) for f in grant.files]
                    )
            if not granted:
                time.sleep(0.01)  # the rest is in flight in the other process
            else:
                # agents poll again only after a round trip (a control plane is never this
                # eager): without a pause a process re-takes SQLite's write lock at once while
                # the other one's busy handler sleeps (up to 100 ms a time) and starves it
                time.sleep(0.12)
    db.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
