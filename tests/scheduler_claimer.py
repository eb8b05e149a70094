"""A separate OS process that plays a control plane dispatching work: it claims transfers for
the given agents in a loop, reports every file done, and writes what it was granted (one line
per file: task id, transfer id) until nothing has been claimable for a while.

usage: python scheduler_claimer.py DATABASE_URL OUT_FILE AGENT_ID [AGENT_ID ...]
"""

from __future__ import annotations

import sys
import time

from reelsync.db import Database
from reelsync.scheduler import TaskReport, apply_reports, claim_transfers


def main(url: str, out: str, agents: list[str]) -> None:
    db = Database(url)
    idle_since = time.monotonic()
    with open(out, "w") as sink:
        while time.monotonic() - idle_since < 1.5:
            for agent in agents:
                grants = claim_transfers(db, agent)
                if not grants:
                    continue
                idle_since = time.monotonic()
                for grant in grants:
                    for f in grant.files:
                        sink.write(f"{f.task_id} {grant.transfer_id}\n")
                    sink.flush()
                    apply_reports(
                        db, agent, [TaskReport(f.task_id, "done", 1, size=1) for f in grant.files]
                    )
    db.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
